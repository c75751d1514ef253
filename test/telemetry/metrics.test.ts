import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LatencyMetrics } from '../../src/telemetry/metrics.js';
import type { Target } from '../../src/types.js';
import { DestinationMeters } from '../../src/telemetry/destination-meters.js';
import { Telemetry } from '../../src/telemetry/telemetry.js';

const target = (name: string): Target => ({ key: name, name, address: '198.18.0.1', family: 4 });

async function exposition(telemetry: Telemetry): Promise<string> {
  const { resourceMetrics } = await telemetry.prometheus.collect();
  // As the agent's exporter serializes: withoutScopeInfo.
  return new PrometheusSerializer(undefined, false, undefined, false, true).serialize(resourceMetrics);
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' ') || l.startsWith(series.replace(/}$/, ',')));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

test('node_latency is a seconds histogram with the configured buckets; probes count by result', async () => {
  const telemetry = await Telemetry.create({ resource: resourceFromAttributes({ 'service.name': 'mentat' }), meterName: 'mentat' });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: [0.001, 0.01], withIpFamily: false });
  metrics.record(target('a'), { kind: 'success', rttSeconds: 0.0005 });
  metrics.record(target('a'), { kind: 'success', rttSeconds: 0.005 });
  metrics.record(target('a'), { kind: 'timeout' });
  metrics.record(target('b'), { kind: 'error', reason: 'x' });
  const text = await exposition(telemetry);
  assert.match(text, /# UNIT node_latency s/);
  assert.match(text, /# TYPE node_latency histogram/);
  assert.equal(text.match(/# TYPE node_latency histogram/g)!.length, 1, 'one family header for all destinations');
  assert.equal(value(text, 'node_latency_bucket{origin_node="o",destination_node="a",path="node",le="0.001"}'), 1);
  assert.equal(value(text, 'node_latency_bucket{origin_node="o",destination_node="a",path="node",le="0.01"}'), 2);
  assert.equal(value(text, 'node_latency_count{origin_node="o",destination_node="a",path="node"}'), 2);
  assert.ok(Math.abs(value(text, 'node_latency_sum{origin_node="o",destination_node="a",path="node"}')! - 0.0055) < 1e-12);
  assert.equal(value(text, 'node_latency_probes_total{origin_node="o",destination_node="a",path="node",result="timeout"}'), 1);
  assert.equal(value(text, 'node_latency_probes_total{origin_node="o",destination_node="a",path="node",result="success"}'), 2);
  assert.equal(value(text, 'node_latency_probes_total{origin_node="o",destination_node="b",path="node",result="error"}'), 1);
  assert.equal(value(text, 'node_latency_probes_total{origin_node="o",destination_node="b",path="node",result="timeout"}'), 0, 'zero from the start');
  await telemetry.shutdown();
});

test('a released destination leaves the exposition while the others keep counting', async () => {
  const telemetry = await Telemetry.create({ resource: resourceFromAttributes({}), meterName: 'mentat' });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: [0.001], withIpFamily: false });
  for (const name of ['a', 'b', 'c']) metrics.record(target(name), { kind: 'success', rttSeconds: 0.0001 });
  metrics.retain(new Set(['a', 'c']));
  metrics.record(target('a'), { kind: 'success', rttSeconds: 0.0001 });
  const text = await exposition(telemetry);
  assert.doesNotMatch(text, /destination_node="b"/);
  assert.equal(value(text, 'node_latency_count{origin_node="o",destination_node="a",path="node"}'), 2, 'a kept its count');
  assert.equal(value(text, 'node_latency_count{origin_node="o",destination_node="c",path="node"}'), 1);
  assert.equal(telemetry.destinations.size, 2 * 4, 'a histogram and three probe counters per destination');
  // A node that comes back starts fresh.
  metrics.record(target('b'), { kind: 'timeout' });
  const again = await exposition(telemetry);
  assert.equal(value(again, 'node_latency_probes_total{origin_node="o",destination_node="b",path="node",result="timeout"}'), 1);
  await telemetry.shutdown();
});

test('dual-stack series carry ip_family', async () => {
  const telemetry = await Telemetry.create({ resource: resourceFromAttributes({}), meterName: 'mentat' });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: [0.001], withIpFamily: true });
  metrics.record({ key: 'n/ipv6', name: 'n', address: 'fd00::1', family: 6 }, { kind: 'success', rttSeconds: 0.0001 });
  assert.match(await exposition(telemetry), /node_latency_count\{origin_node="o",destination_node="n",path="node",ip_family="ipv6"\} 1/);
  await telemetry.shutdown();
});

test('the pod path is a series of its own beside the node path, told apart by path', async () => {
  const telemetry = await Telemetry.create({ resource: resourceFromAttributes({}), meterName: 'mentat' });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: [0.001], withIpFamily: false });
  metrics.record(target('n'), { kind: 'success', rttSeconds: 0.0001 });
  metrics.record({ key: 'n/pod', name: 'n', address: '10.244.1.5', family: 4, path: 'pod' }, { kind: 'timeout' });
  const text = await exposition(telemetry);
  assert.equal(value(text, 'node_latency_count{origin_node="o",destination_node="n",path="node"}'), 1);
  assert.equal(value(text, 'node_latency_probes_total{origin_node="o",destination_node="n",path="pod",result="timeout"}'), 1);
  assert.equal(value(text, 'node_latency_probes_total{origin_node="o",destination_node="n",path="node",result="timeout"}'), 0);
  metrics.retain(new Set(['n']));
  assert.doesNotMatch(await exposition(telemetry), /path="pod"/, 'the pod path is forgotten on its own');
  await telemetry.shutdown();
});

test('destination memory stays bounded under churn', async () => {
  const pool = new DestinationMeters({ meterName: 'mentat' });
  const metrics = new LatencyMetrics({ sink: pool, originNode: 'o', bucketsSeconds: [0.001], withIpFamily: false });
  for (let i = 0; i < 2000; i++) {
    metrics.record(target(`n${i}`), { kind: 'success', rttSeconds: 0.0001 });
    metrics.retain(new Set([`n${i}`]));
    // Nobody scrapes: forgetting alone must keep the store small.
    if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(pool.size, 4, 'only the last destination: one histogram series and three counters');
  assert.equal(metrics.seriesCount, 1);
  const { resourceMetrics } = await pool.collect();
  const points = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'node_latency')!.dataPoints;
  assert.equal(points.length, 1);
  await pool.shutdown();
});
