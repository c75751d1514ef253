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
import { performance } from 'node:perf_hooks';
import { httpRequest } from './http-request.js';
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

type Op = FaultRequest['op'];
/** One handler per operation, given its own request type. */
type Handlers = { [K in Op]: (request: Extract<FaultRequest, { op: K }>) => unknown };

/** Half of a well-formed ADDED line, as if the connection broke while the event was on the wire; then the event really happens. */
async function cutWatchesMidEvent(server: FakeApiServer, node: NodeInput): Promise<number> {
  const line = JSON.stringify({
    type: 'ADDED',
    object: {
      kind: 'Node',
      apiVersion: 'v1',
      ...node,
      metadata: { ...node.metadata, resourceVersion: String(Number(server.resourceVersion) + 1), uid: 'half' },
    },
  });
  const cut = server.writeToWatches(line.slice(0, Math.floor(line.length / 2)), 'nodes');
  // Let the half line reach the socket, then break the connections without a terminating chunk.
  await new Promise((r) => setTimeout(r, 50));
  server.cutWatches();
  // The agent must learn the event after reconnecting.
  server.upsertNode(node);
  return cut;
}

/** What the API server saw and holds, for the tests' assertions. */
function info(server: FakeApiServer): ApiInfo {
  const arrivals = server.requests.filter((r) => r.resource === 'nodes').map((r): ArrivedRequest => ({ at: r.at, kind: r.kind, query: r.search }));
  return {
    counts: { ...server.counts },
    openWatches: server.openWatches,
    nodeCount: server.nodeCount,
    resourceVersion: server.resourceVersion,
    arrivals,
    heldRequests: server.heldRequests,
  };
}

/** The operations on the API server's state and faults. */
function apiHandlers(server: FakeApiServer, dir: string): Omit<Handlers, 'fetch' | 'monitorStart' | 'monitorTake' | 'heartbeatsStart' | 'heartbeatsStop'> {
  return {
    upsert: (r) => void server.upsertNode(makeNode(r.name, r.address, r.labels)),
    upsertRaw: (r) => r.nodes.forEach((node) => server.upsertNode(node)),
    upsertMany: (r) => r.nodes.forEach((n) => server.upsertNode(makeNode(n.name, n.address))),
    delete: (r) => r.names.map((name) => server.deleteNode(name)),
    auth: (r) => server.setAuth(r.mode),
    down: (r) => server.setDown(r.down),
    failNext: (r) => (typeof r.only === 'object' ? server.failNext({ count: r.n, status: r.status, only: r.only }) : server.failNext(r.n, r.status, r.only)),
    cutWatches: () => server.cutWatches(),
    closeWatches: () => server.closeWatches(),
    compactHistory: () => server.compactHistory(),
    cutWatchesMidEvent: (r) => cutWatchesMidEvent(server, r.node),
    ignoreLimit: (r) => server.setIgnoreLimit(r.on),
    info: () => info(server),
    kubeconfig: (r) => server.writeKubeconfig(dir, { ...(r.user !== undefined ? { user: r.user } : {}), ...(r.token !== undefined ? { token: r.token } : {}) }),
    putObject: (r) => server.putObject(r.resource, r.namespace, r.obj),
    getObject: (r) => server.getObject(r.resource, r.namespace, r.name) ?? null,
    listObjects: (r) => server.listObjects(r.resource, r.namespace),
    deleteObject: (r) => server.deleteObject(r.resource, r.namespace, r.name),
    permissions: (r) => server.setPermissions(r.user, r.permissions),
    hang: (r) => server.hang(r.only ?? {}),
    clearHangs: () => server.clearHangs(),
    load: () => server.load(),
    resetLoad: () => server.resetLoad(),
  };
}

/** The latency monitor: one request at a time, every `everyMs`, summarised and reset by each take. */
class Monitor {
  private latencies: number[] = [];
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly url: string,
    private readonly everyMs: number,
  ) {
    void this.tick();
  }

  take(): MonitorWindow {
    const lat = [...this.latencies].sort((a, b) => a - b);
    const window: MonitorWindow = {
      requests: lat.length,
      failures: this.failures,
      meanMs: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : 0,
      p99Ms: lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]! : 0,
      maxMs: lat.length ? lat[lat.length - 1]! : 0,
    };
    this.latencies = [];
    this.failures = 0;
    return window;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async tick(): Promise<void> {
    const started = performance.now();
    const r = await httpRequest(this.url, { timeoutMs: 10_000 });
    if (r.status === 200) this.latencies.push(performance.now() - started);
    else this.failures++;
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.everyMs);
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  const host = process.argv[3];
  if (!dir || !process.send) throw new Error('usage: fault-control.js DIR [HOST] (with an IPC channel)');
  const server = await FakeApiServer.start(host ? { host } : {});
  const kubeconfig = await server.writeKubeconfig(dir);
  const send = (msg: FaultReply | FaultReady): void => void process.send!(msg);
  let heartbeats: Heartbeats | undefined;
  let monitor: Monitor | undefined;
  const empty: MonitorWindow = { requests: 0, failures: 0, meanMs: 0, p99Ms: 0, maxMs: 0 };
  const handlers: Handlers = {
    ...apiHandlers(server, dir),
    fetch: (r) => httpRequest(r.url, { ...r, timeoutMs: r.timeoutMs ?? 10_000 }),
    monitorStart: (r) => {
      monitor?.stop();
      monitor = new Monitor(r.url, r.everyMs);
    },
    monitorTake: () => monitor?.take() ?? empty,
    heartbeatsStart: (r) => {
      heartbeats?.stop();
      heartbeats = startNodeHeartbeats(server, { periodMs: r.periodMs, ...(r.names ? { names: r.names } : {}) });
    },
    heartbeatsStop: () => {
      heartbeats?.stop();
      const beats = heartbeats?.beats ?? 0;
      heartbeats = undefined;
      return beats;
    },
  };

  process.on('message', async (raw: FaultRequest) => {
    try {
      const handle = handlers[raw.op] as (request: FaultRequest) => unknown;
      send({ id: raw.id, ok: true, result: await handle(raw) });
    } catch (err) {
      send({ id: raw.id, ok: false, error: String((err as Error).message ?? err) });
    }
  });
  process.on('disconnect', () => {
    heartbeats?.stop();
    monitor?.stop();
    monitor = undefined;
    void server.stop().finally(() => process.exit(0));
  });
  send({ ready: true, apiUrl: server.url, kubeconfig, token: server.token });
}

main().catch((err: unknown) => {
  process.stderr.write(`fault-control: ${String(err)}\n`);
  process.exit(1);
});
