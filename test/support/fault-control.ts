/**
 * The test's hands inside a network namespace, with every fault switch of the fake API server:
 * runs inside a test network namespace, hosts a FakeApiServer on that namespace's loopback, makes
 * HTTP requests there for the test, and can watch a URL's latency (an event-loop stall probe for
 * the agent). Driven over the Node IPC channel by FaultControl (fault-client.ts).
 *
 *   ip netns exec NS node fault-control.js DIR
 *
 * Two switches reach into the fake server's internals (test support only, kept here so that
 * fake-apiserver.ts stays as it is): `cutWatchesMidEvent` writes half of an event line to every
 * open watch before cutting it, and `ignoreLimit` makes lists ignore `limit` (as the apiserver's
 * watch cache does), so thousands of nodes arrive in one page.
 */
import type { ServerResponse } from 'node:http';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { FakeApiServer, makeNode, type AuthMode, type NodeInput, type RequestKind } from './fake-apiserver.js';

export type FaultRequest =
  | { id: number; op: 'upsert'; name: string; address: string; labels?: Record<string, string> }
  | { id: number; op: 'upsertRaw'; nodes: NodeInput[] }
  | { id: number; op: 'upsertMany'; nodes: Array<{ name: string; address: string }> }
  | { id: number; op: 'delete'; names: string[] }
  | { id: number; op: 'auth'; mode: AuthMode }
  | { id: number; op: 'down'; down: boolean }
  | { id: number; op: 'failNext'; n: number; status: number; only?: RequestKind }
  | { id: number; op: 'cutWatches' }
  | { id: number; op: 'closeWatches' }
  | { id: number; op: 'compactHistory' }
  | { id: number; op: 'cutWatchesMidEvent'; node: NodeInput }
  | { id: number; op: 'ignoreLimit'; on: boolean }
  | { id: number; op: 'info' }
  | { id: number; op: 'fetch'; url: string; method?: string; headers?: Record<string, string>; timeoutMs?: number }
  | { id: number; op: 'monitorStart'; url: string; everyMs: number }
  | { id: number; op: 'monitorTake' };

export type FaultReply = { id: number; ok: true; result?: unknown } | { id: number; ok: false; error: string };

export interface FaultReady {
  ready: true;
  apiUrl: string;
  kubeconfig: string;
  token: string;
}

/** One API request as the fake server saw it arrive. */
export interface ArrivedRequest {
  at: number;
  kind: RequestKind;
  query: string;
}

export interface ApiInfo {
  counts: Record<RequestKind, number>;
  openWatches: number;
  nodeCount: number;
  resourceVersion: string;
  /** Every API request in arrival order, with its wall-clock arrival time (ms). */
  arrivals: ArrivedRequest[];
}

/** Latency of a monitored URL since the last take. */
export interface MonitorWindow {
  requests: number;
  failures: number;
  meanMs: number;
  p99Ms: number;
  maxMs: number;
}

interface WatchInternals {
  watches: Set<{ res: ServerResponse }>;
  serveList: (res: ServerResponse, rec: unknown, params: URLSearchParams, matches: unknown) => void;
}

