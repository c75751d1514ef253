/**
 * The test's hands inside a network namespace, with every fault switch of the fake API server:
 * runs inside a test network namespace, hosts a FakeApiServer on that namespace's loopback, makes
 * HTTP requests there for the test, and can watch a URL's latency (an event-loop stall probe for
 * the agent). Driven over the Node IPC channel by FaultControl (fault-client.ts).
 *
 *   ip netns exec NS node fault-control.js DIR [HOST]   (HOST: the API server's address, 127.0.0.1 by default)
 *
 * Besides nodes it puts, gets and deletes ConfigMaps and Leases, sets per-user permissions, hangs
 * requests, reports the load accounting and runs the kubelet-like node status generator.
 */
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { startNodeHeartbeats, type Heartbeats } from '../fake-apiserver/heartbeats.js';
import {
  FakeApiServer,
  makeNode,
  type AuthMode,
  type NodeInput,
  type ObjectInput,
  type Permission,
  type RequestFilter,
  type RequestKind,
  type ResourceName,
} from '../fake-apiserver/index.js';

export type FaultRequest =
  | { id: number; op: 'upsert'; name: string; address: string; labels?: Record<string, string> }
  | { id: number; op: 'upsertRaw'; nodes: NodeInput[] }
  | { id: number; op: 'upsertMany'; nodes: Array<{ name: string; address: string }> }
  | { id: number; op: 'delete'; names: string[] }
  | { id: number; op: 'auth'; mode: AuthMode }
  | { id: number; op: 'down'; down: boolean }
  | { id: number; op: 'failNext'; n: number; status: number; only?: RequestKind | RequestFilter }
  | { id: number; op: 'cutWatches' }
  | { id: number; op: 'closeWatches' }
  | { id: number; op: 'compactHistory' }
  | { id: number; op: 'cutWatchesMidEvent'; node: NodeInput }
  | { id: number; op: 'ignoreLimit'; on: boolean }
  | { id: number; op: 'info' }
  | { id: number; op: 'fetch'; url: string; method?: string; headers?: Record<string, string>; timeoutMs?: number }
  | { id: number; op: 'monitorStart'; url: string; everyMs: number }
  | { id: number; op: 'monitorTake' }
  | { id: number; op: 'kubeconfig'; user?: string; token?: string }
  | { id: number; op: 'putObject'; resource: ResourceName; namespace?: string; obj: ObjectInput }
  | { id: number; op: 'getObject'; resource: ResourceName; namespace?: string; name: string }
  | { id: number; op: 'listObjects'; resource: ResourceName; namespace?: string }
  | { id: number; op: 'deleteObject'; resource: ResourceName; namespace?: string; name: string }
  | { id: number; op: 'permissions'; user: string; permissions?: Permission[] }
  | { id: number; op: 'hang'; only?: RequestFilter }
  | { id: number; op: 'clearHangs' }
  | { id: number; op: 'load' }
  | { id: number; op: 'resetLoad' }
  | { id: number; op: 'heartbeatsStart'; periodMs: number; names?: string[] }
  | { id: number; op: 'heartbeatsStop' };

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
  /** Every request for nodes in arrival order, with its wall-clock arrival time (ms). */
  arrivals: ArrivedRequest[];
  /** Requests held by a hang. */
  heldRequests: number;
}

/** Latency of a monitored URL since the last take. */
export interface MonitorWindow {
  requests: number;
  failures: number;
  meanMs: number;
  p99Ms: number;
  maxMs: number;
}

/** GET/POST/... without keep-alive; a refused connection is status 0. */
function httpRequest(
  url: string,
  method: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  return new Promise((resolve) => {
    const req = request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)])),
        }),
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
  const host = process.argv[3];
  if (!dir || !process.send) throw new Error('usage: fault-control.js DIR [HOST] (with an IPC channel)');
  const server = await FakeApiServer.start(host ? { host } : {});
  const kubeconfig = await server.writeKubeconfig(dir);
  const send = (msg: FaultReply | FaultReady): void => void process.send!(msg);
  let heartbeats: Heartbeats | undefined;

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
          if (typeof raw.only === 'object') server.failNext({ count: raw.n, status: raw.status, only: raw.only });
          else server.failNext(raw.n, raw.status, raw.only);
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
          const line = JSON.stringify({
            type: 'ADDED',
            object: {
              kind: 'Node',
              apiVersion: 'v1',
              ...raw.node,
              metadata: { ...raw.node.metadata, resourceVersion: String(Number(server.resourceVersion) + 1), uid: 'half' },
            },
          });
          const cut = server.writeToWatches(line.slice(0, Math.floor(line.length / 2)), 'nodes');
          // Let the half line reach the socket, then break the connections without a terminating chunk.
          await new Promise((r) => setTimeout(r, 50));
          server.cutWatches();
          // The event itself then really happens, so the agent must learn it after reconnecting.
          server.upsertNode(raw.node);
          result = cut;
          break;
        }
        case 'ignoreLimit':
          server.setIgnoreLimit(raw.on);
          break;
        case 'info': {
          const arrivals = server.requests.filter((r) => r.resource === 'nodes').map((r): ArrivedRequest => ({ at: r.at, kind: r.kind, query: r.search }));
          const info: ApiInfo = {
            counts: { ...server.counts },
            openWatches: server.openWatches,
            nodeCount: server.nodeCount,
            resourceVersion: server.resourceVersion,
            arrivals,
            heldRequests: server.heldRequests,
          };
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
        case 'kubeconfig':
          result = await server.writeKubeconfig(dir, {
            ...(raw.user !== undefined ? { user: raw.user } : {}),
            ...(raw.token !== undefined ? { token: raw.token } : {}),
          });
          break;
        case 'putObject':
          result = server.putObject(raw.resource, raw.namespace, raw.obj);
          break;
        case 'getObject':
          result = server.getObject(raw.resource, raw.namespace, raw.name) ?? null;
          break;
        case 'listObjects':
          result = server.listObjects(raw.resource, raw.namespace);
          break;
        case 'deleteObject':
          result = server.deleteObject(raw.resource, raw.namespace, raw.name);
          break;
        case 'permissions':
          server.setPermissions(raw.user, raw.permissions);
          break;
        case 'hang':
          server.hang(raw.only ?? {});
          break;
        case 'clearHangs':
          result = server.clearHangs();
          break;
        case 'load':
          result = server.load();
          break;
        case 'resetLoad':
          server.resetLoad();
          break;
        case 'heartbeatsStart':
          heartbeats?.stop();
          heartbeats = startNodeHeartbeats(server, { periodMs: raw.periodMs, ...(raw.names ? { names: raw.names } : {}) });
          break;
        case 'heartbeatsStop':
          heartbeats?.stop();
          result = heartbeats?.beats ?? 0;
          heartbeats = undefined;
          break;
      }
      send({ id: raw.id, ok: true, result });
    } catch (err) {
      send({ id: raw.id, ok: false, error: String((err as Error).message ?? err) });
    }
  });
  process.on('disconnect', () => {
    heartbeats?.stop();
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
