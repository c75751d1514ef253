/**
 * The metrics port under abuse, on the loopback: 200 clients that trickle-read /metrics beside a
 * normal scraper. The normal scrapes get 200s, the crowd costs a few collections, every response
 * ends by its deadline, and a prober on the same event loop keeps its schedule.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { DEFAULT_BUCKETS_SECONDS } from '../../src/config.js';
import { Prober } from '../../src/probe/prober.js';
import { HttpServer } from '../../src/server.js';
import { MetricsEndpoint } from '../../src/telemetry/exposition.js';
import { LatencyMetrics } from '../../src/telemetry/metrics.js';
import { Telemetry } from '../../src/telemetry/telemetry.js';
import { systemClock, type Target } from '../../src/types.js';
import { FakeSocket } from '../support/fake-socket.js';

const DESTINATIONS = 3000;
const SLOW_CLIENTS = 200;
// The response deadline under test (20 s by default): long enough that a normal scrape of this
// 4 MB exposition ends well within it on a busy machine (3 s once cut one there).
const DEADLINE_MS = 6000;
const PROBE_INTERVAL_MS = 100;

/** A scrape, as Prometheus sees it: a failed one (status 0) says why and when, instead of ending the test. */
function get(agent: Agent, port: number): Promise<{ status: number; bytes: number; ms: number; error?: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const failed = (err: Error) => resolve({ status: 0, bytes: 0, ms: performance.now() - started, error: err.message });
    const req = request({ agent, port, host: '127.0.0.1', path: '/metrics', timeout: 10_000 }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, ms: performance.now() - started }));
      res.on('error', failed);
    });
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', failed);
    req.end();
  });
}

/** The agent's /metrics over 3000 destinations on a loopback port, counting its collections. */
async function metricsServer(): Promise<{ port: number; collections: () => number; serverErrors: Error[]; close: () => Promise<void> }> {
  const telemetry = await Telemetry.create({
    resource: resourceFromAttributes({ 'service.name': 'mentat', 'k8s.node.name': 'o' }),
    meterName: 'mentat',
    maxDestinations: DESTINATIONS,
  });
  const metrics = new LatencyMetrics({ sink: telemetry.destinations, originNode: 'o', bucketsSeconds: DEFAULT_BUCKETS_SECONDS, withIpFamily: false });
  for (let i = 0; i < DESTINATIONS; i++) {
    metrics.record({ key: `n${i}`, name: `node-${i}`, address: '198.18.0.1', family: 4 }, { kind: 'success', rttSeconds: 0.0001 * (1 + (i % 50)) });
  }
  let collections = 0;
  const endpoint = new MetricsEndpoint({
    collect: () => {
      collections++;
      return telemetry.prometheus.collect();
    },
    onCollectionErrors: () => {},
  });
  const serverErrors: Error[] = [];
  const server = new HttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics: (req, res) => void endpoint.serve(req, res),
    readiness: () => ({ ready: true, reason: '' }),
    limits: { responseDeadlineMs: DEADLINE_MS },
    onError: (err) => serverErrors.push(err),
  });
  const port = await server.listen();
  const close = async () => {
    await server.close();
    await telemetry.shutdown();
  };
  return { port, collections: () => collections, serverErrors, close };
}

/** A prober of 20 targets on this event loop, through a fake socket: its send times show the loop's lag. */
function loopProber(): { socket: FakeSocket; prober: Prober } {
  const socket = new FakeSocket(4, () => systemClock.now());
  const prober = new Prober({
    intervalMs: PROBE_INTERVAL_MS,
    timeoutMs: PROBE_INTERVAL_MS,
    payloadBytes: 16,
    identifier: 1,
    cookie: new Uint8Array(8),
    sockets: new Map([[4, socket]]),
    clock: systemClock,
    onResult: () => {},
  });
  const targets: Target[] = Array.from({ length: 20 }, (_, i) => ({ key: `p${i}`, name: `p${i}`, address: `198.18.1.${i}`, family: 4 }));
  prober.setTargets(targets);
  return { socket, prober };
}

/** How late, at worst, a send came after the one before it to the same target plus the interval. */
function worstLatenessMs(socket: FakeSocket): number {
  const sendsBySlot = new Map<string, number[]>();
  for (const sent of socket.sent) sendsBySlot.set(sent.address, [...(sendsBySlot.get(sent.address) ?? []), sent.sentAt]);
  let worstLateMs = 0;
  for (const times of sendsBySlot.values()) {
    for (let i = 1; i < times.length; i++) worstLateMs = Math.max(worstLateMs, times[i]! - times[i - 1]! - PROBE_INTERVAL_MS);
  }
  return worstLateMs;
}

