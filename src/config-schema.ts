/** Every setting declared once (parse, default, variable, flag, help), and the parsers it is made of; config.ts looks them up. */
import { isIP } from 'node:net';
import { NETWORK_PATHS, type NetworkPath } from './types.js';

/**
 * 100 µs to 500 ms in 1-2.5-5 steps: 12 boundaries, 18 series per destination in all. Same-zone
 * (0.1-0.5 ms), cross-zone (0.5-2.5 ms) and cross-region RTTs land in distinct buckets; each
 * boundary more is a series more per destination of every agent.
 */
export const DEFAULT_BUCKETS_SECONDS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5];

/** A target given on the command line or in MENTAT_TARGETS: no Kubernetes needed. */
export interface StaticTarget {
  readonly name: string;
  readonly address: string;
}

const DURATION = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `200ms`, `1s`, `1.5s`, `2m`, `1h`; a bare number is refused because its unit would be a guess. */
export function parseDurationMs(text: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new Error('must be a duration with a unit, such as 200ms, 1s or 1.5s');
  return Number(match[1]) * UNIT_MS[match[2] as string]!;
}

const TARGETS_FORM = 'give name=address pairs separated by commas, such as db=10.0.0.5,web=fd00::6';

/** Parses `name=address,...` (or a bare address, named after itself). */
export function parseTargets(text: string): StaticTarget[] {
  const targets: StaticTarget[] = [];
  const names = new Set<string>();
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const name = eq === -1 ? item : item.slice(0, eq).trim();
    const address = eq === -1 ? item : item.slice(eq + 1).trim();
    if (name === '') throw new Error(`has an entry with an empty name (${JSON.stringify(item)}); ${TARGETS_FORM}`);
    if (isIP(address) === 0) throw new Error(`has ${JSON.stringify(address)}, which is not an IPv4 or IPv6 address; ${TARGETS_FORM}`);
    if (names.has(name)) throw new Error(`names ${JSON.stringify(name)} twice; each target needs a name of its own`);
    names.add(name);
    targets.push({ name, address });
  }
  return targets;
}

/** Parses a comma-separated list of strictly increasing positive bucket boundaries in seconds. */
export function parseBuckets(text: string): number[] {
  const parts = text.split(',').map((p) => p.trim());
  const values = parts.map(Number);
  if (parts.length === 0 || parts.some((p) => p === '') || values.some((v) => !Number.isFinite(v) || v <= 0)) {
    throw new Error('must be a comma-separated list of positive numbers of seconds, such as 0.0005,0.001,0.005');
  }
  for (let i = 1; i < values.length; i++) {
    if (values[i]! <= values[i - 1]!) throw new Error('must be strictly increasing');
  }
  if (values.length > 64) throw new Error('must have at most 64 boundaries (each one is a series per destination)');
  return values;
}

/** A refusal whose message already shows the text refused (quoted or as read), so none is appended. */
export class ShowsValue extends Error {}

/** One setting, declared once: how its text becomes a value, its default, names and help. */
export interface Setting<T> {
  readonly doc: string;
  /** As a user would write it, and parsed as such. */
  readonly default: string;
  /** The environment variable, when it is not MENTAT_ + the key in capitals. */
  readonly env?: string;
  /** The flag, when it is not the key with dashes. */
  readonly flag?: string;
  /** The values an enumeration takes, for --help. */
  readonly values?: readonly string[];
  /** A true/false setting: its flag may stand alone. */
  readonly standalone?: boolean;
  /** Validates and converts in one pass; the error's message says what is allowed. */
  readonly parse: (text: string) => T;
}

export function choice<const V extends readonly string[]>(doc: string, values: V, fallback: V[number], env?: string): Setting<V[number]> {
  const parse = (text: string): V[number] => {
    const found = values.find((v) => v === text);
    if (found === undefined) throw new Error(`must be one of ${values.join(', ')}`);
    return found;
  };
  return { doc, default: fallback, values, parse, ...(env === undefined ? {} : { env }) };
}

export function flag(doc: string, fallback: 'true' | 'false'): Setting<boolean> {
  const parse = (text: string): boolean => {
    if (text === 'true' || text === 'false') return text === 'true';
    throw new Error('must be true or false');
  };
  return { doc, default: fallback, standalone: true, parse };
}

export const text = (text: string): string => text;

/** Whole numbers in [min, max]; `zero` says what 0 means when 0 is allowed. */
export function wholeNumber(min: number, max: number, zero?: string): (text: string) => number {
  const range = min === 0 && zero ? `from 0 (${zero}) to ${max}` : `from ${min} to ${max}`;
  return (text) => {
    const n = Number(text);
    if (text === '' || !Number.isInteger(n) || n < min || n > max) throw new Error(`must be a whole number ${range}`);
    return n;
  };
}

