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

/** The validated, frozen configuration the agent runs with. */
export interface Config {
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
  /** Hard cap on probed (and exported) targets. */
  readonly maxTargets: number;
  /** Add origin_zone and destination_zone from topology.kubernetes.io/zone. */
  readonly zoneAttributes: boolean;
  /** Nodes probed per other zone (0: all); the own zone is always probed in full. */
  readonly samplePerZone: number;
  readonly resampleIntervalMs: number;
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
 * boundary more is 5000 more series on an agent of a 5000-node cluster.
 */
export const DEFAULT_BUCKETS_SECONDS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5];

const DURATION = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m)$/;
const UNIT_MS: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1000, m: 60_000 };

/** Parses `200ms`, `1s`, `1.5s`, `2m`; a bare number is refused because its unit would be a guess. */
export function parseDurationMs(text: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new Error('must be a duration with a unit, such as 200ms, 1s or 1.5s');
  return Number(match[1]) * UNIT_MS[match[2] as string]!;
}

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
    if (name === '') throw new Error(`entry "${item}" has an empty name; use name=address`);
    if (isIP(address) === 0) throw new Error(`entry "${item}": "${address}" is not an IPv4 or IPv6 address`);
    if (names.has(name)) throw new Error(`name "${name}" is given twice`);
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

function isOneOf<T extends string>(allowed: readonly T[]) {
  return (value: unknown): void => {
    if (!allowed.includes(value as T)) throw new Error(`must be one of ${allowed.join(', ')}`);
  };
}

function checked(parse: (text: string) => unknown) {
  return (value: unknown): void => {
    if (typeof value !== 'string') throw new Error('must be a string');
    parse(value);
  };
}

function positiveInt(max: number) {
  return (value: unknown): void => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`must be a whole number from 1 to ${max}`);
  };
}

function booleanText(value: unknown): void {
  if (!['true', 'false', true, false].includes(value as string | boolean)) throw new Error('must be true or false');
}

function url(value: unknown): void {
  if (value === '') return;
  try {
    const parsed = new URL(String(value));
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error();
  } catch {
    throw new Error('must be an http:// or https:// URL, such as http://otel-collector:4318');
  }
}

