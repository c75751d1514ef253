import convict from 'convict';
import { isIP } from 'node:net';

/** A target given on the command line or in MENTAT_TARGETS: no Kubernetes needed. */
export interface StaticTarget {
  readonly name: string;
  readonly address: string;
}

export type DiscoveryMode = 'auto' | 'kubernetes' | 'static';
export type AddressFamilyPolicy = 'first' | 'ipv4' | 'ipv6' | 'dual';
export type IcmpMode = 'auto' | 'raw' | 'dgram';
export type MeshMode = 'auto' | 'full' | 'sampled';
export type NodeListMode = 'auto' | 'direct';
/** agent: probes (the DaemonSet); controller: elected writer of the node list (the mentat-controller Deployment). */
export type Role = 'agent' | 'controller';
export type OtlpProtocol = 'http/protobuf' | 'grpc';
export type OtlpHistogram = 'explicit' | 'exponential';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface OtlpConfig {
  /** Full URL of the metrics endpoint, or the base endpoint (the exporter appends /v1/metrics for HTTP). */
  readonly endpoint: string;
  /** True when the URL came from OTEL_EXPORTER_OTLP_METRICS_ENDPOINT and is used as is. */
  readonly signalSpecific: boolean;
  readonly protocol: OtlpProtocol;
  readonly exportIntervalMs: number;
  /** Base-2 exponential histograms give precise quantiles with far fewer series than explicit buckets. */
  readonly histogram: OtlpHistogram;
}

/** Which nodes an agent probes, and how the rest are still covered (src/mesh/). */
export interface MeshConfig {
  readonly mode: MeshMode;
  /** `auto` is a full mesh up to this many nodes, a sampled one above. */
  readonly fullMax: number;
  /** Destinations of each agent in a sampled mesh (k). */
  readonly peers: number;
  /** Every other node is probed once per this long; 0: no sweep. */
  readonly sweepIntervalMs: number;
  /** Pairs with series of their own at most, found by the sweep. */
  readonly outliersMax: number;
  /** An outlier keeps its series this long after it looks normal again. */
  readonly outlierHoldMs: number;
  /** A swept pair this much slower than its zone pair's baseline is an outlier. */
  readonly outlierLatencySeconds: number;
  /** A node younger than this reports itself as joining (alerts stay quiet about it). */
  readonly nodeWarmupMs: number;
}

/** Where the node list comes from (src/kube/node-source.ts). */
export interface NodeListConfig {
  /** auto: the list one elected agent publishes (in a pod, with a namespace), else direct. */
  readonly mode: NodeListMode;
  /** mentat's namespace (POD_NAMESPACE): where the lease and the list live. */
  readonly namespace: string | undefined;
  /** This agent in the lease (POD_NAME, else the node name). */
  readonly identity: string;
  readonly leaseDurationMs: number;
}

/** The validated, frozen configuration the agent runs with. */
export interface Config {
  readonly role: Role;
  readonly nodeName: string;
  readonly discovery: DiscoveryMode;
  readonly kubeconfig: string | undefined;
  readonly targets: readonly StaticTarget[];
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly payloadBytes: number;
  readonly probeSelf: boolean;
  readonly addressFamily: AddressFamilyPolicy;
  readonly icmpMode: IcmpMode;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly bucketsSeconds: readonly number[];
  /** Global packet budget; the interval stretches beyond it. 0: none. */
  readonly maxProbesPerSecond: number;
  /** Hard cap on destinations probed every interval (and exported): the pod's memory bound. */
  readonly maxTargets: number;
  /** Add origin_zone and destination_zone from topology.kubernetes.io/zone. */
  readonly zoneAttributes: boolean;
  readonly mesh: MeshConfig;
  readonly nodeList: NodeListConfig;
  readonly logLevel: LogLevel;
  readonly otlp: OtlpConfig | undefined;
}

/** Start-up stops on this: the message names the setting and what it accepts. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * 100 µs to 500 ms in 1-2.5-5 steps: 12 boundaries, 18 series per destination in all. Same-zone
 * (0.1-0.5 ms), cross-zone (0.5-2.5 ms) and cross-region RTTs land in distinct buckets; each
 * boundary more is a series more per destination of every agent.
 */
export const DEFAULT_BUCKETS_SECONDS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5];

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

type Validator = (value: unknown) => void;

function oneOf(allowed: readonly string[]): Validator {
  return (value) => {
    if (!allowed.includes(value as string)) throw new Error(`must be one of ${allowed.join(', ')}`);
  };
}