/** Clients that ask for /metrics and then read one byte every 5 s; `drain` reads the rest and says how many bytes each got (-1: never closed). */
class Tricklers {
  private readonly sockets: Socket[] = [];
  /** Settles when each socket has closed, whenever that was. */
  private readonly closed: Array<Promise<void>> = [];
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(port: number, clients: number) {
    for (let i = 0; i < clients; i++) {
      const s = connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      this.closed.push(new Promise((resolve) => s.once('close', () => resolve())));
      s.pause();
      s.write('GET /metrics HTTP/1.1\r\nHost: mentat\r\n\r\n');
      this.timers.push(setInterval(() => void s.read(1), 5000));
      this.sockets.push(s);
    }
  }

  drain(): Promise<number[]> {
    return Promise.all(
      this.sockets.map((s, i) => {
        let bytes = 0;
        s.on('data', (chunk: Buffer) => (bytes += chunk.length));
        s.resume();
        return Promise.race([this.closed[i]!.then(() => bytes), new Promise<number>((resolve) => setTimeout(() => resolve(-1), 10_000).unref())]);
      }),
    );
  }

  destroy(): void {
    for (const timer of this.timers) clearInterval(timer);
    for (const s of this.sockets) s.destroy();
  }
}

test('200 trickling readers beside a normal scraper: 200s for it, shared collections, bounded responses, probing on time', { timeout: 60_000 }, async (t) => {
  const server = await metricsServer();
  const { socket, prober } = loopProber();
  const normal = new Agent({ keepAlive: true, maxSockets: 1 });
  let tricklers: Tricklers | undefined;
  t.after(async () => {
    tricklers?.destroy();
    normal.destroy();
    await prober.stop();
    await server.close();
  });

  // Prometheus keeps its connection alive from one scrape to the next.
  const first = await get(normal, server.port);
  assert.equal(first.status, 200);
  const fullBytes = first.bytes;
  assert.ok(fullBytes > 4_000_000, `an exposition larger than the socket buffers: ${fullBytes} bytes`);
  const collectionsBefore = server.collections();

  const startedAt = performance.now();
  tricklers = new Tricklers(server.port, SLOW_CLIENTS);
  const scrapes: Array<{ status: number; bytes: number; ms: number; error?: string }> = [];
  while (performance.now() - startedAt < DEADLINE_MS + 3000) {
    scrapes.push(await get(normal, server.port));
    await sleep(250);
  }
  const worstLateMs = worstLatenessMs(socket);
  const collections = server.collections() - collectionsBefore;
  const slowest = Math.max(...scrapes.map((s) => s.ms));
  // Read what the trickling clients were sent: the server ended each response at its deadline (or
  // refused the connection at the cap), so none of them got a whole exposition.
  const received = await tricklers.drain();
  const refused = received.filter((b) => b === 0).length;
  t.diagnostic(
    `${scrapes.length} normal scrapes, slowest ${slowest.toFixed(0)} ms; ${collections} collections for ${scrapes.length + SLOW_CLIENTS} requests; ` +
      `${refused} trickling clients refused at the cap, ${SLOW_CLIENTS - refused} cut at the deadline after ${Math.max(...received)} bytes at most; ` +
      `probes at most ${worstLateMs.toFixed(1)} ms late`,
  );
  assert.ok(scrapes.length >= 4, `${scrapes.length} normal scrapes`);
  assert.ok(slowest < 8000, `within a Prometheus scrape timeout: ${slowest} ms`);
  assert.deepEqual(
    scrapes.filter((s) => s.status !== 200 || s.bytes < fullBytes * 0.9),
    [],
    'every normal scrape is a whole 200',
  );
  assert.ok(
    received.every((bytes) => bytes >= 0 && bytes < fullBytes),
    'every trickling client was closed by the server before it had everything: refused at the cap, or at its deadline',
  );
  assert.ok(refused > 0 && refused < SLOW_CLIENTS, 'the connection cap refused some, not all');
  assert.ok(collections <= scrapes.length + 5, 'the crowd shares collections');
  assert.ok(worstLateMs < 250, `probing kept its schedule: at most ${worstLateMs.toFixed(1)} ms late`);
  assert.deepEqual(server.serverErrors, []);
});