/** GET/POST/... without keep-alive; a refused connection is status 0. */
function httpRequest(url: string, method: string, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  return new Promise((resolve) => {
    const req = request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)])) }),
      );
      res.on('error', (e) => resolve({ status: 0, body: String(e.message), headers: {} }));
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ status: 0, body: String(e.message), headers: {} }));
    req.end();
  });
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir || !process.send) throw new Error('usage: fault-control.js DIR (with an IPC channel)');
  const server = await FakeApiServer.start();
  const kubeconfig = await server.writeKubeconfig(dir);
  const send = (msg: FaultReply | FaultReady): void => void process.send!(msg);
  const internals = server as unknown as WatchInternals;

  // Arrival times, recorded by a second 'request' listener on the fake's own http.Server.
  const arrivals: ArrivedRequest[] = [];
  const httpServer = (server as unknown as { server: import('node:http').Server }).server;
  httpServer.on('request', (req: import('node:http').IncomingMessage) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (!url.pathname.startsWith('/api/v1/nodes')) return;
    const watch = url.searchParams.get('watch');
    arrivals.push({ at: Date.now(), kind: req.method !== 'GET' ? 'other' : watch === 'true' || watch === '1' ? 'watch' : 'list', query: url.search });
  });

  let ignoreLimit = false;
  const serveList = internals.serveList;
  internals.serveList = function (this: unknown, res, rec, params, matches) {
    if (ignoreLimit) params.delete('limit');
    serveList.call(this, res, rec, params, matches);
  };

  // The latency monitor: one request at a time, every `everyMs`.
  let monitor: { url: string; everyMs: number; latencies: number[]; failures: number; timer: NodeJS.Timeout | undefined } | undefined;
  const monitorTick = async (): Promise<void> => {
    const m = monitor;
    if (!m) return;
    const started = performance.now();
    const r = await httpRequest(m.url, 'GET', {}, 10_000);
    if (r.status === 200) m.latencies.push(performance.now() - started);
    else m.failures++;
    if (monitor === m) m.timer = setTimeout(() => void monitorTick(), m.everyMs);
  };

  process.on('message', async (raw: FaultRequest) => {
    try {
      let result: unknown;
      switch (raw.op) {
        case 'upsert':
          server.upsertNode(makeNode(raw.name, raw.address, raw.labels));
          break;
        case 'upsertRaw':
          for (const node of raw.nodes) server.upsertNode(node);
          break;
        case 'upsertMany':
          for (const n of raw.nodes) server.upsertNode(makeNode(n.name, n.address));
          break;
        case 'delete':
          result = raw.names.map((name) => server.deleteNode(name));
          break;
        case 'auth':
          server.setAuth(raw.mode);
          break;
        case 'down':
          await server.setDown(raw.down);
          break;
        case 'failNext':
          server.failNext(raw.n, raw.status, raw.only);
          break;
        case 'cutWatches':
          result = server.cutWatches();
          break;
        case 'closeWatches':
          result = server.closeWatches();
          break;
        case 'compactHistory':
          server.compactHistory();
          break;
        case 'cutWatchesMidEvent': {
          // Half of a well-formed ADDED line, as if the connection broke while the event was on the wire.
          const line = JSON.stringify({ type: 'ADDED', object: { kind: 'Node', apiVersion: 'v1', ...raw.node, metadata: { ...raw.node.metadata, resourceVersion: String(Number(server.resourceVersion) + 1), uid: 'half' } } });
          const half = line.slice(0, Math.floor(line.length / 2));
          let cut = 0;
          for (const w of [...internals.watches]) {
            if (w.res.destroyed) continue;
            w.res.write(half);
            cut++;
          }
          // Let the half line reach the socket, then break the connections without a terminating chunk.
          await new Promise((r) => setTimeout(r, 50));
          server.cutWatches();
          // The event itself then really happens, so the agent must learn it after reconnecting.
          server.upsertNode(raw.node);
          result = cut;
          break;
        }
        case 'ignoreLimit':
          ignoreLimit = raw.on;
          break;
        case 'info': {
          const info: ApiInfo = { counts: { ...server.counts }, openWatches: server.openWatches, nodeCount: server.nodeCount, resourceVersion: server.resourceVersion, arrivals: [...arrivals] };
          result = info;
          break;
        }
        case 'fetch':
          result = await httpRequest(raw.url, raw.method ?? 'GET', raw.headers ?? {}, raw.timeoutMs ?? 10_000);
          break;
        case 'monitorStart':
          if (monitor?.timer) clearTimeout(monitor.timer);
          monitor = { url: raw.url, everyMs: raw.everyMs, latencies: [], failures: 0, timer: undefined };
          void monitorTick();
          break;
        case 'monitorTake': {
          const m = monitor;
          const lat = m ? [...m.latencies].sort((a, b) => a - b) : [];
          const window: MonitorWindow = {
            requests: lat.length,
            failures: m?.failures ?? 0,
            meanMs: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : 0,
            p99Ms: lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]! : 0,
            maxMs: lat.length ? lat[lat.length - 1]! : 0,
          };
          if (m) {
            m.latencies = [];
            m.failures = 0;
          }
          result = window;
          break;
        }
      }
      send({ id: raw.id, ok: true, result });
    } catch (err) {
      send({ id: raw.id, ok: false, error: String((err as Error).message ?? err) });
    }
  });
  process.on('disconnect', () => {
    if (monitor?.timer) clearTimeout(monitor.timer);
    monitor = undefined;
    void server.stop().finally(() => process.exit(0));
  });
  send({ ready: true, apiUrl: server.url, kubeconfig, token: server.token });
}

main().catch((err: unknown) => {
  process.stderr.write(`fault-control: ${String(err)}\n`);
  process.exit(1);
});
