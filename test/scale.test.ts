/** The cardinality and load controls, each with the series it produces. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, InMemoryMetricExporter } from '@opentelemetry/sdk-metrics';
import { DEFAULT_BUCKETS_SECONDS, loadConfig } from '../src/config.js';
import { LatencyMetrics } from '../src/metrics.js';
import { Prober, effectiveIntervalMs, type Target } from '../src/prober.js';
import { selectTargets } from '../src/selection.js';
import { Telemetry } from '../src/telemetry.js';
import { ManualClock } from './support/fake-clock.js';
import { FakeSocket } from './support/fake-socket.js';
import { parseExposition } from './support/exposition.js';

const node = (name: string, zone?: string, family: 4 | 6 = 4): Target => ({ key: family === 6 ? `${name}/ipv6` : name, name, address: family === 4 ? '198.18.0.1' : 'fd00::1', family, ...(zone ? { zone } : {}) });

async function seriesOf(telemetry: Telemetry) {
  const { resourceMetrics } = await telemetry.prometheus.collect();
  return parseExposition(new PrometheusSerializer().serialize(resourceMetrics)).filter((s) => s.name.startsWith('node_latency'));
}

test('default buckets: 18 series per destination (15 histogram + 3 probe counters)', async () => {
  const telemetry = await Telemetry.create({ resource: resourceFromAttributes({}), meterName: 'mentat' });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: DEFAULT_BUCKETS_SECONDS, withIpFamily: false });
  for (let i = 0; i < 10; i++) metrics.record(node(`n${i}`), { kind: 'success', rttSeconds: 0.001 });
  const series = await seriesOf(telemetry);
  assert.equal(DEFAULT_BUCKETS_SECONDS.length, 12);
  assert.equal(series.length, 10 * 18);
  await telemetry.shutdown();
});

test('custom buckets change the per-destination series count', async () => {
  const telemetry = await Telemetry.create({ resource: resourceFromAttributes({}), meterName: 'mentat' });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: [0.001, 0.01, 0.1], withIpFamily: false });
  metrics.record(node('a'), { kind: 'success', rttSeconds: 0.001 });
  assert.equal((await seriesOf(telemetry)).length, 3 + 1 + 2 + 3);
  await telemetry.shutdown();
});

test('zone attributes label every series with origin_zone and destination_zone, and follow a zone change', async () => {
  const telemetry = await Telemetry.create({ resource: resourceFromAttributes({}), meterName: 'mentat' });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: [0.001], withIpFamily: false, withZones: true });
  metrics.setOriginZone('z1');
  metrics.record(node('a', 'z2'), { kind: 'success', rttSeconds: 0.001 });
  metrics.record(node('b'), { kind: 'timeout' });
  let series = await seriesOf(telemetry);
  assert.ok(series.every((s) => s.labels['origin_zone'] === 'z1'));
  assert.deepEqual([...new Set(series.map((s) => `${s.labels['destination_node']}:${s.labels['destination_zone']}`))].sort(), ['a:z2', 'b:unknown']);
  metrics.record(node('a', 'z3'), { kind: 'success', rttSeconds: 0.001 });
  series = await seriesOf(telemetry);
  assert.deepEqual([...new Set(series.filter((s) => s.labels['destination_node'] === 'a').map((s) => s.labels['destination_zone']))], ['z3'], 'no series left with the old zone');
  await telemetry.shutdown();
});

test('sampling: the own zone in full, k per other zone, every pair covered over ceil(n/k) epochs', () => {
  const all: Target[] = [];
  for (let i = 0; i < 5; i++) all.push(node(`own-${i}`, 'z1'));
  for (let i = 0; i < 10; i++) all.push(node(`b-${i}`, 'z2'));
  for (let i = 0; i < 7; i++) all.push(node(`c-${i}`, 'z3'));
  const options = { origin: 'me', originZone: 'z1', perZone: 3, maxTargets: 1000 };
  const seen = new Set<string>();
  for (let epoch = 0; epoch < 4; epoch++) {
    const { selected, overCap } = selectTargets(all, options, epoch);
    assert.equal(overCap, 0);
    assert.equal(selected.length, 5 + 3 + 3, `epoch ${epoch}: 5 own + 3 + 3`);
    assert.equal(selected.filter((t) => t.zone === 'z1').length, 5);
    for (const t of selected) seen.add(t.name);
  }
  assert.equal(seen.size, all.length, 'after ceil(10/3) = 4 epochs every node was probed');
  // Another origin walks the nodes in another order, so agents do not all pick the same ones.
  const other = selectTargets(all, { ...options, origin: 'someone-else' }, 0).selected.map((t) => t.name).sort();
  assert.notDeepEqual(other, selectTargets(all, options, 0).selected.map((t) => t.name).sort());
});

test('without a known own zone, or with sampling off, every node is probed', () => {
  const all = [node('a', 'z1'), node('b', 'z2'), node('c', 'z2'), node('d', 'z2')];
  assert.equal(selectTargets(all, { origin: 'me', originZone: undefined, perZone: 1, maxTargets: 100 }, 0).selected.length, 4);
  assert.equal(selectTargets(all, { origin: 'me', originZone: 'z1', perZone: 0, maxTargets: 100 }, 0).selected.length, 4);
});

test('the cap keeps the own zone first, keeps a node\'s two families together, and counts the rest', () => {
  const all = [node('x', 'z2'), node('x', 'z2', 6), node('own', 'z1'), node('own', 'z1', 6), node('y', 'z2'), node('y', 'z2', 6)];
  const { selected, overCap } = selectTargets(all, { origin: 'me', originZone: 'z1', perZone: 0, maxTargets: 3 }, 0);
  assert.deepEqual(selected.map((t) => t.key).slice(0, 2), ['own', 'own/ipv6']);
  assert.equal(selected.length, 2, 'the next node has two targets and does not fit in 3');
  assert.equal(overCap, 4);
});

test('the packet budget stretches the interval and the prober keeps to it', () => {
  assert.equal(effectiveIntervalMs(1000, 5000, 0), 1000);
  assert.equal(effectiveIntervalMs(1000, 500, 1000), 1000);
  assert.equal(effectiveIntervalMs(1000, 5000, 2000), 2500);
  const clock = new ManualClock();
  const socket = new FakeSocket(4, () => clock.now());
  const prober = new Prober({ intervalMs: 1000, maxProbesPerSecond: 50, timeoutMs: 500, payloadBytes: 16, identifier: 1, cookie: new Uint8Array(8), sockets: new Map([[4, socket]]), clock, onResult: () => {} });
  prober.setTargets(Array.from({ length: 100 }, (_, i) => node(`n${i}`)));
  assert.equal(prober.currentIntervalMs, 2000);
  clock.advance(10_000 - 1);
  assert.equal(socket.sent.length, 500, '100 targets every 2 s for 10 s: 50 per second');
  prober.setTargets(Array.from({ length: 10 }, (_, i) => node(`n${i}`)));
  assert.equal(prober.currentIntervalMs, 1000, 'back to the configured interval when the budget allows');
});

test('OTLP exponential histograms: one data point per destination instead of one per bucket', async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const telemetry = await Telemetry.create({
    resource: resourceFromAttributes({}),
    meterName: 'mentat',
    otlp: { endpoint: 'http://127.0.0.1:9', signalSpecific: false, protocol: 'http/protobuf', exportIntervalMs: 60_000, histogram: 'exponential' },
    otlpExporter: exporter,
  });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: DEFAULT_BUCKETS_SECONDS, withIpFamily: false });
  for (const rtt of [0.0001, 0.0002, 0.0004, 0.003]) metrics.record(node('a'), { kind: 'success', rttSeconds: rtt });
  metrics.record(node('b'), { kind: 'success', rttSeconds: 0.001 });
  // Prometheus keeps its explicit buckets.
  assert.equal((await seriesOf(telemetry)).filter((s) => s.name === 'node_latency_bucket').length, 2 * 13);
  await telemetry.shutdown();
  const latency = exporter
    .getMetrics()
    .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
    .filter((m) => m.descriptor.name === 'node_latency')
    .at(-1)!;
  assert.equal(latency.dataPointType, DataPointType.EXPONENTIAL_HISTOGRAM);
  assert.equal(latency.dataPoints.length, 2);
  const a = latency.dataPoints.find((p) => p.attributes['destination_node'] === 'a')!.value as { count: number; scale: number };
  assert.equal(a.count, 4);
  assert.ok(a.scale > 0, `fine scale for a narrow range: ${a.scale}`);
});

test('scale settings validate', () => {
  const load = (env: Record<string, string>) => loadConfig({ env, argv: [], hostname: 'h' });
  const c = load({ MENTAT_MAX_PPS: '2000', MENTAT_MAX_TARGETS: '500', MENTAT_ZONE_ATTRIBUTES: 'true', MENTAT_SAMPLE_PER_ZONE: '3', MENTAT_RESAMPLE_INTERVAL: '5m', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', MENTAT_OTLP_HISTOGRAM: 'exponential' }).config;
  assert.deepEqual(
    [c.maxProbesPerSecond, c.maxTargets, c.zoneAttributes, c.samplePerZone, c.resampleIntervalMs, c.otlp?.histogram],
    [2000, 500, true, 3, 300_000, 'exponential'],
  );
  assert.throws(() => load({ MENTAT_MAX_PPS: '-1' }), /MENTAT_MAX_PPS \(--max-pps\) must be a whole number from 0 \(no limit\) to 1000000; got "-1"/);
  assert.throws(() => load({ MENTAT_MAX_TARGETS: '0' }), /MENTAT_MAX_TARGETS \(--max-targets\) must be a whole number from 1 to 100000; got "0"/);
  assert.throws(() => load({ MENTAT_SAMPLE_PER_ZONE: 'some' }), /MENTAT_SAMPLE_PER_ZONE \(--sample-per-zone\) must be a whole number from 0 \(all nodes\) to 100000/);
  assert.throws(() => load({ MENTAT_RESAMPLE_INTERVAL: '100ms' }), /MENTAT_RESAMPLE_INTERVAL \(--resample-interval\) must be at least 1s/);
  assert.throws(() => load({ MENTAT_OTLP_HISTOGRAM: 'native' }), /MENTAT_OTLP_HISTOGRAM \(--otlp-histogram\) must be one of explicit, exponential/);
});
