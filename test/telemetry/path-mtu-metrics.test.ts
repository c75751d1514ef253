import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { PathMtuMetrics } from '../../src/telemetry/path-mtu-metrics.js';
import { Telemetry } from '../../src/telemetry/telemetry.js';

async function exposition(telemetry: Telemetry): Promise<string> {
  const { resourceMetrics } = await telemetry.prometheus.collect();
  return new PrometheusSerializer(undefined, false, undefined, false, true).serialize(resourceMetrics);
}

test('MTU probes count per pair, path and result, a series from its first count (a healthy pair costs one); the reported MTU is a gauge; a peer gone takes its series', async () => {
  const telemetry = await Telemetry.create({ resource: resourceFromAttributes({}), meterName: 'mentat' });
  const metrics = new PathMtuMetrics(telemetry.destinations, 'o');
  const pod = { key: 'b/pod', name: 'b', address: '10.244.1.5', family: 4 as const, path: 'pod' as const };
  metrics.record({ key: 'a', name: 'a', address: '10.0.0.1', family: 4 }, 'ok');
  metrics.record(pod, 'lost');
  metrics.record(pod, 'too_big', 1400);
  const text = await exposition(telemetry);
  assert.match(text, /mentat_path_mtu_probes_total\{origin_node="o",destination_node="a",path="node",result="ok"\} 1/);
  assert.doesNotMatch(text, /destination_node="a",path="node",result="(lost|too_big|error)"/, 'a healthy pair has one series');
  assert.doesNotMatch(text, /destination_node="b",path="pod",result="(ok|error)"/);
  assert.match(text, /mentat_path_mtu_probes_total\{origin_node="o",destination_node="b",path="pod",result="lost"\} 1/);
  assert.match(text, /mentat_path_mtu_probes_total\{origin_node="o",destination_node="b",path="pod",result="too_big"\} 1/);
  assert.match(text, /mentat_path_mtu_bytes\{origin_node="o",destination_node="b",path="pod"\} 1400/);
  assert.doesNotMatch(text, /mentat_path_mtu_bytes\{[^}]*destination_node="a"/, 'no gauge until a router reports an MTU');
  metrics.retain(new Set(['a']));
  const after = await exposition(telemetry);
  assert.doesNotMatch(after, /destination_node="b"/);
  assert.match(after, /destination_node="a"/);
  await telemetry.shutdown();
});
