/**
 * OTLP push, end to end, where exports go and what they carry: the real agent process exporting over
 * OTLP/HTTP (the base endpoint and the signal-specific one) and OTLP/gRPC to an in-process receiver that
 * decodes with the opentelemetry-proto definitions. Needs root (raw ICMP sockets). Every wait polls
 * with a deadline; nothing sleeps as an assertion.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freePort } from '../support/agent-process.js';
import { assertAgentExport, DESTINATIONS, exportFailureLines, latestLatency, startAgent } from '../support/otlp-agent.js';
import { OtlpReceiver } from '../support/otlp-receiver.js';

test('OTLP http/protobuf: OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/metrics appended; histogram, counter and resource arrive', { timeout: 20_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'http/protobuf' });
  t.after(() => receiver.stop());
  const agent = await startAgent(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_METRIC_EXPORT_INTERVAL: '200',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
  });

  await receiver.waitFor(
    (r) => latestLatency(r) !== undefined && r.points('node_latency').length >= 2 * DESTINATIONS.length,
    5000,
    'two exports with node_latency samples for both targets',
  );
  assertAgentExport(receiver, { 'deployment.environment': 'test' });
  for (const e of receiver.exports) {
    assert.equal(e.path, '/v1/metrics');
    assert.equal(e.contentType, 'application/x-protobuf');
  }
  assert.equal(exportFailureLines(agent.logs).length, 0, `no export failure logged:\n${agent.describe()}`);
});

test('OTLP http/protobuf: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is used as is and wins over OTEL_EXPORTER_OTLP_ENDPOINT', { timeout: 20_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'http/protobuf', path: '/tenant-a/v1/metrics' });
  t.after(() => receiver.stop());
  const nobody = await freePort();
  await startAgent(t, {
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.metricsUrl,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${nobody}`,
    OTEL_METRIC_EXPORT_INTERVAL: '200',
  });

  await receiver.waitFor((r) => latestLatency(r) !== undefined, 5000, 'an export with node_latency samples at /tenant-a/v1/metrics');
  assert.deepEqual(receiver.strayPaths, [], 'nothing appended to the signal-specific URL');
  assert.deepEqual(new Set(receiver.exports.map((e) => e.path)), new Set(['/tenant-a/v1/metrics']));
  assertAgentExport(receiver, {});
});

test('OTLP grpc: OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports to MetricsService/Export', { timeout: 20_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'grpc' });
  t.after(() => receiver.stop());
  const agent = await startAgent(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    // The export timeout is the interval (at most 10 s): 1 s leaves the first export, which also
    // opens the HTTP/2 channel, room on a busy machine, where 200 ms once ran out (DEADLINE_EXCEEDED).
    OTEL_METRIC_EXPORT_INTERVAL: '1000',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
  });

  await receiver.waitFor(
    (r) => latestLatency(r) !== undefined && r.points('node_latency').length >= 2 * DESTINATIONS.length,
    8000,
    'two gRPC exports with node_latency samples',
  );
  assertAgentExport(receiver, { 'deployment.environment': 'test' });
  for (const e of receiver.exports) assert.equal(e.path, '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export');
  assert.equal(exportFailureLines(agent.logs).length, 0, `no export failure logged:\n${agent.describe()}`);
});
