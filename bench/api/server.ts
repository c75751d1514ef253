/**
 * The API section's Kubernetes API server, inside a network namespace: the fake API server with
 * responses compressed as kube-apiserver compresses them (gzip for get and list responses over
 * 128 KiB when the client asks, never for watches; FaultControl's server sends everything plain),
 * kubelet-sized Nodes whose kubelets post status, and the load accounting per user. Driven over
 * the Node IPC channel by the API section (run.ts, harness.ts).
 *
 *   ip netns exec NS node dist/bench/api/server.js DIR
 */
import { startNodeHeartbeats, type Heartbeats } from '../../test/fake-apiserver/heartbeats.js';
import { FakeApiServer, makeRealisticNode, type LoadSnapshot } from '../../test/fake-apiserver/index.js';

/** What the section asks the server over IPC. */
export type ApiServerRequest =
  /** Creates or replaces kubelet-sized Nodes; `index` seeds each one's zone, IDs and images. */
  | { id: number; op: 'nodes'; nodes: Array<{ name: string; address: string; index: number }> }
  | { id: number; op: 'deleteNode'; name: string }
  | { id: number; op: 'kubeconfig'; user: string }
  /** A user's GET and list requests so far, and how many of them asked for resourceVersion=0 (served from the watch cache). */
  | { id: number; op: 'reads'; user: string }
  /** This process's resident memory, MiB. */
  | { id: number; op: 'rss' }
  | { id: number; op: 'load' }
  | { id: number; op: 'heartbeats'; periodMs: number }
  /** Status updates made so far. */
  | { id: number; op: 'beats' }
  | { id: number; op: 'heartbeatsStop' }
  | { id: number; op: 'lease'; namespace: string; name: string }
  /** Bytes of one stored object's JSON (as a watch event carries it, without the envelope). */
  | { id: number; op: 'objectBytes'; resource: 'nodes' | 'configmaps' | 'leases'; namespace?: string; name: string };

/** What `load` answers. */
export type { LoadSnapshot };

/** What `lease` answers. */
export interface LeaseView {
  holder: string | undefined;
  annotations: Record<string, string>;
  resourceVersion: string | undefined;
  /** spec.leaseTransitions: how often the lease changed hands. */
  transitions: number;
}

/** What `reads` answers. */
export interface Reads {
  reads: number;
  cached: number;
  /** The first few reads that did not ask for it: kind, path and query. */
  uncached: string[];
}

type Reply = { id: number; ok: true; result?: unknown } | { id: number; ok: false; error: string };

/** The server's state besides its store: the kubelets posting status. */
interface State {
  heartbeats: Heartbeats | undefined;
}

/** Who holds a Lease, as `lease` answers. */
function leaseView(server: FakeApiServer, namespace: string, name: string): LeaseView {
  const lease = server.getObject('leases', namespace, name) as
    { metadata: { resourceVersion?: string; annotations?: Record<string, string> }; spec?: { holderIdentity?: string; leaseTransitions?: number } } | undefined;
  return {
    holder: lease?.spec?.holderIdentity || undefined,
    annotations: lease?.metadata.annotations ?? {},
    resourceVersion: lease?.metadata.resourceVersion,
    transitions: lease?.spec?.leaseTransitions ?? 0,
  };
}

/** One request's answer. */
async function answer(server: FakeApiServer, dir: string, state: State, raw: ApiServerRequest): Promise<unknown> {
  switch (raw.op) {
    case 'nodes':
      for (const n of raw.nodes) server.upsertNode(makeRealisticNode(n.name, n.address, n.index));
      return undefined;
    case 'deleteNode':
      return server.deleteNode(raw.name);
    case 'reads': {
      const reads = server.requests.filter((r) => r.user === raw.user && (r.kind === 'get' || r.kind === 'list'));
      const uncached = reads.filter((r) => r.query['resourceVersion'] !== '0');
      const view: Reads = {
        reads: reads.length,
        cached: reads.length - uncached.length,
        uncached: uncached.slice(0, 5).map((r) => `${r.kind} ${r.path}${r.search}`),
      };
      return view;
    }
    case 'rss':
      return process.memoryUsage().rss / 2 ** 20;
    case 'kubeconfig':
      return server.writeKubeconfig(dir, { user: raw.user });
    case 'load':
      return server.load();
    case 'heartbeats':
      state.heartbeats?.stop();
      state.heartbeats = startNodeHeartbeats(server, { periodMs: raw.periodMs });
      return undefined;
    case 'beats':
      return state.heartbeats?.beats ?? 0;
    case 'heartbeatsStop': {
      const beats = state.heartbeats?.beats ?? 0;
      state.heartbeats?.stop();
      state.heartbeats = undefined;
      return beats;
    }
    case 'lease':
      return leaseView(server, raw.namespace, raw.name);
    case 'objectBytes': {
      const obj = server.getObject(raw.resource, raw.namespace, raw.name);
      return obj ? Buffer.byteLength(JSON.stringify(obj)) : 0;
    }
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir || !process.send) throw new Error('usage: server.js DIR (with an IPC channel)');
  const server = await FakeApiServer.start({ compressResponses: true });
  const send = (msg: Reply | { ready: true; url: string }): void => void process.send!(msg);
  const state: State = { heartbeats: undefined };
  process.on('message', (raw: ApiServerRequest) => {
    answer(server, dir, state, raw).then(
      (result) => send({ id: raw.id, ok: true, result }),
      (err: unknown) => send({ id: raw.id, ok: false, error: String((err as Error)?.message ?? err) }),
    );
  });
  process.on('disconnect', () => {
    state.heartbeats?.stop();
    void server.stop().finally(() => process.exit(0));
  });
  send({ ready: true, url: server.url });
}

main().catch((err: unknown) => {
  process.stderr.write(`api-server: ${String(err)}\n`);
  process.exit(1);
});