/** Strings that a parser accepts; the value is parsed again, typed, once validation passed. */
function parsedBy(parse: (text: string) => unknown): Validator {
  return (value) => {
    if (typeof value !== 'string') throw new Error('must be a string');
    parse(value);
  };
}

/** Whole numbers in [min, max]; `zero` says what 0 means when 0 is allowed. */
function wholeNumber(min: number, max: number, zero?: string): Validator {
  const range = min === 0 && zero ? `from 0 (${zero}) to ${max}` : `from ${min} to ${max}`;
  return (value) => {
    const n = Number(value);
    if (value === '' || !Number.isInteger(n) || n < min || n > max) throw new Error(`must be a whole number ${range}`);
  };
}

const booleanText: Validator = (value) => {
  if (!['true', 'false', true, false].includes(value as string | boolean)) throw new Error('must be true or false');
};

const url: Validator = (value) => {
  if (value === '') return;
  try {
    const parsed = new URL(String(value));
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error();
  } catch {
    throw new Error('must be an http:// or https:// URL, such as http://otel-collector:4318');
  }
};

const port: Validator = (value) => {
  const n = Number(value);
  if (value === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new Error('must be a port number from 0 to 65535');
};

const ipAddress: Validator = (value) => {
  if (isIP(String(value)) === 0) throw new Error('must be an IP address such as 0.0.0.0, :: or 127.0.0.1');
};

interface Setting {
  readonly doc: string;
  readonly default: string;
  /** The environment variable, when it is not MENTAT_ + the key in capitals. */
  readonly env?: string;
  /** The flag, when it is not the key with dashes. */
  readonly flag?: string;
  readonly format: Validator;
  /** The values an enumeration takes, for --help. */
  readonly values?: readonly string[];
}

function choice(doc: string, values: readonly string[], fallback: string, extra: Partial<Setting> = {}): Setting {
  return { doc, default: fallback, format: oneOf(values), values, ...extra };
}

/** Each key is a setting, named as its Config field is; env and flag names derive from it unless given. */
const SCHEMA = {
  role: choice(
    'What this process is: agent (probes; reads the node list and writes nothing) or controller (the elected writer of the node list, mentat-controller)',
    ['agent', 'controller'],
    'agent',
  ),
  node_name: { doc: 'This node: the origin_node attribute, and the node skipped', default: '', env: 'NODE_NAME', format: String },
  discovery: choice('Where targets come from: Kubernetes if configured, else static (auto)', ['auto', 'kubernetes', 'static'], 'auto'),
  kubeconfig: { doc: 'Path of a kubeconfig used when not running in a cluster', default: '', env: 'KUBECONFIG', format: String },
  targets: {
    doc: 'Static targets name=address,...; without Kubernetes and without targets, the loopback is probed',
    default: '',
    format: parsedBy(parseTargets),
  },
  probe_interval: { doc: 'Time between two probes of one target', default: '1s', format: parsedBy(parseDurationMs) },
  probe_timeout: {
    doc: 'A probe without a reply after this long counts as a timeout (default: 1s, or the interval when shorter)',
    default: '1s',
    format: parsedBy(parseDurationMs),
  },
  payload_bytes: {
    doc: 'ICMP payload bytes (at least 8: the cookie replies must carry)',
    default: '56',
    env: 'MENTAT_PAYLOAD_SIZE',
    flag: 'payload-size',
    format: wholeNumber(1, 1472),
  },
  probe_self: { doc: 'Also probe this node itself', default: 'false', format: booleanText },
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
  metrics_host: { doc: 'Address the HTTP server binds to (:: takes IPv4 too, and falls back to 0.0.0.0 without IPv6)', default: '::', format: ipAddress },
  metrics_port: { doc: 'Port of /metrics, /healthz and /readyz', default: '2112', format: port },
  buckets_seconds: {
    doc: 'Histogram bucket boundaries in seconds',
    default: DEFAULT_BUCKETS_SECONDS.join(','),
    env: 'MENTAT_BUCKETS',
    flag: 'buckets',
    format: parsedBy(parseBuckets),
  },
  max_probes_per_second: {
    doc: 'Most probes per second in all; with more targets the interval stretches',
    default: '0',
    env: 'MENTAT_MAX_PPS',
    flag: 'max-pps',
    format: wholeNumber(0, 1_000_000, 'no limit'),
  },
  max_targets: {
    doc: 'Most destinations probed every interval (and exported): the memory bound; the rest are swept',
    default: '10000',
    format: wholeNumber(1, 100_000),
  },
  zone_attributes: {
    doc: 'Label series with origin_zone and destination_zone (from topology.kubernetes.io/zone; "unknown" without it): the alerts compare each pair with its zone pair',
    default: 'true',
    format: booleanText,
  },
  mesh: choice(
    'Who probes whom: full (every node), sampled (MENTAT_PEERS nodes each, every pair swept), auto (full up to MENTAT_MESH_FULL_MAX nodes)',
    ['auto', 'full', 'sampled'],
    'auto',
  ),
  mesh_full_max: {
    doc: 'Largest cluster that auto probes as a full mesh (100 nodes: ~180k series cluster-wide)',
    default: '100',
    format: wholeNumber(1, 100_000),
  },
  peers: { doc: 'Destinations of each agent in a sampled mesh; each node is probed by as many agents', default: '12', format: wholeNumber(1, 1000) },
  sweep_interval: { doc: 'A sampled mesh probes every other node once per this long (0s: no sweep)', default: '30m', format: parsedBy(parseDurationMs) },
  outliers_max: {
    doc: 'Most pairs found by the sweep (loss, or slow for their zones) that get series of their own',
    default: '5',
    format: wholeNumber(0, 1000, 'none'),
  },
  outlier_hold: { doc: 'How long an outlier keeps its series after it looks normal again', default: '15m', format: parsedBy(parseDurationMs) },
  outlier_latency: { doc: 'A swept pair this much slower than the baseline of its zone pair is an outlier', default: '5ms', format: parsedBy(parseDurationMs) },
  node_list: choice(
    'Where the node list comes from: auto (one elected agent watches Nodes and publishes a compact list to the others; needs POD_NAMESPACE), direct (every agent watches Nodes)',
    ['auto', 'direct'],
    'auto',
  ),
  namespace: { doc: "mentat's namespace, for the node-list lease and shards (the DaemonSet sets it)", default: '', env: 'POD_NAMESPACE', format: String },
  pod_name: { doc: 'This agent in the node-list lease (the DaemonSet sets it; default: the node name)', default: '', env: 'POD_NAME', format: String },
  lease_duration: { doc: 'A node-list publisher that has not renewed its lease for this long is replaced', default: '30s', format: parsedBy(parseDurationMs) },
  node_warmup: { doc: 'A node younger than this reports itself as joining, so alerts stay quiet about it', default: '10m', format: parsedBy(parseDurationMs) },
  otlp_histogram: choice('OTLP histogram kind: explicit (the buckets) or exponential (base-2, precise quantiles)', ['explicit', 'exponential'], 'explicit'),
  log_level: choice('Log level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  otlp_endpoint: { doc: 'OTLP base endpoint; setting it turns OTLP push on', default: '', env: 'OTEL_EXPORTER_OTLP_ENDPOINT', format: url },
  otlp_metrics_endpoint: {
    doc: 'OTLP metrics endpoint, used as is; setting it turns OTLP push on',
    default: '',
    env: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
    format: url,
  },
  otlp_protocol: choice('OTLP protocol', ['http/protobuf', 'grpc'], 'http/protobuf', { env: 'OTEL_EXPORTER_OTLP_PROTOCOL' }),
  otlp_export_interval: {
    doc: 'Milliseconds between two OTLP exports',
    default: '60000',
    env: 'OTEL_METRIC_EXPORT_INTERVAL',
    format: wholeNumber(1, 86_400_000),
  },
} as const satisfies Record<string, Setting>;

type Key = keyof typeof SCHEMA;
const KEYS = Object.keys(SCHEMA) as Key[];
const BOOLEAN_KEYS: ReadonlySet<Key> = new Set(['probe_self', 'zone_attributes']);

/** Settings of earlier versions that users may still set, and what replaced them. */
const RETIRED: Readonly<Record<string, string>> = {
  MENTAT_SAMPLE_PER_ZONE: 'the sampled mesh replaces per-zone sampling: MENTAT_MESH, MENTAT_PEERS and MENTAT_SWEEP_INTERVAL (every pair is still swept)',
  MENTAT_RESAMPLE_INTERVAL:
    'the sampled mesh does not rotate (rotation made new series every interval): every pair is swept every MENTAT_SWEEP_INTERVAL instead',
};

/** The environment variable that sets a key. */
export function envName(key: Key): string {
  return (SCHEMA[key] as Setting).env ?? `MENTAT_${key.toUpperCase()}`;
}

/** The command-line flag that sets a key. */
export function flagName(key: Key): string {
  return (SCHEMA[key] as Setting).flag ?? key.replaceAll('_', '-');
}

function describe(key: string): string {
  return key in SCHEMA ? `${envName(key as Key)} (--${flagName(key as Key)})` : key;
}

export interface LoadInput {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly argv: readonly string[];
  /** Used when NODE_NAME is unset. */
  readonly hostname: string;
}

export interface Loaded {
  readonly config: Config;
  /** Things worth a log line that do not stop start-up, such as unknown MENTAT_* variables. */
  readonly warnings: readonly string[];
}

/** Every setting: its variable, flag and default, as --help and the README list them. */
export function settings(): Array<{ env: string; flag: string; default: string; values?: readonly string[] }> {
  return KEYS.map((key) => {
    const setting: Setting = SCHEMA[key];
    return { env: envName(key), flag: `--${flagName(key)}`, default: setting.default, ...(setting.values ? { values: setting.values } : {}) };
  });
}

/** One line per setting and what it accepts, for --help. */
export function usage(): string {
  return KEYS.map((key) => {
    const setting: Setting = SCHEMA[key];
    const values = setting.values ? ` [${setting.values.join('|')}]` : '';
    return `  --${flagName(key)}  ${envName(key)}${values}  ${setting.doc} (default: ${setting.default || 'unset'})`;
  }).join('\n');
}

/** Flags are `--name value` or `--name=value`; only true/false settings may stand alone. */
function checkFlags(argv: readonly string[]): void {
  const byFlag = new Map(KEYS.map((key) => [flagName(key), key]));
  argv.forEach((arg, i) => {
    if (!arg.startsWith('--')) return;
    const [flag = '', inline] = arg.slice(2).split(/=(.*)/s);
    const key = byFlag.get(flag);
    if (key === undefined) throw new ConfigError(`unknown flag --${flag}; run with --help to list the settings`);
    const next = argv[i + 1];
    if (inline === undefined && !BOOLEAN_KEYS.has(key) && (next === undefined || next.startsWith('--'))) {
      throw new ConfigError(`--${flag} needs a value, such as --${flag}=${SCHEMA[key].default || 'VALUE'}`);
    }
  });
}

/** Variables a user set, without the ones that only look like settings (Kubernetes service links). */
function settingsEnv(input: LoadInput, warnings: string[]): Record<string, string> {
  // An exported-but-empty variable means "unset". Kubernetes injects service links (a Service
  // "mentat-metrics" gives MENTAT_METRICS_PORT=tcp://...): not settings, skipped rather than fatal.
  const env: Record<string, string> = {};
  for (const [name, v] of Object.entries(input.env)) {
    if (v === undefined || v === '') continue;
    if (name.startsWith('MENTAT_') && /^(tcp|udp|sctp):\/\//.test(v)) {
      warnings.push(`${name}=${v} looks like a Kubernetes service link, not a setting, and is ignored; set enableServiceLinks: false in the pod`);
      continue;
    }
    env[name] = v;
  }
  const knownEnv = new Set(KEYS.map(envName));
  for (const name of Object.keys(env)) {
    if (!name.startsWith('MENTAT_') || knownEnv.has(name)) continue;
    if (RETIRED[name]) warnings.push(`${name} is no longer used and is ignored: ${RETIRED[name]}`);
    else if (!/_SERVICE_(HOST|PORT)|_PORT(_\d+_(TCP|UDP|SCTP))?(_|$)/.test(name))
      warnings.push(`unknown setting ${name} is ignored; run with --help to list the settings`);
  }
  return env;
}

/** convict's validation, with its message turned into one line that names the setting. */
function validate(env: Record<string, string>, argv: readonly string[]): Record<Key, string> {
  const schema: Record<string, convict.SchemaObj> = {};
  for (const key of KEYS) {
    const { doc, default: fallback, format } = SCHEMA[key] as Setting;
    schema[key] = { doc, default: fallback, format, env: envName(key), arg: flagName(key) };
  }
  try {
    const c = convict(schema, { env, args: [...argv] });
    c.validate({ allowed: 'strict' });
    return c.getProperties() as Record<Key, string>;
  } catch (err) {
    const first = String((err as Error).message).split('\n')[0]!;
    const m = /^([a-z_]+): (.*?)(?:: value was (.*))?$/.exec(first);
    if (!m) throw new ConfigError(first);
    // The targets parser quotes what is wrong; the whole list again would only repeat it.
    const got = m[3] === undefined || m[1] === 'targets' ? '' : `; got ${m[3]}`;
    throw new ConfigError(`${describe(m[1]!)} ${m[2]!.trim()}${got}`);
  }
}

function durationSetting(raw: Record<Key, string>, key: Key, minMs: number, minText: string, allowZero = false): number {
  const ms = parseDurationMs(raw[key]);
  if (ms < minMs && !(allowZero && ms === 0))
    throw new ConfigError(`${describe(key)} must be at least ${minText}${allowZero ? ' (or 0s: off)' : ''}; got ${raw[key]}`);
  return ms;
}

/** Interval and timeout: the timeout follows a short interval unless it is set. */
function probeTiming(raw: Record<Key, string>, env: Record<string, string>, argv: readonly string[]): { probeIntervalMs: number; probeTimeoutMs: number } {
  const probeIntervalMs = durationSetting(raw, 'probe_interval', 10, '10ms');
  const timeoutSet =
    env[envName('probe_timeout')] !== undefined || argv.some((a) => a === `--${flagName('probe_timeout')}` || a.startsWith(`--${flagName('probe_timeout')}=`));
  const probeTimeoutMs = timeoutSet ? durationSetting(raw, 'probe_timeout', 1, '1ms') : Math.min(parseDurationMs(raw.probe_timeout), probeIntervalMs);
  if (probeTimeoutMs > probeIntervalMs) {
    throw new ConfigError(
      `${describe('probe_timeout')} (${raw.probe_timeout}) must not exceed ${describe('probe_interval')} (${raw.probe_interval}): a probe must end before the next one to the same target starts`,
    );
  }
  return { probeIntervalMs, probeTimeoutMs };
}

function meshConfig(raw: Record<Key, string>): MeshConfig {
  return Object.freeze({
    mode: raw.mesh as MeshMode,
    fullMax: Number(raw.mesh_full_max),
    peers: Number(raw.peers),
    sweepIntervalMs: durationSetting(raw, 'sweep_interval', 10_000, '10s', true),
    outliersMax: Number(raw.outliers_max),
    outlierHoldMs: durationSetting(raw, 'outlier_hold', 1000, '1s'),
    outlierLatencySeconds: durationSetting(raw, 'outlier_latency', 0.1, '100us') / 1000,
    nodeWarmupMs: durationSetting(raw, 'node_warmup', 0, '0s'),
  });
}

function otlpConfig(raw: Record<Key, string>): OtlpConfig | undefined {
  const endpoint = raw.otlp_metrics_endpoint || raw.otlp_endpoint;
  if (!endpoint) return undefined;
  return Object.freeze({
    endpoint,
    signalSpecific: raw.otlp_metrics_endpoint !== '',
    protocol: raw.otlp_protocol as OtlpProtocol,
    exportIntervalMs: Number(raw.otlp_export_interval),
    histogram: raw.otlp_histogram as OtlpHistogram,
  });
}

/**
 * Validates env and flags once, at the edge.
 * @throws ConfigError naming the setting and what it accepts
 */
export function loadConfig(input: LoadInput): Loaded {
  checkFlags(input.argv);
  const warnings: string[] = [];
  const env = settingsEnv(input, warnings);
  const raw = validate(env, input.argv);

  const payloadBytes = Number(raw.payload_bytes);
  if (payloadBytes < 8) throw new ConfigError(`${describe('payload_bytes')} must be at least 8 (the cookie that replies must carry); got ${payloadBytes}`);
  const targets = parseTargets(raw.targets);
  const discovery = raw.discovery as DiscoveryMode;
  if (discovery === 'kubernetes' && targets.length > 0) {
    throw new ConfigError(`${describe('targets')} cannot be combined with ${describe('discovery')}=kubernetes; use discovery=static or auto`);
  }

  const config: Config = {
    role: raw.role as Role,
    nodeName: raw.node_name || input.hostname,
    discovery,
    kubeconfig: raw.kubeconfig || undefined,
    targets: Object.freeze(targets),
    ...probeTiming(raw, env, input.argv),
    payloadBytes,
    probeSelf: String(raw.probe_self) === 'true',
    addressFamily: raw.address_family as AddressFamilyPolicy,
    icmpMode: raw.icmp_mode as IcmpMode,
    metricsHost: raw.metrics_host,
    metricsPort: Number(raw.metrics_port),
    bucketsSeconds: Object.freeze(parseBuckets(raw.buckets_seconds)),
    maxProbesPerSecond: Number(raw.max_probes_per_second),
    maxTargets: Number(raw.max_targets),
    zoneAttributes: String(raw.zone_attributes) === 'true',
    mesh: meshConfig(raw),
    nodeList: Object.freeze({
      mode: raw.node_list as NodeListMode,
      namespace: raw.namespace || undefined,
      identity: raw.pod_name || raw.node_name || input.hostname,
      leaseDurationMs: durationSetting(raw, 'lease_duration', 3000, '3s'),
    }),
    logLevel: raw.log_level as LogLevel,
    otlp: otlpConfig(raw),
  };
  return { config: Object.freeze(config), warnings };
}