/** Milliseconds, at least `minText`; `offAtZero`: 0s turns the feature off. */
export function duration(minMs: number, minText: string, offAtZero = false): (text: string) => number {
  return (text) => {
    const ms = parseDurationMs(text);
    if (ms < minMs && !(offAtZero && ms === 0)) throw new ShowsValue(`must be at least ${minText}${offAtZero ? ' (or 0s: off)' : ''}; got ${text}`);
    return ms;
  };
}

export function url(text: string): string {
  if (text === '') return text;
  let protocol = '';
  try {
    protocol = new URL(text).protocol;
  } catch {
    // refused below, with what is allowed
  }
  if (protocol !== 'http:' && protocol !== 'https:') throw new Error('must be an http:// or https:// URL, such as http://otel-collector:4318');
  return text;
}

export function port(text: string): number {
  const n = Number(text);
  if (text === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new Error('must be a port number from 0 to 65535');
  return n;
}

export function ipAddress(text: string): string {
  if (isIP(text) === 0) throw new Error('must be an IP address such as 0.0.0.0, :: or 127.0.0.1');
  return text;
}

export function targets(text: string): readonly StaticTarget[] {
  try {
    return Object.freeze(parseTargets(text));
  } catch (err) {
    // The targets parser quotes the bad entry; the whole list again would only repeat it.
    throw new ShowsValue(err instanceof Error ? err.message : String(err), { cause: err });
  }
}

export function payloadBytes(text: string): number {
  const n = wholeNumber(1, 1472)(text);
  if (n < 8) throw new ShowsValue(`must be at least 8 (the cookie that replies must carry); got ${n}`);
  return n;
}

/** `node,pod` or `node`: the node network is always probed, the pod network beside it when asked. */
export function paths(text: string): readonly NetworkPath[] {
  const items = text.split(',').map((p) => p.trim());
  const unknown = items.find((p) => !(NETWORK_PATHS as readonly string[]).includes(p));
  if (unknown !== undefined || !items.includes('node')) throw new Error('must be node,pod (both networks) or node (the node network only)');
  return Object.freeze(NETWORK_PATHS.filter((p) => items.includes(p)));
}

/** 0 (the MTU of the interface the route to each peer leaves by) or the bytes of an IP packet, at least IPv6's 1280. */
export function mtuBytes(text: string): number {
  const n = wholeNumber(0, 65_535, 'the route interface MTU')(text);
  if (n !== 0 && n < 1280) throw new ShowsValue(`must be 0 (the route interface MTU) or at least 1280 bytes (IPv6's minimum MTU); got ${n}`);
  return n;
}

/** Each key is a setting, named as its Config field is; env and flag names derive from it unless given. */
export const SCHEMA = {
  role: choice(
    'What this process is: agent (probes; reads the node list and writes nothing) or controller (the elected writer of the node list, mentat-controller)',
    ['agent', 'controller'],
    'agent',
  ),
  node_name: { doc: 'This node: the origin_node attribute, and the node skipped', default: '', env: 'NODE_NAME', parse: text },
  discovery: choice('Where targets come from: Kubernetes if configured, else static (auto)', ['auto', 'kubernetes', 'static'], 'auto'),
  kubeconfig: { doc: 'Path of a kubeconfig used when not running in a cluster', default: '', env: 'KUBECONFIG', parse: text },
  targets: { doc: 'Static targets name=address,...; without Kubernetes and without targets, the loopback is probed', default: '', parse: targets },
  probe_interval: { doc: 'Time between two probes of one target', default: '1s', parse: duration(10, '10ms') },
  probe_timeout: {
    doc: 'A probe without a reply after this long counts as a timeout (default: 1s, or the interval when shorter)',
    default: '1s',
    parse: duration(1, '1ms'),
  },
  payload_bytes: {
    doc: 'ICMP payload bytes (at least 8: the cookie replies must carry)',
    default: '56',
    env: 'MENTAT_PAYLOAD_SIZE',
    flag: 'payload-size',
    parse: payloadBytes,
  },
  probe_self: flag('Also probe this node itself', 'false'),
  paths: {
    doc: 'Networks probed between nodes: node (node addresses) and pod (the agent pods of the peers, through the pod network; needs the published node list)',
    default: 'node,pod',
    values: ['node,pod', 'node'],
    parse: paths,
  },
  mtu: {
    doc: 'Size in bytes of the full-size, do-not-fragment probes that find path-MTU black holes (0: the MTU of the interface the route to each peer leaves by)',
    default: '0',
    parse: mtuBytes,
  },
  mtu_probe_interval: {
    doc: 'Time between two full-size, do-not-fragment probes of one peer and path (0s: no MTU probes; datagram sockets only)',
    default: '30s',
    parse: duration(1000, '1s', true),
  },
  address_family: choice(
    'Which node address to probe: the first, one family, or both (dual, with an ip_family attribute)',
    ['first', 'ipv4', 'ipv6', 'dual'],
    'first',
  ),
  icmp_mode: choice(
    'ICMP socket: dgram (unprivileged, needs net.ipv4.ping_group_range), raw (needs CAP_NET_RAW), auto (dgram, else raw)',
    ['auto', 'raw', 'dgram'],
    'auto',
  ),
  metrics_host: { doc: 'Address the HTTP server binds to (:: takes IPv4 too, and falls back to 0.0.0.0 without IPv6)', default: '::', parse: ipAddress },
  metrics_port: { doc: 'Port of /metrics, /healthz and /readyz', default: '2112', parse: port },
  buckets_seconds: {
    doc: 'Histogram bucket boundaries in seconds',
    default: DEFAULT_BUCKETS_SECONDS.join(','),
    env: 'MENTAT_BUCKETS',
    flag: 'buckets',
    parse: (text: string): readonly number[] => Object.freeze(parseBuckets(text)),
  },
  max_probes_per_second: {
    doc: 'Most probes per second in all; with more targets the interval stretches',
    default: '0',
    env: 'MENTAT_MAX_PPS',
    flag: 'max-pps',
    parse: wholeNumber(0, 1_000_000, 'no limit'),
  },
  max_targets: {
    doc: 'Most destinations probed every interval (and exported): the memory bound; the rest are swept',
    default: '10000',
    parse: wholeNumber(1, 100_000),
  },
  zone_attributes: flag(
    'Label series with origin_zone and destination_zone (from topology.kubernetes.io/zone; "unknown" without it): the alerts compare each pair with its zone pair',
    'true',
  ),
  mesh: choice(
    'Who probes whom: full (every node), sampled (MENTAT_PEERS nodes each, every pair swept), auto (full up to MENTAT_MESH_FULL_MAX nodes)',
    ['auto', 'full', 'sampled'],
    'auto',
  ),
  mesh_full_max: {
    doc: 'Largest cluster that auto probes as a full mesh (100 nodes: ~180k series cluster-wide)',
    default: '100',
    parse: wholeNumber(1, 100_000),
  },
  peers: { doc: 'Destinations of each agent in a sampled mesh; each node is probed by as many agents', default: '12', parse: wholeNumber(1, 1000) },
  sweep_interval: { doc: 'A sampled mesh probes every other node once per this long (0s: no sweep)', default: '30m', parse: duration(10_000, '10s', true) },
  outliers_max: {
    doc: 'Most pairs found by the sweep (loss, or slow for their zones) that get series of their own',
    default: '5',
    parse: wholeNumber(0, 1000, 'none'),
  },
  outlier_hold: { doc: 'How long an outlier keeps its series after it looks normal again', default: '15m', parse: duration(1000, '1s') },
  outlier_latency: {
    doc: 'A swept pair this much slower than the baseline of its zone pair is an outlier',
    default: '5ms',
    parse: (text: string): number => duration(0.1, '100us')(text) / 1000,
  },
  node_list: choice(
    'Where the node list comes from: auto (the list the mentat-controller publishes; needs POD_NAMESPACE), direct (every agent watches Nodes)',
    ['auto', 'direct'],
    'auto',
  ),
  namespace: {
    doc: "mentat's namespace, where the node list (and the controller's lease) lives (the DaemonSet and the Deployment set it)",
    default: '',
    env: 'POD_NAMESPACE',
    parse: text,
  },
  pod_name: {
    doc: 'This process by name: a controller replica in its lease (the manifests set it; default: the node name)',
    default: '',
    env: 'POD_NAME',
    parse: text,
  },
  lease_duration: {
    doc: "The controller's lease: a leader that has not renewed it for this long is replaced; the node-list index is refreshed every third of it",
    default: '30s',
    parse: duration(3000, '3s'),
  },
  node_warmup: { doc: 'A node younger than this reports itself as joining, so alerts stay quiet about it', default: '10m', parse: duration(0, '0s') },
  otlp_histogram: choice('OTLP histogram kind: explicit (the buckets) or exponential (base-2, precise quantiles)', ['explicit', 'exponential'], 'explicit'),
  log_level: choice('Log level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  otlp_endpoint: { doc: 'OTLP base endpoint; setting it turns OTLP push on', default: '', env: 'OTEL_EXPORTER_OTLP_ENDPOINT', parse: url },
  otlp_metrics_endpoint: {
    doc: 'OTLP metrics endpoint, used as is; setting it turns OTLP push on',
    default: '',
    env: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
    parse: url,
  },
  otlp_protocol: choice('OTLP protocol', ['http/protobuf', 'grpc'], 'http/protobuf', 'OTEL_EXPORTER_OTLP_PROTOCOL'),
  otlp_export_interval: {
    doc: 'Milliseconds between two OTLP exports',
    default: '60000',
    env: 'OTEL_METRIC_EXPORT_INTERVAL',
    parse: wholeNumber(1, 86_400_000),
  },
} as const satisfies Record<string, Setting<unknown>>;

export type Key = keyof typeof SCHEMA;
export const KEYS = Object.keys(SCHEMA) as Key[];

/** Each setting's value, typed by its parse. */
export type Values = { readonly [K in Key]: ReturnType<(typeof SCHEMA)[K]['parse']> };
