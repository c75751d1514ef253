/** /metrics streamed in pieces: the same bytes as the exporter's one-shot serialization, bounded pieces, backpressure. */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { test } from 'node:test';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { CollectionResult } from '@opentelemetry/sdk-metrics';
import { DEFAULT_BUCKETS_SECONDS } from '../../src/config.js';
import { exposition, serveMetrics } from '../../src/telemetry/exposition.js';
import { LatencyMetrics } from '../../src/telemetry/metrics.js';
import { Telemetry } from '../../src/telemetry/telemetry.js';
import { listenLocal } from '../support/listen.js';
import { strictParse } from '../support/strict-exposition.js';

/** An agent's telemetry with `n` destinations and an agent-wide gauge in the other scope. */
async function telemetryWith(n: number): Promise<Telemetry> {
  const telemetry = await Telemetry.create({
    resource: resourceFromAttributes({ 'service.name': 'mentat', 'k8s.node.name': 'o' }),
    meterName: 'mentat',
    maxDestinations: n,
  });
  telemetry.meter.createObservableGauge('mentat_targets').addCallback((r) => r.observe(n, { state: 'probed' }));
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: DEFAULT_BUCKETS_SECONDS, withIpFamily: false });
  for (let i = 0; i < n; i++) {
    const target = { key: `n${i}`, name: `node-${i}`, address: '198.18.0.1', family: 4 as const };
    metrics.record(target, { kind: 'success', rttSeconds: 0.0001 * (1 + (i % 50)) });
    if (i % 3 === 0) metrics.record(target, { kind: 'timeout' });
  }
  return telemetry;
}

const oneShot = (result: CollectionResult): string => new PrometheusSerializer(undefined, false, undefined, false, true).serialize(result.resourceMetrics);

for (const slice of [1, 7, 64]) {
  test(`pieces of ${slice} points concatenate to exactly the exporter's own serialization`, async () => {
    const telemetry = await telemetryWith(300);
    const result = await telemetry.prometheus.collect();
    const pieces = [...exposition(result.resourceMetrics, slice)];
    const whole = oneShot(result);
    assert.equal(pieces.join(''), whole);
    assert.ok(pieces.length >= Math.ceil(300 / slice) * 2, `${pieces.length} pieces`);
    // Each family's header appears once, and a family's lines are adjacent.
    const { samples } = strictParse(whole);
    assert.equal(whole.match(/^# TYPE node_latency histogram$/gm)!.length, 1);
    const order = samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, ''));
    const runs = order.filter((name, i) => name !== order[i - 1]);
    assert.equal(new Set(runs).size, runs.length, `families contiguous: ${runs.join(' ')}`);
    assert.match(pieces[0]!, /^# HELP target_info/, 'target_info once, first');
    assert.equal(pieces.join('').match(/target_info\{/g)!.length, 1);
    await telemetry.shutdown();
  });
}

test('a family split across scopes stays one contiguous family', () => {
  const descriptor = { name: 'x', description: 'd', unit: '', type: 'COUNTER', valueType: 1 } as never;
  const point = (v: string) => ({ attributes: { v }, startTime: [0, 0] as [number, number], endTime: [1, 0] as [number, number], value: 1 });
  const metric = (v: string) =>
    ({ descriptor, aggregationTemporality: 1, dataPointType: 3, isMonotonic: true, dataPoints: [point(v), point(`${v}2`)] }) as never;
  const resourceMetrics = {
    resource: resourceFromAttributes({}),
    scopeMetrics: [
      { scope: { name: 'a' }, metrics: [metric('a')] },
      { scope: { name: 'b' }, metrics: [metric('b')] },
    ],
  };
  const text = [...exposition(resourceMetrics, 1)].join('');
  assert.equal(text.match(/^# TYPE x_total counter$/gm)!.length, 1);
  assert.deepEqual(
    strictParse(text)
      .samples.filter((s) => s.name === 'x_total')
      .map((s) => s.labels['v']),
    ['a', 'a2', 'b', 'b2'],
  );
});

test('an empty collection is what the exporter says for it', () => {
  const resourceMetrics = { resource: resourceFromAttributes({ 'service.name': 'mentat' }), scopeMetrics: [] };
  assert.equal([...exposition(resourceMetrics)].join(''), oneShot({ resourceMetrics, errors: [] }));
});

/** Serves /metrics and remembers the most the response ever had buffered. */
async function serve(telemetry: Telemetry): Promise<{ server: Server; port: number; maxBufferedBytes: () => number }> {
  let max = 0;
  const server = createServer((req, res) => {
    const write = res.write.bind(res) as (chunk: string) => boolean;
    res.write = ((chunk: string) => {
      const more = write(chunk);
      max = Math.max(max, res.writableLength);
      return more;
    }) as typeof res.write;
    void serveMetrics(
      req,
      res,
      () => telemetry.prometheus.collect(),
      () => {},
    );
  });
  return { server, port: await listenLocal(server), maxBufferedBytes: () => max };
}

test('a slow reader gets the whole exposition through backpressure; HEAD gets headers only', async (t) => {
  // More than the kernel's socket buffers hold for a reader that reads nothing (a few MiB).
  const telemetry = await telemetryWith(10_000);
  const { server, port, maxBufferedBytes } = await serve(telemetry);
  t.after(async () => {
    server.close();
    await telemetry.shutdown();
  });
  const expected = oneShot(await telemetry.prometheus.collect());
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: '/metrics' }, (res) => {
      assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
      const chunks: Buffer[] = [];
      // Read nothing for a second: the kernel's buffers fill and the server must wait for drain
      // rather than buffer the rest of the exposition in memory.
      res.pause();
      setTimeout(() => res.resume(), 1000);
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
      res.on('error', reject);
    });
    req.end();
  });
  assert.ok(body.length > 10_000_000, `${body.length} bytes`);
  assert.doesNotMatch(body, /otel_metric_overflow/, 'every destination is its own series');
  // Counts moved on between the two collections only if something recorded; nothing did.
  assert.equal(body, expected);
  assert.ok(maxBufferedBytes() < 128 * 1024, `at most a socket buffer and a piece held, saw ${maxBufferedBytes()} bytes`);
  const head = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
});

test('a client that stops reading is dropped after the stall timeout, not held forever', { timeout: 10_000 }, async (t) => {
  const telemetry = await telemetryWith(10_000);
  let closed: (() => void) | undefined;
  const done = new Promise<void>((resolve) => (closed = resolve));
  const server = createServer((req, res) => {
    res.on('close', () => closed!());
    void serveMetrics(
      req,
      res,
      () => telemetry.prometheus.collect(),
      () => {},
      300,
    );
  });
  const port = await listenLocal(server);
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await telemetry.shutdown();
  });
  const started = Date.now();
  const req = request({ port, host: '127.0.0.1', path: '/metrics' }, (res) => res.pause());
  req.on('error', () => {});
  req.end();
  await done;
  const heldMs = Date.now() - started;
  assert.ok(heldMs >= 300 && heldMs < 5000, `response closed after ${heldMs} ms`);
});

test('a collection that fails answers 500 with the reason', async (t) => {
  const server = createServer(
    (req, res) =>
      void serveMetrics(
        req,
        res,
        () => Promise.reject(new Error('reader shut down')),
        () => {},
      ),
  );
  const port = await listenLocal(server);
  t.after(() => server.close());
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 500);
  assert.match(await res.text(), /reader shut down/);
});
