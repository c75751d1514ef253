import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_BUCKETS_SECONDS, loadConfig, parseDurationMs, settings, usage, type Config } from '../src/config.js';
import { REPO } from './support/agent-process.js';

const load = (env: Record<string, string>, argv: string[] = []) => loadConfig({ env, argv, hostname: 'host-a' });

test('defaults need no configuration', () => {
  const { config, warnings } = load({});
  const expected: Partial<Config> = {
    nodeName: 'host-a',
    discovery: 'auto',
    probeIntervalMs: 1000,
    probeTimeoutMs: 1000,
    metricsPort: 2112,
    metricsHost: '::',
    payloadBytes: 56,
    probeSelf: false,
    addressFamily: 'first',
    logLevel: 'info',
    otlp: undefined,
  };
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(config[k as keyof Config], v, k);
  assert.deepEqual(config.bucketsSeconds, DEFAULT_BUCKETS_SECONDS);
  assert.deepEqual(warnings, []);
  assert.ok(Object.isFrozen(config));
});

test('environment and flags set values; flags win', () => {
  const { config } = load(
    { MENTAT_PROBE_INTERVAL: '200ms', MENTAT_PROBE_TIMEOUT: '150ms', NODE_NAME: 'n1', MENTAT_TARGETS: 'a=10.0.0.1, b=fd00::1', MENTAT_BUCKETS: '0.001,0.01' },
    ['--probe-interval', '500ms', '--metrics-port=9000'],
  );
  assert.equal(config.probeIntervalMs, 500);
  assert.equal(config.probeTimeoutMs, 150);
  assert.equal(config.metricsPort, 9000);
  assert.equal(config.nodeName, 'n1');
  assert.deepEqual(config.targets, [
    { name: 'a', address: '10.0.0.1' },
    { name: 'b', address: 'fd00::1' },
  ]);
  assert.deepEqual(config.bucketsSeconds, [0.001, 0.01]);
});

test('durations take explicit units', () => {
  assert.equal(parseDurationMs('200ms'), 200);
  assert.equal(parseDurationMs('1.5s'), 1500);
  assert.equal(parseDurationMs('2m'), 120_000);
  assert.equal(parseDurationMs('500us'), 0.5);
});

test('OTLP turns on with the standard variables', () => {
  const base = load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).config.otlp;
  assert.deepEqual(base, {
    endpoint: 'http://collector:4318',
    signalSpecific: false,
    protocol: 'http/protobuf',
    exportIntervalMs: 60000,
    histogram: 'explicit',
  });
  const specific = load({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://b:4318/v1/metrics',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    OTEL_METRIC_EXPORT_INTERVAL: '5000',
  }).config.otlp;
  assert.deepEqual(specific, { endpoint: 'http://b:4318/v1/metrics', signalSpecific: true, protocol: 'grpc', exportIntervalMs: 5000, histogram: 'explicit' });
});

test('unknown MENTAT_ variables are warned about', () => {
  assert.deepEqual(load({ MENTAT_PROBE_INTERVALL: '1s' }).warnings, [
    'unknown setting MENTAT_PROBE_INTERVALL is ignored; run with --help to list the settings',
  ]);
});

test('Kubernetes service links are not settings: skipped with a hint, never a start-up failure', () => {
  const { config, warnings } = load({
    MENTAT_METRICS_PORT: 'tcp://10.96.0.12:2112',
    MENTAT_METRICS_SERVICE_HOST: '10.96.0.12',
    MENTAT_METRICS_SERVICE_PORT: '2112',
    MENTAT_METRICS_PORT_2112_TCP: 'tcp://10.96.0.12:2112',
    MENTAT_METRICS_PORT_2112_TCP_ADDR: '10.96.0.12',
  });
  assert.equal(config.metricsPort, 2112);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /MENTAT_METRICS_PORT=tcp:\/\/10\.96\.0\.12:2112 looks like a Kubernetes service link/);
});

