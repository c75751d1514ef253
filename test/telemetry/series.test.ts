/** How many series each destination costs, with each option that changes it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, InMemoryMetricExporter } from '@opentelemetry/sdk-metrics';
import { DEFAULT_BUCKETS_SECONDS } from '../../src/config.js';
import { LatencyMetrics } from '../../src/telemetry/metrics.js';
import { Telemetry } from '../../src/telemetry/telemetry.js';
import type { Target } from '../../src/types.js';
import { parseExposition } from '../support/exposition.js';

const node = (name: string, zone?: string, family: 4 | 6 = 4): Target => ({
  key: family === 6 ? `${name}/ipv6` : name,
  name,
  address: family === 4 ? '198.18.0.1' : 'fd00::1',
  family,
  ...(zone ? { zone } : {}),
});

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
  assert.deepEqual(
    [...new Set(series.filter((s) => s.labels['destination_node'] === 'a').map((s) => s.labels['destination_zone']))],
    ['z3'],
    'no series left with the old zone',
  );
  await telemetry.shutdown();
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