/** Each key is a setting; env and flag names derive from it unless given. */
const SCHEMA = {
  node_name: { doc: 'This node: the origin_node attribute, and the node skipped by default', default: '', env: 'NODE_NAME', format: String },
  discovery: { doc: 'Where targets come from: auto (Kubernetes if configured, else static), kubernetes, static', default: 'auto', format: isOneOf(['auto', 'kubernetes', 'static']) },
  kubeconfig: { doc: 'Path of a kubeconfig used when not running in a cluster', default: '', env: 'KUBECONFIG', format: String },
  targets: { doc: 'Static targets name=address,...; without Kubernetes and without targets, the loopback is probed', default: '', format: checked(parseTargets) },
  probe_interval: { doc: 'Time between two probes of one target', default: '1s', format: checked(parseDurationMs) },
  probe_timeout: { doc: 'A probe without a reply after this long counts as a timeout', default: '1s', format: checked(parseDurationMs) },
  payload_size: { doc: 'ICMP payload bytes (at least 8: the cookie replies must carry)', default: '56', format: positiveInt(1472) },
  probe_self: { doc: 'Also probe this node itself', default: 'false', format: booleanText },
  address_family: { doc: 'Which node address to probe: first, ipv4, ipv6, or dual (both, with an ip_family attribute)', default: 'first', format: isOneOf(['first', 'ipv4', 'ipv6', 'dual']) },
  icmp_mode: { doc: 'ICMP socket: raw (needs CAP_NET_RAW), dgram (unprivileged, needs net.ipv4.ping_group_range), auto', default: 'auto', format: isOneOf(['auto', 'raw', 'dgram']) },
  metrics_host: { doc: 'Address the HTTP server binds to (:: takes IPv4 too, and falls back to 0.0.0.0 without IPv6)', default: '::', format: (v: unknown) => { if (isIP(String(v)) === 0) throw new Error('must be an IP address such as 0.0.0.0, :: or 127.0.0.1'); } },
  metrics_port: { doc: 'Port of /metrics, /healthz and /readyz', default: '2112', format: (v: unknown) => { const n = Number(v); if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error('must be a port number from 0 to 65535'); } },
  buckets: { doc: 'Histogram bucket boundaries in seconds', default: DEFAULT_BUCKETS_SECONDS.join(','), format: checked(parseBuckets) },
  max_pps: { doc: 'Most probes per second in all; with more targets the interval stretches (0: no limit)', default: '0', format: (v: unknown) => { const n = Number(v); if (!Number.isInteger(n) || n < 0 || n > 1_000_000) throw new Error('must be a whole number from 0 (no limit) to 1000000'); } },
  max_targets: { doc: 'Most targets probed and exported; the rest are counted in mentat_targets{state="over_cap"}', default: '10000', format: positiveInt(100_000) },
  zone_attributes: { doc: 'Add origin_zone and destination_zone from the topology.kubernetes.io/zone label', default: 'false', format: booleanText },
  sample_per_zone: { doc: 'Probe every node of the own zone and this many of each other zone, rotating (0: all nodes)', default: '0', format: (v: unknown) => { const n = Number(v); if (!Number.isInteger(n) || n < 0 || n > 100_000) throw new Error('must be a whole number from 0 (all nodes) to 100000'); } },
  resample_interval: { doc: 'How often the sampled nodes of other zones rotate', default: '10m', format: checked(parseDurationMs) },
  otlp_histogram: { doc: 'OTLP histogram kind: explicit (the buckets) or exponential (base-2, precise quantiles)', default: 'explicit', format: isOneOf(['explicit', 'exponential']) },
  log_level: { doc: 'Log level', default: 'info', format: isOneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) },
  otlp_endpoint: { doc: 'OTLP base endpoint; setting it turns OTLP push on', default: '', env: 'OTEL_EXPORTER_OTLP_ENDPOINT', format: url },
  otlp_metrics_endpoint: { doc: 'OTLP metrics endpoint, used as is; setting it turns OTLP push on', default: '', env: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', format: url },
  otlp_protocol: { doc: 'OTLP protocol', default: 'http/protobuf', env: 'OTEL_EXPORTER_OTLP_PROTOCOL', format: isOneOf(['http/protobuf', 'grpc']) },
  otlp_export_interval: { doc: 'Milliseconds between two OTLP exports', default: '60000', env: 'OTEL_METRIC_EXPORT_INTERVAL', format: positiveInt(86_400_000) },
} as const;

type Key = keyof typeof SCHEMA;

/** The environment variable that sets a key. */
export function envName(key: Key): string {
  const spec = SCHEMA[key] as { env?: string };
  return spec.env ?? `MENTAT_${key.toUpperCase()}`;
}