const bad: Array<[string, Record<string, string>, string[], string]> = [
  [
    'interval without unit',
    { MENTAT_PROBE_INTERVAL: '200' },
    [],
    'MENTAT_PROBE_INTERVAL (--probe-interval) must be a duration with a unit, such as 200ms, 1s or 1.5s; got "200"',
  ],
  [
    'interval words',
    { MENTAT_PROBE_INTERVAL: 'fast' },
    [],
    'MENTAT_PROBE_INTERVAL (--probe-interval) must be a duration with a unit, such as 200ms, 1s or 1.5s; got "fast"',
  ],
  [
    'interval too short',
    { MENTAT_PROBE_INTERVAL: '5ms', MENTAT_PROBE_TIMEOUT: '1ms' },
    [],
    'MENTAT_PROBE_INTERVAL (--probe-interval) must be at least 10ms; got 5ms',
  ],
  [
    'timeout above interval',
    { MENTAT_PROBE_INTERVAL: '200ms', MENTAT_PROBE_TIMEOUT: '1s' },
    [],
    'MENTAT_PROBE_TIMEOUT (--probe-timeout) (1s) must not exceed MENTAT_PROBE_INTERVAL (--probe-interval) (200ms): a probe must end before the next one to the same target starts',
  ],
  [
    'timeout flag above interval',
    { MENTAT_PROBE_INTERVAL: '200ms' },
    ['--probe-timeout=1s'],
    'MENTAT_PROBE_TIMEOUT (--probe-timeout) (1s) must not exceed MENTAT_PROBE_INTERVAL (--probe-interval) (200ms): a probe must end before the next one to the same target starts',
  ],
  [
    'flag timeout bad',
    {},
    ['--probe-timeout', 'x'],
    'MENTAT_PROBE_TIMEOUT (--probe-timeout) must be a duration with a unit, such as 200ms, 1s or 1.5s; got "x"',
  ],
  ['port out of range', { MENTAT_METRICS_PORT: '70000' }, [], 'MENTAT_METRICS_PORT (--metrics-port) must be a port number from 0 to 65535; got "70000"'],
  ['port not a number', { MENTAT_METRICS_PORT: 'http' }, [], 'MENTAT_METRICS_PORT (--metrics-port) must be a port number from 0 to 65535; got "http"'],
  [
    'host not an IP',
    { MENTAT_METRICS_HOST: 'localhost' },
    [],
    'MENTAT_METRICS_HOST (--metrics-host) must be an IP address such as 0.0.0.0, :: or 127.0.0.1; got "localhost"',
  ],
  ['buckets decreasing', { MENTAT_BUCKETS: '0.1,0.01' }, [], 'MENTAT_BUCKETS (--buckets) must be strictly increasing; got "0.1,0.01"'],
  [
    'buckets negative',
    { MENTAT_BUCKETS: '-1' },
    [],
    'MENTAT_BUCKETS (--buckets) must be a comma-separated list of positive numbers of seconds, such as 0.0005,0.001,0.005; got "-1"',
  ],
  [
    'buckets empty item',
    { MENTAT_BUCKETS: '0.1,,1' },
    [],
    'MENTAT_BUCKETS (--buckets) must be a comma-separated list of positive numbers of seconds, such as 0.0005,0.001,0.005; got "0.1,,1"',
  ],
  [
    'target bad address',
    { MENTAT_TARGETS: 'a=300.1.1.1' },
    [],
    'MENTAT_TARGETS (--targets) has "300.1.1.1", which is not an IPv4 or IPv6 address; give name=address pairs separated by commas, such as db=10.0.0.5,web=fd00::6',
  ],
  [
    'target host name',
    { MENTAT_TARGETS: 'db.example.com' },
    [],
    'MENTAT_TARGETS (--targets) has "db.example.com", which is not an IPv4 or IPv6 address; give name=address pairs separated by commas, such as db=10.0.0.5,web=fd00::6',
  ],
  ['target duplicate name', { MENTAT_TARGETS: 'a=10.0.0.1,a=10.0.0.2' }, [], 'MENTAT_TARGETS (--targets) names "a" twice; each target needs a name of its own'],
  [
    'target empty name',
    { MENTAT_TARGETS: '=10.0.0.1' },
    [],
    'MENTAT_TARGETS (--targets) has an entry with an empty name ("=10.0.0.1"); give name=address pairs separated by commas, such as db=10.0.0.5,web=fd00::6',
  ],
  ['flag without its value', {}, ['--metrics-port'], '--metrics-port needs a value, such as --metrics-port=2112'],
  ['flag followed by another flag', {}, ['--probe-interval', '--probe-self'], '--probe-interval needs a value, such as --probe-interval=1s'],
  ['mesh mode', { MENTAT_MESH: 'ring' }, [], 'MENTAT_MESH (--mesh) must be one of auto, full, sampled; got "ring"'],
  ['peers zero', { MENTAT_PEERS: '0' }, [], 'MENTAT_PEERS (--peers) must be a whole number from 1 to 1000; got "0"'],
  ['sweep too often', { MENTAT_SWEEP_INTERVAL: '1s' }, [], 'MENTAT_SWEEP_INTERVAL (--sweep-interval) must be at least 10s (or 0s: off); got 1s'],
  [
    'log level',
    { MENTAT_LOG_LEVEL: 'verbose' },
    [],
    'MENTAT_LOG_LEVEL (--log-level) must be one of fatal, error, warn, info, debug, trace, silent; got "verbose"',
  ],
  ['discovery', { MENTAT_DISCOVERY: 'dns' }, [], 'MENTAT_DISCOVERY (--discovery) must be one of auto, kubernetes, static; got "dns"'],
  ['address family', { MENTAT_ADDRESS_FAMILY: 'v4' }, [], 'MENTAT_ADDRESS_FAMILY (--address-family) must be one of first, ipv4, ipv6, dual; got "v4"'],
  ['icmp mode', { MENTAT_ICMP_MODE: 'udp' }, [], 'MENTAT_ICMP_MODE (--icmp-mode) must be one of auto, raw, dgram; got "udp"'],
  ['probe self', { MENTAT_PROBE_SELF: 'yes' }, [], 'MENTAT_PROBE_SELF (--probe-self) must be true or false; got "yes"'],
  [
    'payload too small',
    { MENTAT_PAYLOAD_SIZE: '4' },
    [],
    'MENTAT_PAYLOAD_SIZE (--payload-size) must be at least 8 (the cookie that replies must carry); got 4',
  ],
  ['payload too large', { MENTAT_PAYLOAD_SIZE: '9000' }, [], 'MENTAT_PAYLOAD_SIZE (--payload-size) must be a whole number from 1 to 1472; got "9000"'],
  [
    'otlp url',
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
    [],
    'OTEL_EXPORTER_OTLP_ENDPOINT (--otlp-endpoint) must be an http:// or https:// URL, such as http://otel-collector:4318; got "collector:4318"',
  ],
  [
    'otlp protocol',
    { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
    [],
    'OTEL_EXPORTER_OTLP_PROTOCOL (--otlp-protocol) must be one of http/protobuf, grpc; got "http/json"',
  ],
  [
    'otlp interval',
    { OTEL_METRIC_EXPORT_INTERVAL: '0' },
    [],
    'OTEL_METRIC_EXPORT_INTERVAL (--otlp-export-interval) must be a whole number from 1 to 86400000; got "0"',
  ],
  [
    'static targets with kubernetes',
    { MENTAT_DISCOVERY: 'kubernetes', MENTAT_TARGETS: 'a=10.0.0.1' },
    [],
    'MENTAT_TARGETS (--targets) cannot be combined with MENTAT_DISCOVERY (--discovery)=kubernetes; use discovery=static or auto',
  ],
  ['unknown flag', {}, ['--probe-intervall', '1s'], 'unknown flag --probe-intervall; run with --help to list the settings'],
];
for (const [name, env, argv, message] of bad) {
  test(`bad config: ${name}`, () => {
    assert.throws(
      () => load(env, argv),
      (err: Error) => {
        assert.equal(err.name, 'ConfigError');
        assert.equal(err.message, message);
        return true;
      },
    );
  });
}

test('scale settings validate', () => {
  const load = (env: Record<string, string>) => loadConfig({ env, argv: [], hostname: 'h' });
  const c = load({
    MENTAT_MAX_PPS: '2000',
    MENTAT_MAX_TARGETS: '500',
    MENTAT_ZONE_ATTRIBUTES: 'true',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
    MENTAT_OTLP_HISTOGRAM: 'exponential',
  }).config;
  assert.deepEqual([c.maxProbesPerSecond, c.maxTargets, c.zoneAttributes, c.otlp?.histogram], [2000, 500, true, 'exponential']);
  assert.throws(() => load({ MENTAT_MAX_PPS: '-1' }), /MENTAT_MAX_PPS \(--max-pps\) must be a whole number from 0 \(no limit\) to 1000000; got "-1"/);
  assert.throws(() => load({ MENTAT_MAX_TARGETS: '0' }), /MENTAT_MAX_TARGETS \(--max-targets\) must be a whole number from 1 to 100000; got "0"/);
  assert.throws(() => load({ MENTAT_OTLP_HISTOGRAM: 'native' }), /MENTAT_OTLP_HISTOGRAM \(--otlp-histogram\) must be one of explicit, exponential/);
});

test('the mesh needs no configuration, and its settings validate', () => {
  const { mesh } = load({}).config;
  assert.deepEqual(mesh, {
    mode: 'auto',
    fullMax: 100,
    peers: 12,
    sweepIntervalMs: 1_800_000,
    outliersMax: 5,
    outlierHoldMs: 900_000,
    outlierLatencySeconds: 0.005,
    nodeWarmupMs: 600_000,
  });
  const set = load({
    MENTAT_MESH: 'sampled',
    MENTAT_PEERS: '3',
    MENTAT_SWEEP_INTERVAL: '0s',
    MENTAT_OUTLIERS_MAX: '0',
    MENTAT_OUTLIER_HOLD: '20s',
    MENTAT_OUTLIER_LATENCY: '500us',
    MENTAT_MESH_FULL_MAX: '10',
    MENTAT_NODE_WARMUP: '1m',
  }).config.mesh;
  assert.deepEqual(set, {
    mode: 'sampled',
    fullMax: 10,
    peers: 3,
    sweepIntervalMs: 0,
    outliersMax: 0,
    outlierHoldMs: 20_000,
    outlierLatencySeconds: 0.0005,
    nodeWarmupMs: 60_000,
  });
});

test('settings that earlier versions had are named as retired, with what replaced them', () => {
  const { warnings } = load({ MENTAT_SAMPLE_PER_ZONE: '3', MENTAT_RESAMPLE_INTERVAL: '5m' });
  assert.equal(warnings.length, 2);
  assert.match(
    warnings[0]!,
    /^MENTAT_SAMPLE_PER_ZONE is no longer used and is ignored: the sampled mesh replaces per-zone sampling: MENTAT_MESH, MENTAT_PEERS/,
  );
  assert.match(warnings[1]!, /^MENTAT_RESAMPLE_INTERVAL is no longer used and is ignored: .*MENTAT_SWEEP_INTERVAL/);
});

test('a short interval alone brings the timeout down with it', () => {
  assert.deepEqual([load({ MENTAT_PROBE_INTERVAL: '200ms' }).config.probeTimeoutMs, load({}, ['--probe-interval', '50ms']).config.probeTimeoutMs], [200, 50]);
  assert.equal(load({ MENTAT_PROBE_INTERVAL: '5s' }).config.probeTimeoutMs, 1000, 'a longer interval keeps the 1 s timeout');
  assert.equal(load({ MENTAT_PROBE_INTERVAL: '200ms', MENTAT_PROBE_TIMEOUT: '100ms' }).config.probeTimeoutMs, 100);
});

test('true/false settings may stand alone as flags, or take their value', () => {
  assert.equal(load({}, ['--probe-self']).config.probeSelf, true);
  assert.equal(load({}, ['--probe-self', '--zone-attributes']).config.zoneAttributes, true);
  assert.equal(load({ MENTAT_PROBE_SELF: 'true' }, ['--probe-self', 'false']).config.probeSelf, false);
  assert.equal(load({}, ['--zone-attributes=false']).config.zoneAttributes, false);
});

test('a repeated flag adds to a list, and is refused by a setting that takes one value', () => {
  assert.deepEqual(load({}, ['--targets', 'a=10.0.0.1', '--targets=b=fd00::1']).config.targets, [
    { name: 'a', address: '10.0.0.1' },
    { name: 'b', address: 'fd00::1' },
  ]);
  assert.throws(() => load({}, ['--peers', '3', '--peers=4']), { message: 'MENTAT_PEERS (--peers) must be a whole number from 1 to 1000; got "3,4"' });
});

test('--help names every setting, its variable, default and the values an enumeration takes', () => {
  const help = usage();
  assert.match(help, /--mesh {2}MENTAT_MESH \[auto\|full\|sampled\] {2}Who probes whom/);
  assert.match(help, /--metrics-host {2}MENTAT_METRICS_HOST {2}.*\(default: ::\)/);
  assert.match(help, /--payload-size {2}MENTAT_PAYLOAD_SIZE {2}/);
  assert.match(help, /--icmp-mode {2}MENTAT_ICMP_MODE \[auto\|raw\|dgram\]/);
});

test("the README's configuration table names every setting with the flag and default the agent has", () => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## ICMP permission'));
  const rows = new Map<string, string[]>();
  for (const line of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const cells = line.split(' | ').map((c) => c.replace(/^\| /, '').trim());
    for (const env of [...cells[0]!.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]!)) rows.set(env, cells);
  }
  for (const s of settings()) {
    const row = rows.get(s.env);
    assert.ok(row, `${s.env} is missing from the README's configuration table`);
    assert.ok(row[1]!.includes(`\`${s.flag}\``), `${s.env}: the README says flag ${row[1]}, the agent ${s.flag}`);
    // Defaults that are values (not "see above" or "hostname") must be the agent's own.
    const documented = [...row[2]!.matchAll(/`([^`]*)`/g)].map((m) => m[1]);
    if (documented.length > 0 && s.default !== '' && s.env !== 'MENTAT_BUCKETS') assert.equal(documented[0], s.default, `${s.env}: the README's default`);
  }
});
