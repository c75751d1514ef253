import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../../src/telemetry/pull-reader.js';

test('the pull reader collects what the Prometheus exporter it replaced collects, collection after collection', async () => {
  const ours = new PullReader({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'mentat' }), readers: [ours, exporter] });
  const meter = provider.getMeter('mentat');
  const histogram = meter.createHistogram('rtt', { unit: 's', advice: { explicitBucketBoundaries: [0.001, 0.01] } });
  const counter = meter.createCounter('probes');
  const text = new PrometheusSerializer(undefined, false, undefined, false, true);
  for (const rtt of [0.0005, 0.005]) {
    histogram.record(rtt, { destination_node: 'a' });
    counter.add(1, { result: 'success' });
    const [a, b] = await Promise.all([ours.collect(), exporter.collect()]);
    assert.deepEqual([a.errors, b.errors], [[], []]);
    assert.equal(text.serialize(a.resourceMetrics), text.serialize(b.resourceMetrics));
  }
  const last = text.serialize((await ours.collect()).resourceMetrics);
  assert.match(last, /^probes_total\{result="success"\} 2$/m, 'cumulative: the second collection still counts the first');
  await provider.shutdown();
});
