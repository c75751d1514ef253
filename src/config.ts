import { KEYS, SCHEMA, ShowsValue, type Key, type Setting, type Values } from './config-schema.js';

export { DEFAULT_BUCKETS_SECONDS, parseBuckets, parseDurationMs, parseTargets, type StaticTarget } from './config-schema.js';

/** Start-up stops on this: the message names the setting and what it accepts. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Where a value came from; the lookup is flag, then environment, then default. */
export type Source = 'flag' | 'env' | 'default';
type Origins = { readonly [K in Key]: { readonly text: string; readonly source: Source } };

export type Role = Values['role'];
export type DiscoveryMode = Values['discovery'];
export type AddressFamilyPolicy = Values['address_family'];
export type IcmpMode = Values['icmp_mode'];
export type MeshMode = Values['mesh'];
export type NodeListMode = Values['node_list'];
export type OtlpProtocol = Values['otlp_protocol'];
export type OtlpHistogram = Values['otlp_histogram'];
export type LogLevel = Values['log_level'];

/** Settings of earlier versions that users may still set, and what replaced them. */
const RETIRED: Readonly<Record<string, string>> = {
  MENTAT_SAMPLE_PER_ZONE: 'the sampled mesh replaces per-zone sampling: MENTAT_MESH, MENTAT_PEERS and MENTAT_SWEEP_INTERVAL (every pair is still swept)',
  MENTAT_RESAMPLE_INTERVAL:
    'the sampled mesh does not rotate (rotation made new series every interval): every pair is swept every MENTAT_SWEEP_INTERVAL instead',
};

function setting(key: Key): Setting<unknown> {
  return SCHEMA[key];
}

/** The environment variable that sets a key. */
export function envName(key: Key): string {
  return setting(key).env ?? `MENTAT_${key.toUpperCase()}`;
}

/** The command-line flag that sets a key. */
export function flagName(key: Key): string {
  return setting(key).flag ?? key.replaceAll('_', '-');
}

function describe(key: Key): string {
  return `${envName(key)} (--${flagName(key)})`;
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
    const { default: fallback, values } = setting(key);
    return { env: envName(key), flag: `--${flagName(key)}`, default: fallback, ...(values ? { values } : {}) };
  });
}

/** One line per setting and what it accepts, for --help. */
export function usage(): string {
  return KEYS.map((key) => {
    const { doc, default: fallback, values } = setting(key);
    return `  --${flagName(key)}  ${envName(key)}${values ? ` [${values.join('|')}]` : ''}  ${doc} (default: ${fallback || 'unset'})`;
  }).join('\n');
}

/** Flags are `--name value` or `--name=value`; only true/false settings may stand alone. A repeated flag's values join with commas, as lists take them. */
function flagTexts(argv: readonly string[]): Map<Key, string> {
  const byFlag = new Map(KEYS.map((key) => [flagName(key), key]));
  const texts = new Map<Key, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) continue;
    const [name = '', inline] = arg.slice(2).split(/=(.*)/s);
    const key = byFlag.get(name);
    if (key === undefined) throw new ConfigError(`unknown flag --${name}; run with --help to list the settings`);
    const next = argv[i + 1];
    let value: string;
    if (inline !== undefined) value = inline;
    else if (next !== undefined && !next.startsWith('--')) value = argv[++i]!;
    else if (setting(key).standalone) value = 'true';
    else throw new ConfigError(`--${name} needs a value, such as --${name}=${setting(key).default || 'VALUE'}`);
    const earlier = texts.get(key);
    texts.set(key, earlier === undefined ? value : `${earlier},${value}`);
  }
  return texts;
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

/** Flag, then environment, then default, each parsed once; the first refusal names the setting. */
function lookUp(flags: Map<Key, string>, env: Record<string, string>): { values: Values; origins: Origins } {
  const values: Record<string, unknown> = {};
  const origins: Record<string, Origins[Key]> = {};
  for (const key of KEYS) {
    const fromFlag = flags.get(key);
    const fromEnv = env[envName(key)];
    const [text, source]: [string, Source] =
      fromFlag !== undefined ? [fromFlag, 'flag'] : fromEnv !== undefined ? [fromEnv, 'env'] : [setting(key).default, 'default'];
    try {
      values[key] = setting(key).parse(text);
    } catch (err) {
      const got = err instanceof ShowsValue ? '' : `; got ${JSON.stringify(text)}`;
      throw new ConfigError(`${describe(key)} ${err instanceof Error ? err.message : String(err)}${got}`, { cause: err });
    }
    origins[key] = { text, source };
  }
  // Each value is what its own setting's parse returned: the record matches Values by construction.
  return { values: values as Values, origins: origins as Origins };
}