/** The command-line flag that sets a key. */
export function flagName(key: Key): string {
  return key.replaceAll('_', '-');
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

/** One line per setting and what it accepts, for --help. */
export function usage(): string {
  return (Object.keys(SCHEMA) as Key[])
    .map((key) => `  --${flagName(key)}  ${envName(key)}  ${SCHEMA[key].doc} (default: ${SCHEMA[key].default || 'unset'})`)
    .join('\n');
}

/**
 * Validates env and flags once, at the edge.
 * @throws ConfigError naming the setting and what it accepts
 */
export function loadConfig(input: LoadInput): Loaded {
  const known = new Set((Object.keys(SCHEMA) as Key[]).map(flagName));
  for (const arg of input.argv) {
    if (!arg.startsWith('--')) continue;
    const flag = arg.slice(2).split('=')[0]!;
    if (!known.has(flag)) throw new ConfigError(`unknown flag --${flag}; run with --help to list the settings`);
  }

  const schema: Record<string, convict.SchemaObj> = {};
  for (const key of Object.keys(SCHEMA) as Key[]) {
    schema[key] = { ...SCHEMA[key], env: envName(key), arg: flagName(key) };
  }
  const warnings: string[] = [];
  // convict ignores empty strings poorly: an exported-but-empty variable means "unset".
  // Kubernetes injects service links (a Service "mentat-metrics" gives MENTAT_METRICS_PORT=tcp://...):
  // those are not settings, so they are skipped rather than stopping start-up.
  const env = Object.fromEntries(
    Object.entries(input.env).filter(([name, v]) => {
      if (v === undefined || v === '') return false;
      if (name.startsWith('MENTAT_') && /^(tcp|udp|sctp):\/\//.test(v)) {
        warnings.push(`${name}=${v} looks like a Kubernetes service link, not a setting, and is ignored; set enableServiceLinks: false in the pod`);
        return false;
      }
      return true;
    }),
  );
  let raw: Record<Key, string>;
  try {
    const c = convict(schema, { env, args: [...input.argv] });
    c.validate({ allowed: 'strict' });
    raw = c.getProperties() as Record<Key, string>;
  } catch (err) {
    const first = String((err as Error).message).split('\n')[0]!;
    const m = /^([a-z_]+): (.*?)(?:: value was (.*))?$/.exec(first);
    if (!m) throw new ConfigError(first);
    const got = m[3] === undefined ? '' : `; got ${m[3]}`;
    throw new ConfigError(`${describe(m[1]!)} ${m[2]!.trim()}${got}`);
  }

  const probeIntervalMs = parseDurationMs(raw.probe_interval);
  const probeTimeoutMs = parseDurationMs(raw.probe_timeout);
  if (probeIntervalMs < 10) throw new ConfigError(`${describe('probe_interval')} must be at least 10ms; got ${raw.probe_interval}`);
  if (probeTimeoutMs < 1) throw new ConfigError(`${describe('probe_timeout')} must be at least 1ms; got ${raw.probe_timeout}`);
  if (probeTimeoutMs > probeIntervalMs) {
    throw new ConfigError(`${describe('probe_timeout')} (${raw.probe_timeout}) must not exceed ${describe('probe_interval')} (${raw.probe_interval}): a probe must end before the next one to the same target starts`);
  }
  if (parseDurationMs(raw.resample_interval) < 1000) throw new ConfigError(`${describe('resample_interval')} must be at least 1s; got ${raw.resample_interval}`);
  const payloadBytes = Number(raw.payload_size);
  if (payloadBytes < 8) throw new ConfigError(`${describe('payload_size')} must be at least 8 (the cookie that replies must carry); got ${payloadBytes}`);

  const targets = parseTargets(raw.targets);
  const discovery = raw.discovery as DiscoveryMode;
  if (discovery === 'kubernetes' && targets.length > 0) {
    throw new ConfigError(`${describe('targets')} cannot be combined with ${describe('discovery')}=kubernetes; use discovery=static or auto`);
  }

  const otlpUrl = raw.otlp_metrics_endpoint || raw.otlp_endpoint;
  const otlp: OtlpConfig | undefined = otlpUrl
    ? {
        endpoint: otlpUrl,
        signalSpecific: raw.otlp_metrics_endpoint !== '',
        protocol: raw.otlp_protocol as OtlpProtocol,
        exportIntervalMs: Number(raw.otlp_export_interval),
        histogram: raw.otlp_histogram as OtlpHistogram,
      }
    : undefined;

  const knownEnv = new Set((Object.keys(SCHEMA) as Key[]).map(envName));
  for (const name of Object.keys(env)) {
    if (name.startsWith('MENTAT_') && !knownEnv.has(name) && !/_SERVICE_(HOST|PORT)|_PORT(_\d+_(TCP|UDP|SCTP))?(_|$)/.test(name)) {
      warnings.push(`unknown setting ${name} is ignored; run with --help to list the settings`);
    }
  }

  const config: Config = {
    nodeName: raw.node_name || input.hostname,
    discovery,
    kubeconfig: raw.kubeconfig || undefined,
    targets: Object.freeze(targets),
    probeIntervalMs,
    probeTimeoutMs,
    payloadBytes,
    probeSelf: String(raw.probe_self) === 'true',
    addressFamily: raw.address_family as AddressFamilyPolicy,
    icmpMode: raw.icmp_mode as IcmpMode,
    metricsHost: raw.metrics_host,
    metricsPort: Number(raw.metrics_port),
    bucketsSeconds: Object.freeze(parseBuckets(raw.buckets)),
    maxProbesPerSecond: Number(raw.max_pps),
    maxTargets: Number(raw.max_targets),
    zoneAttributes: String(raw.zone_attributes) === 'true',
    samplePerZone: Number(raw.sample_per_zone),
    resampleIntervalMs: parseDurationMs(raw.resample_interval),
    logLevel: raw.log_level as LogLevel,
    otlp: otlp && Object.freeze(otlp),
  };
  return { config: Object.freeze(config), warnings };
}