function meshGroup(v: Values) {
  return Object.freeze({
    mode: v.mesh,
    /** `auto` is a full mesh up to this many nodes, a sampled one above. */
    fullMax: v.mesh_full_max,
    /** Destinations of each agent in a sampled mesh (k). */
    peers: v.peers,
    /** Every other node is probed once per this long; 0: no sweep. */
    sweepIntervalMs: v.sweep_interval,
    /** Pairs with series of their own at most, found by the sweep. */
    outliersMax: v.outliers_max,
    /** An outlier keeps its series this long after it looks normal again. */
    outlierHoldMs: v.outlier_hold,
    /** A swept pair this much slower than its zone pair's baseline is an outlier. */
    outlierLatencySeconds: v.outlier_latency,
    /** A node younger than this reports itself as joining (alerts stay quiet about it). */
    nodeWarmupMs: v.node_warmup,
  });
}

function nodeListGroup(v: Values, hostname: string) {
  return Object.freeze({
    /** auto: the list one elected agent publishes (in a pod, with a namespace), else direct. */
    mode: v.node_list,
    /** mentat's namespace (POD_NAMESPACE): where the lease and the list live. */
    namespace: v.namespace || undefined,
    /** This agent in the lease (POD_NAME, else the node name). */
    identity: v.pod_name || v.node_name || hostname,
    leaseDurationMs: v.lease_duration,
  });
}

function otlpGroup(v: Values) {
  const endpoint = v.otlp_metrics_endpoint || v.otlp_endpoint;
  if (!endpoint) return undefined;
  return Object.freeze({
    /** Full URL of the metrics endpoint, or the base endpoint (the exporter appends /v1/metrics for HTTP). */
    endpoint,
    /** True when the URL came from OTEL_EXPORTER_OTLP_METRICS_ENDPOINT and is used as is. */
    signalSpecific: v.otlp_metrics_endpoint !== '',
    protocol: v.otlp_protocol,
    exportIntervalMs: v.otlp_export_interval,
    /** Base-2 exponential histograms give precise quantiles with far fewer series than explicit buckets. */
    histogram: v.otlp_histogram,
  });
}

/** Where the flat values become the agent's grouped, frozen configuration (with the three groups above); cross-field rules live here. */
function assemble(v: Values, origins: Origins, hostname: string) {
  // The timeout follows a short interval unless it was set.
  const probeTimeoutMs = origins.probe_timeout.source === 'default' ? Math.min(v.probe_timeout, v.probe_interval) : v.probe_timeout;
  if (probeTimeoutMs > v.probe_interval) {
    throw new ConfigError(
      `${describe('probe_timeout')} (${origins.probe_timeout.text}) must not exceed ${describe('probe_interval')} (${origins.probe_interval.text}): a probe must end before the next one to the same target starts`,
    );
  }
  if (v.discovery === 'kubernetes' && v.targets.length > 0) {
    throw new ConfigError(`${describe('targets')} cannot be combined with ${describe('discovery')}=kubernetes; use discovery=static or auto`);
  }
  return Object.freeze({
    role: v.role,
    nodeName: v.node_name || hostname,
    discovery: v.discovery,
    kubeconfig: v.kubeconfig || undefined,
    targets: v.targets,
    probeIntervalMs: v.probe_interval,
    probeTimeoutMs,
    payloadBytes: v.payload_bytes,
    probeSelf: v.probe_self,
    /** Networks probed: the node network always, the pod network (peers' agent pods) beside it. */
    paths: v.paths,
    /** Path-MTU probes: size (0: the route interface's MTU) and interval (0: off). */
    mtu: Object.freeze({ bytes: v.mtu, intervalMs: v.mtu_probe_interval }),
    addressFamily: v.address_family,
    icmpMode: v.icmp_mode,
    metricsHost: v.metrics_host,
    metricsPort: v.metrics_port,
    bucketsSeconds: v.buckets_seconds,
    /** Global packet budget; the interval stretches beyond it. 0: none. */
    maxProbesPerSecond: v.max_probes_per_second,
    /** Hard cap on destinations probed every interval (and exported): the pod's memory bound. */
    maxTargets: v.max_targets,
    /** Add origin_zone and destination_zone from topology.kubernetes.io/zone. */
    zoneAttributes: v.zone_attributes,
    /** Which nodes an agent probes, and how the rest are still covered (src/mesh/). */
    mesh: meshGroup(v),
    /** Where the node list comes from (src/kube/node-source.ts). */
    nodeList: nodeListGroup(v, hostname),
    logLevel: v.log_level,
    otlp: otlpGroup(v),
  });
}

/** The validated, frozen configuration the agent runs with: derived from the schema, through assemble. */
export type Config = ReturnType<typeof assemble>;
export type MeshConfig = Config['mesh'];
export type NodeListConfig = Config['nodeList'];
export type OtlpConfig = NonNullable<Config['otlp']>;

/**
 * Validates env and flags once, at the edge.
 * @throws ConfigError naming the setting and what it accepts
 */
export function loadConfig(input: LoadInput): Loaded {
  const flags = flagTexts(input.argv);
  const warnings: string[] = [];
  const { values, origins } = lookUp(flags, settingsEnv(input, warnings));
  return { config: assemble(values, origins, input.hostname), warnings };
}
