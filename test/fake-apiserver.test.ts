/**
 * Proves the fake apiserver is faithful enough by driving it with the real
 * @kubernetes/client-node (KubeConfig, CoreV1Api, CoordinationV1Api, Watch, ListWatch,
 * makeInformer) and plain fetch over real HTTP: Nodes, ConfigMaps, Leases and Pods, permissions,
 * hangs, load accounting and the kubelet-like status generator.
 * Also pins down client-node 2.0.1 informer behaviours our discovery code relies on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { test, type TestContext } from 'node:test';
import { setImmediate as yieldToIo } from 'node:timers/promises';
import { gunzipSync, gzipSync } from 'node:zlib';

import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  ListWatch,
  makeInformer,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
  type V1ConfigMap,
  type V1Lease,
  V1MicroTime,
  type V1Node,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';

import { loadKubeClient } from '../src/kube/client.js';
import { AGENT_POD_SELECTOR, PodWatch } from '../src/kube/pod-watch.js';
import { RateLimitedLog } from '../src/log.js';
import { agentPodLabels, kustomize, need } from './deploy/render.js';
import { startNodeHeartbeats } from './fake-apiserver/heartbeats.js';
import { ManualClock } from './support/fake-clock.js';
import { recordingLog } from './support/node-list-parts.js';
import { permissionsFromManifests, serviceAccountUser } from './support/rbac.js';
import {
  FakeApiServer,
  makeNode,
  makePod,
  makeRealisticNode,
  sumLoad,
  waitFor,
  type FakeApiServerOptions,
  type Permission,
  type StoredNode,
} from './fake-apiserver/index.js';

interface Env {
  server: FakeApiServer;
  kc: KubeConfig;
  api: CoreV1Api;
  dir: string;
}

async function setup(t: TestContext, opts: FakeApiServerOptions = {}): Promise<Env> {
  const server = await FakeApiServer.start(opts);
  const dir = await mkdtemp(join(tmpdir(), 'mentat-fake-apiserver-'));
  t.after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(dir));
  return { server, kc, api: kc.makeApiClient(CoreV1Api), dir };
}

function nodeName(i: number): string {
  return `node-${String(i).padStart(4, '0')}`;
}

function seed(server: FakeApiServer, count: number, labels?: Record<string, string>): void {
  for (let i = 0; i < count; i++) {
    server.upsertNode(makeNode(nodeName(i), `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, labels));
  }
}

type NodeInformer = Informer<V1Node> & ObjectCache<V1Node>;

interface Harness {
  informer: NodeInformer;
  /** Mirror maintained purely from add/update/delete callbacks. */
  mirror: Map<string, string>;
  /** Callback-level protocol violations (add of a known name, delete of an unknown one). */
  anomalies: string[];
  errors: unknown[];
  counts: { add: number; update: number; delete: number };
}

/**
 * Runs an informer the way production code should: on 'error' the informer has stopped
 * itself, so the caller restarts it (`restartOnError`). Errors after stop() are ignored,
 * because stop() itself reports an AbortError through the error callback.
 */
function runInformer(t: TestContext, env: Env, opts: { labelSelector?: string; restartOnError?: boolean } = {}): Harness {
  const { labelSelector } = opts;
  const informer = makeInformer<V1Node>(env.kc, '/api/v1/nodes', () => env.api.listNode(labelSelector !== undefined ? { labelSelector } : {}), labelSelector);
  const h: Harness = { informer, mirror: new Map(), anomalies: [], errors: [], counts: { add: 0, update: 0, delete: 0 } };
  let stopping = false;
  informer.on('add', (n) => {
    h.counts.add++;
    const name = n.metadata?.name ?? '';
    if (h.mirror.has(name)) h.anomalies.push(`duplicate add ${name}`);
    h.mirror.set(name, n.metadata?.resourceVersion ?? '');
  });
  informer.on('update', (n) => {
    h.counts.update++;
    const name = n.metadata?.name ?? '';
    if (!h.mirror.has(name)) h.anomalies.push(`update of unknown ${name}`);
    h.mirror.set(name, n.metadata?.resourceVersion ?? '');
  });
  informer.on('delete', (n) => {
    h.counts.delete++;
    const name = n.metadata?.name ?? '';
    if (!h.mirror.delete(name)) h.anomalies.push(`delete of unknown ${name}`);
  });
  informer.on('error', (err: unknown) => {
    if (stopping) return;
    h.errors.push(err);
    if (opts.restartOnError) void informer.start();
  });
  t.after(async () => {
    stopping = true;
    await informer.stop();
  });
  return h;
}

/** name -> resourceVersion as the server sees it (optionally only nodes with a label). */
function serverState(server: FakeApiServer, label?: [string, string]): Map<string, string> {
  const m = new Map<string, string>();
  for (const name of server.nodeNames()) {
    const n = server.getNode(name);
    if (!n) continue;
    if (label && n.metadata.labels?.[label[0]] !== label[1]) continue;
    m.set(name, n.metadata.resourceVersion);
  }
  return m;
}

function sameState(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function cacheState(informer: NodeInformer): Map<string, string> {
  return new Map(informer.list().map((n) => [n.metadata?.name ?? '', n.metadata?.resourceVersion ?? '']));
}

function statusOf(err: unknown): { code?: number; statusCode?: number; body?: unknown; name?: string; causeCode?: string } {
  if (typeof err !== 'object' || err === null) return {};
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; name?: unknown; cause?: { code?: unknown } };
  return {
    ...(typeof e.code === 'number' ? { code: e.code } : {}),
    ...(typeof e.statusCode === 'number' ? { statusCode: e.statusCode } : {}),
    ...(e.body !== undefined ? { body: e.body } : {}),
    ...(typeof e.name === 'string' ? { name: e.name } : {}),
    ...(typeof e.cause?.code === 'string' ? { causeCode: e.cause.code } : {}),
  };
}

test('listNode pages 1200 nodes with limit/continue from one consistent snapshot', async (t) => {
  const { server, api } = await setup(t);
  seed(server, 1200);
  const rvBefore = server.resourceVersion;

  const p1 = await api.listNode({ limit: 500 });
  assert.equal(p1.items.length, 500);
  assert.equal(p1.metadata?.resourceVersion, rvBefore);
  assert.equal(p1.metadata?.remainingItemCount, 700);
  const token1 = p1.metadata?._continue;
  assert.ok(token1, 'first page must carry a continue token');

  // Mutations between pages must not leak into the continued list (snapshot semantics).
  const oldRv1100 = server.getNode(nodeName(1100))?.metadata.resourceVersion;
  server.upsertNode(makeNode(nodeName(1100), '192.168.0.1'));
  server.deleteNode(nodeName(900));
  server.upsertNode(makeNode('node-zzzz', '192.168.0.2'));

  const p2 = await api.listNode({ limit: 500, _continue: token1 });
  const token2 = p2.metadata?._continue;
  assert.ok(token2);
  const p3 = await api.listNode({ limit: 500, _continue: token2 });
  assert.equal(p3.metadata?._continue, undefined, 'last page has no continue token');
  assert.equal(p3.items.length, 200);
  for (const p of [p2, p3]) assert.equal(p.metadata?.resourceVersion, rvBefore);

  const all = [...p1.items, ...p2.items, ...p3.items];
  const names = all.map((n) => n.metadata?.name ?? '');
  assert.equal(new Set(names).size, 1200, 'no duplicates across pages');
  assert.deepEqual(
    names,
    Array.from({ length: 1200 }, (_, i) => nodeName(i)),
    'sorted by name, none lost',
  );
  assert.equal(all.find((n) => n.metadata?.name === nodeName(1100))?.metadata?.resourceVersion, oldRv1100);
  const addr = all[0]?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  assert.equal(addr, '10.0.0.0');

  const listQueries = server.queries('list');
  assert.equal(listQueries.length, 3);
  assert.ok(listQueries.every((q) => new URLSearchParams(q).get('limit') === '500'));

  // After compaction the snapshot is gone: the apiserver answers 410 Expired.
  server.compactHistory();
  await assert.rejects(api.listNode({ limit: 500, _continue: token2 }), (err: unknown) => {
    assert.ok(err instanceof ApiException);
    assert.equal(err.code, 410);
    // client-node leaves the body as the raw JSON text.
    const body = JSON.parse(String(err.body)) as { kind: string; reason: string; code: number };
    assert.equal(body.kind, 'Status');
    assert.equal(body.reason, 'Expired');
    assert.equal(body.code, 410);
    return true;
  });
});

test('5000 nodes list in 10 pages of 500', async (t) => {
  const { server, api } = await setup(t);
  seed(server, 5000);
  const seen = new Set<string>();
  let token: string | undefined;
  do {
    const page = await api.listNode({ limit: 500, ...(token ? { _continue: token } : {}) });
    for (const n of page.items) seen.add(n.metadata?.name ?? '');
    token = page.metadata?._continue;
  } while (token);
  assert.equal(seen.size, 5000);
  assert.equal(server.counts.list, 10);
});

test('informer receives add, update and delete over a watch', async (t) => {
  const env = await setup(t);
  const { server } = env;
  seed(server, 3);
  const h = runInformer(t, env);
  await h.informer.start(); // resolves once the initial list is applied and the watch is connected
  assert.equal(h.informer.list().length, 3);
  assert.equal(h.counts.add, 3);
  await server.waitFor((s) => s.openWatches === 1, 2000, 'watch open');
  // The watch resumes exactly at the list's resourceVersion.
  assert.equal(new URLSearchParams(server.queries('watch')[0]).get('resourceVersion'), server.resourceVersion);

  server.upsertNode(makeNode('extra', '10.9.9.9', { zone: 'a' }));
  await waitFor(() => h.counts.add === 4, 2000, 'add event');
  server.upsertNode(makeNode('extra', '10.9.9.9', { zone: 'b' }));
  await waitFor(() => h.counts.update === 1, 2000, 'update event');
  assert.equal(h.informer.get('extra')?.metadata?.labels?.['zone'], 'b');
  // A no-op update is not an event on a real apiserver either.
  const rv = server.resourceVersion;
  server.upsertNode(makeNode('extra', '10.9.9.9', { zone: 'b' }));
  assert.equal(server.resourceVersion, rv);
  server.deleteNode(nodeName(0));
  await waitFor(() => h.counts.delete === 1, 2000, 'delete event');

  assert.ok(sameState(h.mirror, serverState(server)));
  assert.ok(sameState(cacheState(h.informer), serverState(server)));
  assert.deepEqual(h.anomalies, []);
  assert.deepEqual(h.errors, []);
  assert.equal(server.counts.list, 1);
  assert.equal(server.counts.watch, 1);
});

for (const mode of ['event', 'http'] as const) {
  test(`informer recovers after compaction + cut watch (expired watch as ${mode}): re-list, nothing lost or duplicated`, async (t) => {
    const env = await setup(t, { expiredWatchMode: mode });
    const { server } = env;
    seed(server, 200);
    const h = runInformer(t, env, { restartOnError: true });
    await h.informer.start();
    await server.waitFor((s) => s.openWatches === 1, 2000, 'watch open');
    const rvAtList = server.resourceVersion;

    // All in one tick, so the informer is guaranteed to miss these events on the cut stream.
    server.cutWatches();
    for (let i = 0; i < 10; i++) server.upsertNode(makeNode(`late-${i}`, `10.200.0.${i}`));
    for (let i = 10; i < 20; i++) server.upsertNode(makeNode(nodeName(i), `10.201.0.${i}`));
    for (let i = 20; i < 30; i++) server.deleteNode(nodeName(i));
    server.compactHistory();

    const want = serverState(server);
    await waitFor(() => sameState(h.mirror, want) && sameState(cacheState(h.informer), want), 3000, 'informer to converge');
    await server.waitFor((s) => s.openWatches === 1, 2000, 'watch re-established');

    // An abrupt cut is an *error* to client-node (undici "terminated"), not a clean end.
    assert.equal(h.errors.length, 1);
    const cut = statusOf(h.errors[0]);
    assert.equal(cut.name, 'TypeError');
    assert.equal(cut.causeCode, 'UND_ERR_SOCKET');

    // Restarted watch asked for the stale RV, got 410, and the informer re-listed.
    const watchRvs = server.queries('watch').map((q) => new URLSearchParams(q).get('resourceVersion'));
    assert.deepEqual(watchRvs, [rvAtList, rvAtList, server.resourceVersion]);
    assert.equal(server.counts.list, 2);
    assert.equal(server.requests.filter((r) => r.kind === 'watch')[1]?.status, mode === 'http' ? 410 : 200);

    assert.deepEqual(h.anomalies, []);
    assert.equal(h.counts.add, 210);
    assert.equal(h.counts.update, 10);
    assert.equal(h.counts.delete, 10);
  });
}

test('403 reaches the informer error handler (list: ApiException with body; watch: statusCode only)', async (t) => {
  const env = await setup(t);
  const { server } = env;
  seed(server, 2);
  const h = runInformer(t, env);

  server.setAuth(403);
  await h.informer.start();
  await waitFor(() => h.errors.length === 1, 2000, 'list error');
  const listErr = h.errors[0];
  assert.ok(listErr instanceof ApiException);
  assert.equal(listErr.code, 403);
  const body = JSON.parse(String(listErr.body)) as { reason: string; message: string };
  assert.equal(body.reason, 'Forbidden');
  assert.match(
    body.message,
    /^nodes is forbidden: User "system:serviceaccount:monitoring:mentat" cannot list resource "nodes" in API group "" at the cluster scope$/,
  );
  // The informer does not retry by itself; the caller has to start() it again.
  assert.equal(server.counts.list, 1);

  server.setAuth('ok');
  await h.informer.start();
  assert.equal(h.informer.list().length, 2);
  await server.waitFor((s) => s.openWatches === 1, 2000, 'watch open');

  // Permission lost while watching: the reconnecting watch gets 403 as a bare Error.
  server.setAuth(403);
  server.closeWatches();
  await waitFor(() => h.errors.length === 2, 3000, 'watch error');
  const watchErr = statusOf(h.errors[1]);
  assert.equal(watchErr.statusCode, 403);
  assert.equal(watchErr.body, undefined);
  assert.equal((h.errors[1] as Error).message, 'Forbidden');
  assert.equal(server.requests.at(-1)?.status, 403);
  assert.equal(server.requests.at(-1)?.kind, 'watch');
});

test('BOOKMARK is accepted: advances the informer resourceVersion, so a compacted reconnect needs no re-list', async (t) => {
  const env = await setup(t);
  const { server } = env;
  seed(server, 3, { role: 'probe' });
  for (let i = 0; i < 3; i++) server.upsertNode(makeNode(`other-${i}`, `10.1.0.${i}`, { role: 'other' }));
  const h = runInformer(t, env, { labelSelector: 'role=probe' });
  await h.informer.start();
  assert.equal(h.informer.list().length, 3);
  await server.waitFor((s) => s.openWatches === 1, 2000, 'watch open');
  assert.ok(h.informer instanceof ListWatch);
  const lw = h.informer as ListWatch<V1Node>;

  // Changes outside the selector advance the server RV but send nothing to this watch.
  for (let i = 0; i < 5; i++) server.upsertNode(makeNode('other-0', `10.2.0.${i}`, { role: 'other' }));
  const before = lw.latestResourceVersion();
  assert.notEqual(before, server.resourceVersion);

  // client-node's informer never sends allowWatchBookmarks=true ...
  assert.equal(new URLSearchParams(server.queries('watch')[0]).get('allowWatchBookmarks'), null);
  assert.equal(server.sendBookmark(), 0);
  // ... but handles a BOOKMARK if one arrives.
  assert.equal(server.sendBookmark({ force: true }), 1);
  await waitFor(() => lw.latestResourceVersion() === server.resourceVersion, 2000, 'bookmark RV applied');
  assert.deepEqual(h.counts, { add: 3, update: 0, delete: 0 });

  // Clean close + compaction: reconnect resumes from the bookmark RV; no 410, no re-list.
  server.compactHistory();
  server.closeWatches();
  await server.waitFor((s) => s.counts.watch === 2 && s.openWatches === 1, 2000, 'watch reconnect');
  assert.equal(new URLSearchParams(server.queries('watch')[1]).get('resourceVersion'), server.resourceVersion);
  assert.equal(new URLSearchParams(server.queries('watch')[1]).get('labelSelector'), 'role=probe');

  // Selector semantics over the new watch: leaving the selector is a DELETED, joining an ADDED.
  server.upsertNode(makeNode(nodeName(0), '10.0.0.0', { role: 'other' }));
  server.upsertNode(makeNode('other-1', '10.1.0.1', { role: 'probe' }));
  await waitFor(() => h.counts.delete === 1 && h.counts.add === 4, 2000, 'selector transitions');
  assert.ok(sameState(h.mirror, serverState(server, ['role', 'probe'])));
  assert.equal(server.counts.list, 1);
  assert.deepEqual(h.anomalies, []);
  assert.deepEqual(h.errors, []);
});

test('informer quirks: clean close and non-410 ERROR events reconnect silently; stop() reports AbortError', async (t) => {
  const env = await setup(t);
  const { server } = env;
  seed(server, 2);
  const informer = makeInformer<V1Node>(env.kc, '/api/v1/nodes', () => env.api.listNode());
  const errors: unknown[] = [];
  let adds = 0;
  informer.on('error', (err: unknown) => errors.push(err));
  informer.on('add', () => adds++);
  await informer.start();
  await server.waitFor((s) => s.openWatches === 1, 10_000, 'watch open');

  // Clean end of stream: reconnect from the last RV, no error, no re-list.
  server.closeWatches();
  await server.waitFor((s) => s.counts.watch === 2 && s.openWatches === 1, 10_000, 'reconnect after clean close');
  // Any delivered event resets client-node's reconnect backoff (otherwise the next reconnect waits 1s, 2s, ...).
  server.upsertNode(makeNode('x', '10.4.0.1'));
  await waitFor(() => adds === 3, 10_000, 'add');

  // A non-410 ERROR event is ignored by the informer; the following close just reconnects.
  server.errorWatches(500, 'InternalError', 'etcdserver: leader changed');
  await server.waitFor((s) => s.counts.watch === 3 && s.openWatches === 1, 10_000, 'reconnect after ERROR event');
  const rvs = server.queries('watch').map((q) => new URLSearchParams(q).get('resourceVersion'));
  assert.deepEqual(rvs, [rvs[0], rvs[0], server.resourceVersion]);
  assert.equal(server.counts.list, 1);
  assert.deepEqual(errors, []);

  await informer.stop();
  await waitFor(() => errors.length === 1, 10_000, 'stop() error callback');
  assert.equal(statusOf(errors[0]).name, 'AbortError');
  await server.waitFor((s) => s.openWatches === 0, 10_000, 'watch closed after stop');
});

test('raw Watch: history replay from a resourceVersion, requested bookmarks, clean end at timeoutSeconds', async (t) => {
  const { server, kc } = await setup(t);
  seed(server, 2);
  const from = server.resourceVersion;
  server.upsertNode(makeNode('a', '10.3.0.1'));
  server.upsertNode(makeNode('a', '10.3.0.2'));
  server.deleteNode(nodeName(0));

  const events: Array<{ type: string; rv: string; name: string }> = [];
  let doneErr: unknown = 'not done';
  const ctl = await new Watch(kc).watch(
    '/api/v1/nodes',
    { resourceVersion: from, allowWatchBookmarks: true, timeoutSeconds: 1 },
    (type: string, obj: { metadata?: { name?: string; resourceVersion?: string } }) => {
      events.push({ type, rv: obj.metadata?.resourceVersion ?? '', name: obj.metadata?.name ?? '' });
    },
    (err: unknown) => {
      doneErr = err;
    },
  );
  t.after(() => ctl.abort());
  await waitFor(() => events.length === 3, 2000, 'replayed events');
  assert.deepEqual(
    events.map((e) => `${e.type} ${e.name}`),
    ['ADDED a', 'MODIFIED a', `DELETED ${nodeName(0)}`],
  );
  assert.equal(events[2]?.rv, server.resourceVersion, 'DELETED carries the deletion resourceVersion');
  assert.equal(server.sendBookmark(), 1);
  await waitFor(() => events.length === 4, 2000, 'bookmark');
  assert.deepEqual(events[3], { type: 'BOOKMARK', rv: server.resourceVersion, name: '' });
  await waitFor(() => doneErr !== 'not done', 3000, 'server-side timeout');
  assert.equal(doneErr, null, 'timeoutSeconds ends the stream cleanly');
});

test('fault switches: failNext, 401, get, setDown', async (t) => {
  const { server, api } = await setup(t);
  seed(server, 3);

  server.failNext(2, 500, 'list');
  for (let i = 0; i < 2; i++) {
    await assert.rejects(api.listNode(), (err: unknown) => err instanceof ApiException && err.code === 500);
  }
  assert.equal((await api.listNode()).items.length, 3);

  server.setAuth(401);
  await assert.rejects(api.listNode(), (err: unknown) => err instanceof ApiException && err.code === 401);
  server.setAuth('ok');
  server.revokeToken(server.token);
  await assert.rejects(api.readNode({ name: nodeName(1) }), (err: unknown) => err instanceof ApiException && err.code === 401);
  server.addToken(server.token);

  const n = await api.readNode({ name: nodeName(1) });
  assert.equal(n.kind, 'Node');
  assert.equal(n.status?.addresses?.[0]?.address, '10.0.0.1');
  await assert.rejects(api.readNode({ name: 'nope' }), (err: unknown) => err instanceof ApiException && err.code === 404);

  await server.setDown(true);
  await assert.rejects(api.listNode(), (err: unknown) => statusOf(err).causeCode === 'ECONNREFUSED');
  await server.setDown(false);
  assert.equal((await api.listNode()).items.length, 3, 'same URL works again after coming back up');
});

// ---------------------------------------------------------------- ConfigMaps, Leases, permissions, faults, load

const NS = 'mentat';
const AGENT = 'system:serviceaccount:mentat:mentat';
const LIST_LABELS = { 'mentat.dev/node-list': 'v1' };
const LIST_SELECTOR = 'mentat.dev/node-list=v1';
const LEASE = 'mentat-publisher';
const PINNED = `metadata.name=${LEASE}`;
const CM_PATH = `/api/v1/namespaces/${NS}/configmaps`;
const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;

/** One agent's identity: its own token, and the clients built from its kubeconfig. */
interface Client {
  kc: KubeConfig;
  token: string;
  core: CoreV1Api;
  coord: CoordinationV1Api;
}

async function clientFor(env: Env, user: string): Promise<Client> {
  const kc = new KubeConfig();
  kc.loadFromFile(await env.server.writeKubeconfig(env.dir, { user }));
  const token = kc.getCurrentUser()?.token;
  assert.ok(token, 'the kubeconfig carries a token');
  assert.notEqual(token, env.server.token, 'a user of its own gets a token of its own');
  return { kc, token, core: kc.makeApiClient(CoreV1Api), coord: kc.makeApiClient(CoordinationV1Api) };
}

/** The fields of API bodies these tests read. */
interface Wire {
  kind?: string;
  apiVersion?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; creationTimestamp?: string; labels?: Record<string, string> };
  status?: string;
  reason?: string;
  message?: string;
  code?: number;
  details?: { name?: string; group?: string; kind?: string; uid?: string };
  spec?: { holderIdentity?: string; renewTime?: string };
  binaryData?: Record<string, string>;
}

/** A request with plain fetch and a bearer token; a body that is not a string is sent as JSON. */
async function send(
  server: FakeApiServer,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  opts: { contentType?: string; signal?: AbortSignal } = {},
): Promise<{ status: number; body: Wire }> {
  const res = await fetch(server.url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': opts.contentType ?? 'application/json' } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Wire) };
}

function lease(holder: string, name = LEASE, namespace = NS): V1Lease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new V1MicroTime() },
  };
}

/** The published form: gzip JSON of a node list, base64 in binaryData. */
function published(names: string[]): string {
  return gzipSync(JSON.stringify(names)).toString('base64');
}

/** Records a ListWatch's callbacks as `add NAME`, `update NAME`, `delete NAME`. */
function record<T extends KubernetesObject>(t: TestContext, lw: ListWatch<T>): { events: string[]; errors: unknown[] } {
  const out = { events: [] as string[], errors: [] as unknown[] };
  for (const verb of ['add', 'update', 'delete'] as const) lw.on(verb, (o: T) => out.events.push(`${verb} ${o.metadata?.name ?? ''}`));
  let stopping = false;
  lw.on('error', (err: unknown) => {
    if (!stopping) out.errors.push(err);
  });
  t.after(async () => {
    stopping = true;
    await lw.stop();
  });
  return out;
}

test('ConfigMaps: a ListWatch with a label selector in one namespace follows a publisher that creates, updates and deletes over HTTP', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const agent = await clientFor(env, AGENT);
  server.putObject('configmaps', NS, { metadata: { name: 'mentat-nodes-0', labels: LIST_LABELS }, binaryData: { nodes: published(['a']) } });
  server.putObject('configmaps', NS, { metadata: { name: 'unrelated' }, data: { a: 'b' } });
  server.putObject('configmaps', 'elsewhere', { metadata: { name: 'mentat-nodes-0', labels: LIST_LABELS }, data: {} });

  const lw = new ListWatch<V1ConfigMap>(
    CM_PATH,
    new Watch(agent.kc),
    () => agent.core.listNamespacedConfigMap({ namespace: NS, labelSelector: LIST_SELECTOR }),
    false,
    LIST_SELECTOR,
  );
  const seen = record(t, lw);
  await lw.start();
  await server.waitFor((s) => s.openWatchesOf('configmaps') === 1, 2000, 'configmap watch open');
  assert.deepEqual(seen.events, ['add mentat-nodes-0']);
  const watchReq = server.requests.find((r) => r.kind === 'watch');
  assert.deepEqual(
    { resource: watchReq?.resource, namespace: watchReq?.namespace, user: watchReq?.user, selector: watchReq?.query['labelSelector'] },
    { resource: 'configmaps', namespace: NS, user: AGENT, selector: LIST_SELECTOR },
  );

  // The publisher, with the default token.
  const created = await send(server, server.token, 'POST', CM_PATH, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'mentat-nodes-1', labels: LIST_LABELS },
    binaryData: { nodes: published(['b']) },
  });
  assert.equal(created.status, 201);
  assert.equal(created.body.kind, 'ConfigMap');
  assert.equal(created.body.metadata?.namespace, NS);
  assert.equal(created.body.metadata?.resourceVersion, server.resourceVersion);
  assert.match(created.body.metadata?.uid ?? '', /^[0-9a-f-]{36}$/);
  assert.match(created.body.metadata?.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  await waitFor(() => seen.events.length === 2, 2000, 'add of the created configmap');

  const current = server.getObject('configmaps', NS, 'mentat-nodes-0');
  const updated = await send(server, server.token, 'PUT', `${CM_PATH}/mentat-nodes-0`, { ...current, binaryData: { nodes: published(['a', 'c']) } });
  assert.equal(updated.status, 200);
  assert.notEqual(updated.body.metadata?.resourceVersion, current?.metadata.resourceVersion);
  await waitFor(() => seen.events.length === 3, 2000, 'update event');
  const nodes = lw.get('mentat-nodes-0', NS)?.binaryData?.['nodes'];
  assert.deepEqual(JSON.parse(gunzipSync(Buffer.from(nodes ?? '', 'base64')).toString()), ['a', 'c'], 'binaryData arrives as sent');

  // Outside the selector or the namespace: no events. Leaving the selector: DELETED.
  server.putObject('configmaps', NS, { metadata: { name: 'unrelated' }, data: { a: 'c' } });
  server.putObject('configmaps', 'elsewhere', { metadata: { name: 'mentat-nodes-0', labels: LIST_LABELS }, data: { x: 'y' } });
  server.putObject('configmaps', NS, { metadata: { name: 'mentat-nodes-0' }, binaryData: { nodes: published(['a', 'c']) } });
  const deleted = await send(server, server.token, 'DELETE', `${CM_PATH}/mentat-nodes-1`);
  assert.equal(deleted.status, 200);
  assert.deepEqual(deleted.body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { name: 'mentat-nodes-1', kind: 'configmaps', uid: created.body.metadata?.uid },
  });
  await waitFor(() => seen.events.length === 5, 2000, 'two deletes');
  assert.deepEqual(seen.events, ['add mentat-nodes-0', 'add mentat-nodes-1', 'update mentat-nodes-0', 'delete mentat-nodes-0', 'delete mentat-nodes-1']);
  assert.equal(lw.latestResourceVersion(), server.resourceVersion);
  assert.deepEqual(seen.errors, []);

  // One resourceVersion counter for all resources, as etcd has.
  assert.equal((await env.api.listNode()).metadata?.resourceVersion, server.resourceVersion);
});

test('ConfigMaps: lists page within a namespace (continue, remainingItemCount), and across namespaces sorted by namespace and name', async (t) => {
  const env = await setup(t);
  const { server, api } = env;
  for (let i = 0; i < 5; i++) server.putObject('configmaps', NS, { metadata: { name: `cm-${i}`, labels: LIST_LABELS } });
  for (const ns of ['a-first', 'z-last']) for (let i = 0; i < 2; i++) server.putObject('configmaps', ns, { metadata: { name: `cm-${i}` } });

  const p1 = await api.listNamespacedConfigMap({ namespace: NS, limit: 2 });
  assert.deepEqual(
    p1.items.map((c) => c.metadata?.name),
    ['cm-0', 'cm-1'],
  );
  assert.equal(p1.metadata?.remainingItemCount, 3, 'counts only this namespace');
  assert.equal(p1.kind, 'ConfigMapList');
  const p2 = await api.listNamespacedConfigMap({ namespace: NS, limit: 2, _continue: p1.metadata?._continue ?? '' });
  const p3 = await api.listNamespacedConfigMap({ namespace: NS, limit: 2, _continue: p2.metadata?._continue ?? '' });
  assert.deepEqual(
    [...p2.items, ...p3.items].map((c) => c.metadata?.name),
    ['cm-2', 'cm-3', 'cm-4'],
  );
  assert.equal(p3.metadata?._continue, undefined);
  // A continue token is bound to its resource.
  await assert.rejects(api.listNode({ limit: 2, _continue: p1.metadata?._continue ?? '' }), (err: unknown) => err instanceof ApiException && err.code === 400);

  const all = await api.listConfigMapForAllNamespaces();
  assert.deepEqual(
    all.items.map((c) => `${c.metadata?.namespace}/${c.metadata?.name}`),
    ['a-first/cm-0', 'a-first/cm-1', ...Array.from({ length: 5 }, (_, i) => `${NS}/cm-${i}`), 'z-last/cm-0', 'z-last/cm-1'],
  );
});

test('Leases: create, renew, stale-resourceVersion conflict, no-op update, delete; a ListWatch pinned by fieldSelector sees only its lease', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const agent = await clientFor(env, AGENT);
  const lw = new ListWatch<V1Lease>(
    LEASE_PATH,
    new Watch(agent.kc),
    () => agent.coord.listNamespacedLease({ namespace: NS, fieldSelector: PINNED }),
    false,
    undefined,
    PINNED,
  );
  const seen = record(t, lw);
  await lw.start();
  await server.waitFor((s) => s.openWatchesOf('leases') === 1, 2000, 'lease watch open');
  const tok = server.token;

  const created = await send(server, tok, 'POST', LEASE_PATH, lease('agent-a'));
  assert.equal(created.status, 201);
  assert.deepEqual([created.body.kind, created.body.apiVersion, created.body.spec?.holderIdentity], ['Lease', 'coordination.k8s.io/v1', 'agent-a']);
  assert.match(created.body.spec?.renewTime ?? '', /\.\d{6}Z$/, 'client-node writes MicroTime with six digits');
  const again = await send(server, tok, 'POST', LEASE_PATH, lease('agent-b'));
  assert.equal(again.status, 409);
  assert.deepEqual([again.body.reason, again.body.message], ['AlreadyExists', `leases.coordination.k8s.io "${LEASE}" already exists`]);
  assert.deepEqual(again.body.details, { name: LEASE, group: 'coordination.k8s.io', kind: 'leases' });
  assert.equal((await send(server, tok, 'POST', LEASE_PATH, lease('x', 'another-lease'))).status, 201);

  const rv1 = created.body.metadata?.resourceVersion ?? '';
  const renew = { ...lease('agent-a'), metadata: { name: LEASE, namespace: NS, resourceVersion: rv1 } };
  const renewed = await send(server, tok, 'PUT', `${LEASE_PATH}/${LEASE}`, renew);
  assert.equal(renewed.status, 200);
  const rv2 = renewed.body.metadata?.resourceVersion ?? '';
  assert.ok(Number(rv2) > Number(rv1));
  assert.equal(renewed.body.metadata?.uid, created.body.metadata?.uid, 'uid survives an update');
  assert.equal(renewed.body.metadata?.creationTimestamp, created.body.metadata?.creationTimestamp);

  // Another candidate still holding the first resourceVersion loses.
  const stale = await send(server, tok, 'PUT', `${LEASE_PATH}/${LEASE}`, {
    ...lease('agent-b'),
    metadata: { name: LEASE, namespace: NS, resourceVersion: rv1 },
  });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.reason, 'Conflict');
  assert.equal(
    stale.body.message,
    `Operation cannot be fulfilled on leases.coordination.k8s.io "${LEASE}": the object has been modified; please apply your changes to the latest version and try again`,
  );

  // Writing back exactly what GET returned changes nothing: same resourceVersion, no event.
  const got = await send(server, tok, 'GET', `${LEASE_PATH}/${LEASE}`);
  assert.equal(got.status, 200);
  const rvBefore = server.resourceVersion;
  const noop = await send(server, tok, 'PUT', `${LEASE_PATH}/${LEASE}`, got.body);
  assert.equal(noop.status, 200);
  assert.equal(noop.body.metadata?.resourceVersion, rv2);
  assert.equal(server.resourceVersion, rvBefore);

  const precondition = await send(server, tok, 'DELETE', `${LEASE_PATH}/${LEASE}`, {
    apiVersion: 'v1',
    kind: 'DeleteOptions',
    preconditions: { resourceVersion: rv1 },
  });
  assert.equal(precondition.status, 409);
  assert.match(precondition.body.message ?? '', /Precondition failed: ResourceVersion in precondition: \d+, ResourceVersion in object meta: \d+$/);
  assert.equal((await send(server, tok, 'DELETE', `${LEASE_PATH}/${LEASE}`)).status, 200);
  const gone = await send(server, tok, 'DELETE', `${LEASE_PATH}/${LEASE}`);
  assert.deepEqual([gone.status, gone.body.reason, gone.body.message], [404, 'NotFound', `leases.coordination.k8s.io "${LEASE}" not found`]);
  assert.equal((await send(server, tok, 'PUT', `${LEASE_PATH}/${LEASE}`, lease('agent-a'))).status, 404, 'PUT does not create');
  assert.equal((await send(server, tok, 'GET', `${LEASE_PATH}/${LEASE}`)).status, 404);

  await waitFor(() => seen.events.length === 3, 2000, 'lease events');
  assert.deepEqual(seen.events, [`add ${LEASE}`, `update ${LEASE}`, `delete ${LEASE}`], 'the no-op PUT sent nothing; another-lease is not seen');
  assert.deepEqual(seen.errors, []);
});

test('refused writes: status, reason and message as the apiserver sends them, and nothing stored', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const limit = 1024 * 1024;
  const binary = (bytes: number): string => randomBytes(bytes).toString('base64');
  const cm = (name: string, extra: object = {}): string => JSON.stringify({ metadata: { name }, ...extra });
  const cases: Array<{
    what: string;
    method?: string;
    path?: string;
    body: string;
    contentType?: string;
    status: number;
    reason?: string;
    message?: string | RegExp;
  }> = [
    {
      what: 'YAML',
      body: 'metadata: {name: x}',
      contentType: 'application/yaml',
      status: 415,
      reason: 'UnsupportedMediaType',
      message: 'the body of the request was in an unknown format - accepted media types include: application/json',
    },
    { what: 'text', body: cm('x'), contentType: 'text/plain', status: 415, reason: 'UnsupportedMediaType' },
    {
      what: 'bad JSON',
      body: '{"metadata":',
      status: 400,
      reason: 'BadRequest',
      message: /^ConfigMap in version "v1" cannot be handled as a ConfigMap: json parse error/,
    },
    {
      what: 'wrong kind',
      body: JSON.stringify({ kind: 'Secret', metadata: { name: 'x' } }),
      status: 400,
      message: 'the kind in the data (Secret) does not match the expected kind (ConfigMap)',
    },
    {
      what: 'resourceVersion on create',
      body: JSON.stringify({ metadata: { name: 'x', resourceVersion: '5' } }),
      status: 400,
      message: 'resourceVersion should not be set on objects to be created',
    },
    {
      what: 'other namespace',
      body: JSON.stringify({ metadata: { name: 'x', namespace: 'other' } }),
      status: 400,
      message: 'the namespace of the provided object does not match the namespace sent on the request',
    },
    {
      what: 'name not the URL',
      method: 'PUT',
      path: `${CM_PATH}/a`,
      body: cm('b'),
      status: 400,
      message: 'the name of the object (b) does not match the name on the URL (a)',
    },
    {
      what: 'no name',
      body: '{}',
      status: 422,
      reason: 'Invalid',
      message: 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
    },
    {
      what: 'bad name',
      body: cm('Bad_Name'),
      status: 422,
      reason: 'Invalid',
      message: /^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of/,
    },
    {
      what: 'bad key',
      body: cm('x', { data: { 'a b': '1' } }),
      status: 422,
      message: /^ConfigMap "x" is invalid: data\[a b\]: Invalid value: "a b": a valid config key/,
    },
    {
      what: 'not base64',
      body: cm('x', { binaryData: { k: 'not base64!' } }),
      status: 400,
      message: /^ConfigMap in version "v1" cannot be handled as a ConfigMap: binaryData\[k\]: illegal base64 data/,
    },
    {
      what: '1 MiB + 1',
      body: cm('big', { binaryData: { k: binary(limit) } }),
      status: 422,
      message: 'ConfigMap "big" is invalid: []: Too long: must have at most 1048576 bytes',
    },
    {
      what: 'over 3 MiB',
      body: cm('huge', { data: { k: 'x'.repeat(3 * 1024 * 1024) } }),
      status: 413,
      reason: 'RequestEntityTooLarge',
      message: 'Request entity too large: limit is 3145728',
    },
    {
      what: 'Date, not MicroTime',
      path: LEASE_PATH,
      body: JSON.stringify({ metadata: { name: 'l' }, spec: { renewTime: '2026-01-02T03:04:05.678Z' } }),
      status: 400,
      message:
        'Lease in version "v1" cannot be handled as a Lease: parsing time "2026-01-02T03:04:05.678Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".678Z" as ".000000"',
    },
    { what: 'PATCH', method: 'PATCH', path: `${CM_PATH}/x`, body: '{}', contentType: 'application/merge-patch+json', status: 405, reason: 'MethodNotAllowed' },
    {
      what: 'unknown resource',
      path: `/api/v1/namespaces/${NS}/secrets`,
      body: cm('x'),
      status: 404,
      reason: 'NotFound',
      message: 'the server could not find the requested resource',
    },
    {
      what: 'unsupported field selector',
      method: 'GET',
      path: `${LEASE_PATH}?fieldSelector=spec.holderIdentity%3Da`,
      body: '',
      status: 400,
      message: 'field label not supported: spec.holderIdentity',
    },
  ];
  for (const c of cases) {
    const r = await send(
      server,
      server.token,
      c.method ?? 'POST',
      c.path ?? CM_PATH,
      c.body === '' ? undefined : c.body,
      c.contentType ? { contentType: c.contentType } : {},
    );
    assert.equal(r.status, c.status, `${c.what}: ${JSON.stringify(r.body).slice(0, 300)}`);
    assert.equal(r.body.kind, 'Status', c.what);
    assert.equal(r.body.code, c.status, c.what);
    if (c.reason) assert.equal(r.body.reason, c.reason, c.what);
    if (typeof c.message === 'string') assert.equal(r.body.message, c.message, c.what);
    else if (c.message) assert.match(r.body.message ?? '', c.message, c.what);
  }
  assert.deepEqual(server.listObjects('configmaps'), [], 'nothing refused was stored');
  assert.deepEqual(server.listObjects('leases'), []);
  // Exactly at the limit (key length included) is accepted.
  const atLimit = await send(server, server.token, 'POST', CM_PATH, cm('max', { binaryData: { k: binary(limit - 1) } }));
  assert.equal(atLimit.status, 201);
});

test('permissions: least privilege per user, with the apiserver 403 naming verb, resource, API group and namespace', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const agent = await clientFor(env, AGENT);
  const rules: Permission[] = [
    { verb: 'list', resource: 'configmaps', namespace: NS },
    { verb: 'watch', resource: 'configmaps', namespace: NS },
    { verb: 'create', resource: 'leases', namespace: NS },
    ...(['get', 'list', 'watch', 'update'] as const).map((verb): Permission => ({ verb, resource: 'leases', namespace: NS, name: LEASE })),
  ];
  server.setPermissions(AGENT, rules);
  const deny = (subject: string, verb: string, resource: string, group: string, scope: string): string =>
    `${subject} is forbidden: User "${AGENT}" cannot ${verb} resource "${resource}" in API group "${group}" ${scope}`;

  const cmPut = await send(server, agent.token, 'PUT', `${CM_PATH}/x`, { metadata: { name: 'x' } });
  assert.deepEqual([cmPut.status, cmPut.body.reason], [403, 'Forbidden']);
  assert.equal(
    cmPut.body.message,
    `configmaps "x" is forbidden: User "system:serviceaccount:mentat:mentat" cannot update resource "configmaps" in API group "" in the namespace "mentat"`,
  );
  assert.deepEqual(cmPut.body.details, { name: 'x', kind: 'configmaps' });
  const otherLease = await send(server, agent.token, 'PUT', `${LEASE_PATH}/other`, lease('a', 'other'));
  assert.equal(otherLease.body.message, deny('leases.coordination.k8s.io "other"', 'update', 'leases', 'coordination.k8s.io', 'in the namespace "mentat"'));
  assert.equal((await send(server, agent.token, 'POST', LEASE_PATH, lease('a'))).status, 201, 'create is not restricted by name');
  assert.equal((await send(server, agent.token, 'PUT', `${LEASE_PATH}/${LEASE}`, lease('a'))).status, 200);
  const del = await send(server, agent.token, 'DELETE', `${LEASE_PATH}/${LEASE}`);
  assert.equal(del.body.message, deny(`leases.coordination.k8s.io "${LEASE}"`, 'delete', 'leases', 'coordination.k8s.io', 'in the namespace "mentat"'));
  const allLeases = await send(server, agent.token, 'GET', LEASE_PATH);
  assert.equal(allLeases.body.message, deny('leases.coordination.k8s.io', 'list', 'leases', 'coordination.k8s.io', 'in the namespace "mentat"'));
  const nodes = await send(server, agent.token, 'GET', '/api/v1/nodes');
  assert.equal(nodes.body.message, deny('nodes', 'list', 'nodes', '', 'at the cluster scope'));

  // The real clients: a list and watch pinned to the lease's name pass like a named request.
  const leaseLw = new ListWatch<V1Lease>(
    LEASE_PATH,
    new Watch(agent.kc),
    () => agent.coord.listNamespacedLease({ namespace: NS, fieldSelector: PINNED }),
    false,
    undefined,
    PINNED,
  );
  const leaseSeen = record(t, leaseLw);
  await leaseLw.start();
  const cmLw = new ListWatch<V1ConfigMap>(
    CM_PATH,
    new Watch(agent.kc),
    () => agent.core.listNamespacedConfigMap({ namespace: NS, labelSelector: LIST_SELECTOR }),
    false,
    LIST_SELECTOR,
  );
  const cmSeen = record(t, cmLw);
  await cmLw.start();
  await server.waitFor((s) => s.openWatches === 2, 2000, 'both watches open');
  assert.deepEqual(leaseSeen.events, [`add ${LEASE}`]);
  assert.deepEqual([...leaseSeen.errors, ...cmSeen.errors], []);
  const elsewhere = new ListWatch<V1ConfigMap>(
    '/api/v1/namespaces/kube-system/configmaps',
    new Watch(agent.kc),
    () => agent.core.listNamespacedConfigMap({ namespace: 'kube-system' }),
    false,
  );
  const elsewhereSeen = record(t, elsewhere);
  await elsewhere.start();
  assert.equal(elsewhereSeen.errors.length, 1);
  assert.ok(elsewhereSeen.errors[0] instanceof ApiException && elsewhereSeen.errors[0].code === 403);

  // Other users are unrestricted; lifting the restriction restores everything.
  assert.equal((await send(server, server.token, 'POST', CM_PATH, { metadata: { name: 'x' } })).status, 201);
  server.setPermissions(AGENT, undefined);
  assert.equal((await send(server, agent.token, 'PUT', `${CM_PATH}/x`, { metadata: { name: 'x' }, data: { a: '1' } })).status, 200);
});

test('hang: requests are accepted and never answered until cleared; client timeouts abort, the server forgets them, nothing is applied', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const agent = await clientFor(env, AGENT);
  const held = server.putObject('leases', NS, lease('agent-a'));
  server.hang({ kind: 'update', resource: 'leases' });
  server.resetLoad();

  const renew = (signal: AbortSignal): ReturnType<typeof send> => send(server, agent.token, 'PUT', `${LEASE_PATH}/${LEASE}`, lease('agent-b'), { signal });
  const timedOut = assert.rejects(renew(AbortSignal.timeout(300)), (err: unknown) => err instanceof Error && err.name === 'TimeoutError');
  await server.waitFor((s) => s.heldRequests === 1, 2000, 'the update held');
  // Everything else is still served meanwhile.
  assert.equal((await send(server, agent.token, 'GET', `${LEASE_PATH}/${LEASE}`)).status, 200);
  await timedOut;
  await server.waitFor((s) => s.heldRequests === 0, 2000, 'the aborted request forgotten');
  assert.equal(server.getObject('leases', NS, LEASE)?.metadata.resourceVersion, held.metadata.resourceVersion, 'never applied');
  assert.equal(server.requests.find((r) => r.kind === 'update')?.status, 0, 'no status was ever sent');
  assert.deepEqual(sumLoad(server.load(), { kind: 'update' }), { requests: 1, bytes: 0 }, 'not a byte was sent');

  // client-node's own Watch request timeout, against a watch that never gets its headers.
  server.hang({ kind: 'watch' });
  const watch = new Watch(agent.kc);
  // client-node 2.0.1 keeps its 30 s request timeout in a private field; shorten it rather than wait.
  assert.equal(Reflect.get(watch, 'requestTimeoutMs'), 30_000, 'client-node Watch no longer has requestTimeoutMs = 30000');
  Reflect.set(watch, 'requestTimeoutMs', 300);
  let done: unknown = 'pending';
  await watch.watch(
    CM_PATH,
    {},
    () => undefined,
    (err: unknown) => (done = err),
  );
  await waitFor(() => done !== 'pending', 3000, 'the watch to time out');
  assert.ok(done instanceof Error && done.name === 'TimeoutError', String(done));
  await server.waitFor((s) => s.heldRequests === 0, 2000, 'the timed-out watch forgotten');

  // Clearing serves whatever a client is still waiting for.
  const waiting = renew(AbortSignal.timeout(10_000));
  await server.waitFor((s) => s.heldRequests === 1, 2000, 'a second update held');
  assert.equal(server.clearHangs(), 1);
  const answered = await waiting;
  assert.equal(answered.status, 200);
  assert.equal(answered.body.spec?.holderIdentity, 'agent-b');
});

/** A GET on its own connection; `bytesRead` is everything the client's socket received. */
function rawGet(url: string, token: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; bytesRead: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { Authorization: `Bearer ${token}`, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), bytesRead: req.socket?.bytesRead ?? -1 }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A watch on its own connection, counting event lines and the bytes its socket received. */
interface RawWatch {
  readonly lines: string[];
  /** Complete event lines received so far. */
  count(): number;
  bytesRead(): number;
  close(): void;
}

function rawWatch(t: TestContext, url: string, token: string, keepLines = true): Promise<RawWatch> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { Authorization: `Bearer ${token}` }, agent: false }, (res) => {
      const lines: string[] = [];
      let count = 0;
      let partial = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        count += parts.length;
        if (keepLines) lines.push(...parts);
      });
      res.on('error', () => undefined);
      const w: RawWatch = { lines, count: () => count, bytesRead: () => req.socket?.bytesRead ?? -1, close: () => req.destroy() };
      t.after(() => w.close());
      resolve(w);
    });
    req.on('error', reject);
    req.end();
  });
}

test('load accounting: requests and bytes per user, resource and kind equal what each client read off its socket, open watches included', async (t) => {
  const { server } = await setup(t);
  for (let i = 0; i < 5; i++) server.upsertNode(makeRealisticNode(nodeName(i), `10.0.0.${i}`, i));
  server.putObject('configmaps', NS, { metadata: { name: 'mentat-nodes-0', labels: LIST_LABELS }, binaryData: { nodes: published(['a']) } });
  server.addToken('token-a', 'agent-a');
  server.addToken('token-b', 'agent-b');
  server.resetLoad();
  assert.deepEqual(server.load().total, { requests: 0, bytes: 0 });

  const list = await rawGet(`${server.url}/api/v1/nodes`, 'token-a');
  const get = await rawGet(`${server.url}${CM_PATH}/mentat-nodes-0`, 'token-a');
  const missing = await rawGet(`${server.url}${CM_PATH}/nope`, 'token-a');
  const anonymous = await rawGet(`${server.url}/api/v1/nodes`, 'no-such-token');
  assert.deepEqual([list.status, get.status, missing.status, anonymous.status], [200, 200, 404, 401]);
  assert.ok(list.body.length > 5 * 9000, 'kubelet-sized nodes');

  const watch = await rawWatch(t, `${server.url}${CM_PATH}?watch=true&labelSelector=${encodeURIComponent(LIST_SELECTOR)}`, 'token-b');
  await waitFor(() => watch.count() === 1, 2000, 'initial ADDED');
  for (let i = 1; i <= 3; i++)
    server.putObject('configmaps', NS, { metadata: { name: 'mentat-nodes-0', labels: LIST_LABELS }, binaryData: { nodes: published(['a', String(i)]) } });
  await waitFor(() => watch.count() === 4, 2000, 'three MODIFIED');

  // Once the client holds the last line it has read every byte the server wrote.
  const live = server.load();
  assert.deepEqual(sumLoad(live, { user: 'agent-a', resource: 'nodes', kind: 'list' }), { requests: 1, bytes: list.bytesRead });
  assert.deepEqual(sumLoad(live, { user: 'agent-a', resource: 'configmaps', kind: 'get' }), { requests: 2, bytes: get.bytesRead + missing.bytesRead });
  assert.deepEqual(live.byUser['agent-a'], { requests: 3, bytes: list.bytesRead + get.bytesRead + missing.bytesRead });
  assert.deepEqual(live.byUser['system:anonymous'], { requests: 1, bytes: anonymous.bytesRead });
  assert.deepEqual(
    sumLoad(live, { user: 'agent-b', kind: 'watch' }),
    { requests: 1, bytes: watch.bytesRead() },
    'an open watch counts what it has sent so far',
  );
  assert.deepEqual(live.byKind['watch'], { requests: 1, bytes: watch.bytesRead() });
  assert.equal(live.byResource['configmaps']?.bytes, get.bytesRead + missing.bytesRead + watch.bytesRead());
  assert.equal(live.total.bytes, list.bytesRead + get.bytesRead + missing.bytesRead + anonymous.bytesRead + watch.bytesRead());
  const body = watch.lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
  assert.ok(watch.bytesRead() > body && watch.bytesRead() < body + 600, `headers and chunk framing: ${watch.bytesRead() - body} bytes`);

  // After a reset an open watch counts only what it sends from then on.
  const before = watch.bytesRead();
  server.resetLoad();
  server.putObject('configmaps', NS, { metadata: { name: 'mentat-nodes-0', labels: LIST_LABELS }, binaryData: { nodes: published(['b']) } });
  await waitFor(() => watch.count() === 5, 2000, 'one more event');
  assert.deepEqual(server.load().rows, [{ user: 'agent-b', resource: 'configmaps', kind: 'watch', requests: 0, bytes: watch.bytesRead() - before }]);
  watch.close();
  await server.waitFor((s) => s.openWatches === 0, 2000, 'watch closed');
  assert.equal(server.load().total.bytes, watch.bytesRead() - before, 'a closed watch keeps its count');
});

test('compressResponses: a large list is gzipped for a client that accepts it, as the apiserver does, and counted compressed', async (t) => {
  const { server } = await setup(t, { compressResponses: true });
  for (let i = 0; i < 200; i++) server.upsertNode(makeRealisticNode(nodeName(i), `10.0.${i >> 8}.${i & 255}`, i));
  const plain = await rawGet(`${server.url}/api/v1/nodes`, server.token);
  server.resetLoad();
  // fetch asks for gzip and decodes it.
  const res = await fetch(`${server.url}/api/v1/nodes`, { headers: { Authorization: `Bearer ${server.token}` } });
  assert.equal(res.headers.get('content-encoding'), 'gzip');
  const text = await res.text();
  assert.equal(text, plain.body, 'same JSON once decoded');
  assert.equal((JSON.parse(text) as { items: unknown[] }).items.length, 200);
  const sent = server.load().total.bytes;
  assert.ok(sent < plain.bytesRead / 4, `gzip: ${sent} bytes sent for ${plain.bytesRead} uncompressed`);
  // A small response is not compressed.
  const small = await fetch(`${server.url}/api/v1/nodes/${nodeName(0)}`, { headers: { Authorization: `Bearer ${server.token}` } });
  assert.equal(small.headers.get('content-encoding'), null);
});

test('node heartbeats: each node once per period, spread evenly, each a MODIFIED event with a new lastHeartbeatTime; churn and stop', async (t) => {
  const { server, kc } = await setup(t);
  seed(server, 50);
  const clock = new ManualClock();
  const beatsAt = new Map<string, number[]>();
  const spy: Parameters<typeof startNodeHeartbeats>[0] = {
    nodeNames: () => server.nodeNames(),
    updateObject: (resource, namespace, name, fn) => {
      beatsAt.set(name, [...(beatsAt.get(name) ?? []), clock.now()]);
      return server.updateObject(resource, namespace, name, fn);
    },
  };
  const events: Array<{ type: string; name: string; heartbeat: string }> = [];
  // Watch hands over the JSON as it came: times are strings, not Dates.
  const ctl = await new Watch(kc).watch(
    '/api/v1/nodes',
    { resourceVersion: server.resourceVersion },
    (type: string, obj: StoredNode) => {
      events.push({ type, name: obj.metadata.name, heartbeat: String(obj.status?.conditions?.[0]?.['lastHeartbeatTime']) });
    },
    () => undefined,
  );
  t.after(() => ctl.abort());
  const rv0 = Number(server.resourceVersion);

  const hb = startNodeHeartbeats(spy, { periodMs: 1000, clock });
  clock.advance(999);
  assert.equal(hb.beats, 50, 'one period: every node once');
  assert.equal(Number(server.resourceVersion), rv0 + 50, 'each beat is a new resourceVersion');
  const first = [...beatsAt.values()].map((ts) => ts[0] ?? -1).sort((a, b) => a - b);
  assert.deepEqual(
    first,
    Array.from({ length: 50 }, (_, i) => i * 20),
    'spread evenly over the period',
  );
  clock.advance(1000);
  assert.equal(hb.beats, 100);
  for (const [name, ts] of beatsAt) assert.equal((ts[1] ?? 0) - (ts[0] ?? 0), 1000, `${name} once per period`);

  await waitFor(() => events.length === 100, 2000, '100 MODIFIED events on the watch');
  assert.ok(events.every((e) => e.type === 'MODIFIED'));
  const byNode = new Map<string, string[]>();
  for (const e of events) byNode.set(e.name, [...(byNode.get(e.name) ?? []), e.heartbeat]);
  for (const [name, [a = '', b = '']] of byNode) assert.ok(b > a, `${name}: heartbeat advances (${a} -> ${b})`);

  // A deleted node is dropped, a new one joins at the next period.
  server.deleteNode(nodeName(0));
  server.upsertNode(makeNode('newcomer', '10.9.0.1'));
  clock.advance(1000);
  assert.equal(hb.beats, 150);
  assert.equal(beatsAt.get('newcomer')?.length, 1);
  assert.equal(server.getNode(nodeName(0)), undefined, 'not recreated');

  hb.stop();
  hb.stop();
  clock.advance(5000);
  assert.equal(hb.beats, 150);
  assert.equal(clock.pendingTimers, 0);
});

test('node heartbeats drive 5000 kubelet-sized nodes to two watchers, each update costing well under a millisecond', async (t) => {
  const { server } = await setup(t, { maxHistory: 20_000 });
  server.upsertNodes(Array.from({ length: 5000 }, (_, i) => makeRealisticNode(nodeName(i), `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, i)));
  server.addToken('token-w', 'watcher');
  const from = server.resourceVersion;
  const watches = await Promise.all([0, 1].map(() => rawWatch(t, `${server.url}/api/v1/nodes?watch=true&resourceVersion=${from}`, 'token-w', false)));
  await server.waitFor((s) => s.openWatches === 2, 2000, 'watches open');
  // Both heads have arrived (rawWatch resolves on them) and nothing else was sent: count from here.
  server.resetLoad();
  const base = watches.reduce((n, w) => n + w.bytesRead(), 0);

  const clock = new ManualClock();
  const hb = startNodeHeartbeats(server, { periodMs: 60_000, clock });
  let busyMs = 0;
  for (let step = 0; step < 20; step++) {
    const started = performance.now();
    clock.advance(step === 19 ? 2999 : 3000);
    busyMs += performance.now() - started;
    // Let the sockets drain between bursts, as a real period would.
    await yieldToIo();
  }
  hb.stop();
  assert.equal(hb.beats, 5000);
  await waitFor(() => watches.every((w) => w.count() === 5000), 20_000, 'every update on both watches');
  const bytes = sumLoad(server.load(), { user: 'watcher', kind: 'watch' }).bytes;
  assert.equal(bytes, watches.reduce((n, w) => n + w.bytesRead(), 0) - base, 'accounted bytes are the bytes the watchers read');
  t.diagnostic(
    `5000 status updates in ${busyMs.toFixed(0)} ms of server time (${((busyMs / 5000) * 1000).toFixed(0)} µs each), ${(bytes / 2 / 5000 / 1024).toFixed(1)} KiB per event per watcher`,
  );
  assert.ok(busyMs / 5000 < 1, `${(busyMs / 5000).toFixed(3)} ms per update`);
});

test('nodes keep deletionTimestamp, spec.unschedulable and spec.taints; spec.unschedulable is a field selector', async (t) => {
  const { server, api } = await setup(t);
  seed(server, 3);
  const cordoned = makeNode('cordoned', '10.5.0.1');
  server.upsertNode({
    ...cordoned,
    metadata: { ...cordoned.metadata, deletionTimestamp: '2026-11-25T10:00:00Z', finalizers: ['example.com/drain'] },
    spec: { unschedulable: true, taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule', timeAdded: '2026-11-25T09:59:00Z' }] },
  });
  const stored = server.getNode('cordoned') as StoredNode;
  assert.equal(stored.metadata['deletionTimestamp'], '2026-11-25T10:00:00Z');
  const list = await api.listNode({ fieldSelector: 'spec.unschedulable=true' });
  assert.deepEqual(
    list.items.map((n) => n.metadata?.name),
    ['cordoned'],
  );
  const n = list.items[0];
  assert.equal(n?.metadata?.deletionTimestamp?.toISOString(), '2026-11-25T10:00:00.000Z');
  assert.deepEqual(n?.metadata?.finalizers, ['example.com/drain']);
  assert.equal(n?.spec?.unschedulable, true);
  assert.deepEqual(
    n?.spec?.taints?.map((x) => `${x.key}:${x.effect}`),
    ['node.kubernetes.io/unschedulable:NoSchedule'],
  );
  assert.equal((await api.listNode({ fieldSelector: 'spec.unschedulable!=true' })).items.length, 3);
});

test('raw Watch on leases: replay of only its resource from a shared resourceVersion, bookmarks of kind Lease, 410 after compaction, timeoutSeconds', async (t) => {
  const { server, kc } = await setup(t);
  const from = server.resourceVersion;
  server.putObject('leases', NS, lease('a'));
  server.upsertNode(makeNode('n1', '10.6.0.1'));
  server.putObject('configmaps', NS, { metadata: { name: 'c' } });
  server.putObject('leases', NS, lease('b'));
  server.putObject('leases', 'other', lease('z', LEASE, 'other'));

  const events: string[] = [];
  let doneErr: unknown = 'not done';
  const ctl = await new Watch(kc).watch(
    LEASE_PATH,
    { resourceVersion: from, allowWatchBookmarks: true, timeoutSeconds: 1 },
    (type: string, obj: V1Lease) => events.push(`${type} ${obj.kind ?? ''} ${obj.spec?.holderIdentity ?? ''} ${obj.metadata?.resourceVersion ?? ''}`),
    (err: unknown) => (doneErr = err),
  );
  t.after(() => ctl.abort());
  await waitFor(() => events.length === 2, 2000, 'replay');
  const rvOfLease = server.getObject('leases', NS, LEASE)?.metadata.resourceVersion;
  assert.deepEqual(events, [`ADDED Lease a ${Number(from) + 1}`, `MODIFIED Lease b ${rvOfLease}`], 'no node, configmap or other-namespace events');
  assert.equal(server.sendBookmark({ resource: 'nodes' }), 0);
  assert.equal(server.sendBookmark({ resource: 'leases' }), 1);
  await waitFor(() => events.length === 3, 2000, 'bookmark');
  assert.equal(events[2], `BOOKMARK Lease  ${server.resourceVersion}`);
  await waitFor(() => doneErr !== 'not done', 3000, 'server-side timeout');
  assert.equal(doneErr, null, 'timeoutSeconds ends the stream cleanly');

  server.compactHistory();
  const expired: Array<{ type: string; code?: number }> = [];
  const ctl2 = await new Watch(kc).watch(
    CM_PATH,
    { resourceVersion: from },
    (type: string, obj: { code?: number }) => expired.push({ type, ...(obj.code !== undefined ? { code: obj.code } : {}) }),
    () => undefined,
  );
  t.after(() => ctl2.abort());
  await waitFor(() => expired.length === 1, 2000, 'ERROR event');
  assert.deepEqual(expired, [{ type: 'ERROR', code: 410 }]);
});

test('failNext with a filter fails only the matching requests', async (t) => {
  const env = await setup(t);
  const { server, api } = env;
  const agent = await clientFor(env, AGENT);
  seed(server, 2);
  server.putObject('leases', NS, lease('a'));
  server.failNext({ status: 503, count: 2, only: { kind: 'update', resource: 'leases', user: AGENT } });
  assert.equal((await api.listNode()).items.length, 2, 'other resources are untouched');
  assert.equal((await send(server, server.token, 'PUT', `${LEASE_PATH}/${LEASE}`, lease('default-user'))).status, 200, 'other users are untouched');
  for (let i = 0; i < 2; i++) {
    const r = await send(server, agent.token, 'PUT', `${LEASE_PATH}/${LEASE}`, lease('agent'));
    assert.deepEqual([r.status, r.body.reason], [503, 'ServiceUnavailable']);
  }
  assert.equal((await send(server, agent.token, 'PUT', `${LEASE_PATH}/${LEASE}`, lease('agent'))).status, 200, 'then served again');
});

const POD_PATH = `/api/v1/namespaces/${NS}/pods`;

test("Pods: the DaemonSet's labels match the agent selector; a label-selected ListWatch in one namespace pages its list and follows pods scheduled, given IPs, terminating and gone", async (t) => {
  const env = await setup(t);
  const { server, api } = env;
  const labels = agentPodLabels();
  const agentPod = (i: number, ips: string[] = [`198.19.${i}.2`]) => ({ name: `mentat-${i}`, labels, nodeName: `node${i}`, podIPs: ips });
  for (let i = 0; i < 5; i++) server.upsertPod(NS, agentPod(i));
  server.upsertPod(NS, {
    name: 'mentat-controller-x',
    labels: { ...labels, 'app.kubernetes.io/component': 'controller' },
    nodeName: 'node0',
    podIPs: ['198.19.0.9'],
  });
  server.upsertPod('elsewhere', agentPod(7));

  // Paged, as the controller lists (limit and continue within the namespace, one snapshot).
  const p1 = await api.listNamespacedPod({ namespace: NS, labelSelector: AGENT_POD_SELECTOR, limit: 2 });
  assert.equal(p1.kind, 'PodList');
  assert.deepEqual(
    p1.items.map((p) => p.metadata?.name),
    ['mentat-0', 'mentat-1'],
  );
  assert.equal(p1.metadata?.remainingItemCount, undefined, 'no count of the rest under a label selector');
  server.upsertPod(NS, agentPod(5));
  const p2 = await api.listNamespacedPod({ namespace: NS, labelSelector: AGENT_POD_SELECTOR, limit: 10, _continue: p1.metadata?._continue ?? '' });
  assert.deepEqual(
    p2.items.map((p) => p.metadata?.name),
    ['mentat-2', 'mentat-3', 'mentat-4'],
    'the later pages come from the first page snapshot',
  );
  assert.equal(p2.metadata?.resourceVersion, p1.metadata?.resourceVersion);
  const first = p1.items[0];
  assert.deepEqual(
    { node: first?.spec?.nodeName, ip: first?.status?.podIP, ips: first?.status?.podIPs?.map((p) => p.ip), phase: first?.status?.phase },
    { node: 'node0', ip: '198.19.0.2', ips: ['198.19.0.2'], phase: 'Running' },
  );
  // The apiserver's pod field selectors; anything else is a 400.
  assert.deepEqual(
    (await api.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.nodeName=node3' })).items.map((p) => p.metadata?.name),
    ['mentat-3'],
  );
  assert.deepEqual(
    (await api.listPodForAllNamespaces({ fieldSelector: 'status.podIP=198.19.7.2' })).items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`),
    ['elsewhere/mentat-7'],
  );
  await assert.rejects(
    api.listNamespacedPod({ namespace: NS, fieldSelector: 'status.hostIP=1.2.3.4' }),
    (err: unknown) => err instanceof ApiException && err.code === 400 && String(err.body).includes('field label not supported: status.hostIP'),
  );

  const lw = new ListWatch<V1Pod>(
    POD_PATH,
    new Watch(env.kc),
    () => api.listNamespacedPod({ namespace: NS, labelSelector: AGENT_POD_SELECTOR }),
    false,
    AGENT_POD_SELECTOR,
  );
  const seen = record(t, lw);
  await lw.start();
  await server.waitFor((s) => s.openWatchesOf('pods') === 1, 2000, 'pod watch open');
  assert.deepEqual(
    seen.events,
    [0, 1, 2, 3, 4, 5].map((i) => `add mentat-${i}`),
  );
  const watchReq = server.requests.find((r) => r.kind === 'watch');
  assert.deepEqual(
    { resource: watchReq?.resource, namespace: watchReq?.namespace, selector: watchReq?.query['labelSelector'], rv: watchReq?.query['resourceVersion'] },
    { resource: 'pods', namespace: NS, selector: AGENT_POD_SELECTOR, rv: server.resourceVersion },
  );

  // A new pod scheduled without an IP, then given one; a pod terminating, then gone; a pod relabelled out of the selector.
  server.upsertPod(NS, { name: 'mentat-6', labels, nodeName: 'node6', phase: 'Pending' });
  server.upsertPod(NS, agentPod(6));
  assert.ok(server.terminatePod(NS, 'mentat-1'));
  assert.ok(server.terminatePod(NS, 'mentat-1'), 'terminating twice changes nothing');
  assert.ok(server.deleteObject('pods', NS, 'mentat-1'));
  server.upsertPod(NS, { ...agentPod(2), labels: { app: 'something-else' } });
  server.upsertPod('elsewhere', agentPod(8));
  await waitFor(() => seen.events.length === 11, 2000, 'five more events');
  assert.deepEqual(seen.events.slice(6), ['add mentat-6', 'update mentat-6', 'update mentat-1', 'delete mentat-1', 'delete mentat-2']);
  assert.deepEqual(
    lw.get('mentat-6', NS)?.status?.podIPs?.map((p) => p.ip),
    ['198.19.6.2'],
  );
  assert.equal(lw.latestResourceVersion(), String(Number(server.resourceVersion) - 1), 'the last event was in another namespace');
  assert.deepEqual(seen.errors, []);
});

test('Pods and RBAC rendered from deploy/: agents may not read pods anywhere; the controller lists and watches them in its own namespace only, as PodWatch does', async (t) => {
  const kubectl = need(t, 'kubectl', 'the machine image');
  if (!kubectl) return;
  const env = await setup(t);
  const { server } = env;
  const rbac = permissionsFromManifests(kustomize(kubectl, 'deploy'));
  const agentUser = serviceAccountUser(NS, 'mentat');
  const controllerUser = serviceAccountUser(NS, 'mentat-controller');
  for (const [user, permissions] of rbac) server.setPermissions(user, permissions);
  const agent = await clientFor(env, agentUser);
  const controller = await clientFor(env, controllerUser);
  const labels = agentPodLabels();
  server.upsertPod(NS, { name: 'mentat-a', labels, nodeName: 'node-a', podIPs: ['198.19.1.2'] });
  server.upsertPod(NS, { name: 'mentat-b', labels, nodeName: 'node-b', podIPs: ['198.19.2.2', 'fd00:6d65:6e75::2'] });
  server.upsertPod('kube-system', { name: 'coredns', labels: { 'k8s-app': 'kube-dns' }, nodeName: 'node-a', podIPs: ['198.19.1.3'] });

  const deny = (user: string, verb: string, subject: string, scope: string) =>
    `${subject} is forbidden: User "${user}" cannot ${verb} resource "pods" in API group "" ${scope}`;
  for (const [verb, path, subject] of [
    ['list', `${POD_PATH}?labelSelector=${encodeURIComponent(AGENT_POD_SELECTOR)}`, 'pods'],
    ['watch', `${POD_PATH}?watch=true`, 'pods'],
    ['get', `${POD_PATH}/mentat-a`, 'pods "mentat-a"'],
  ] as const) {
    const r = await send(server, agent.token, 'GET', path);
    assert.deepEqual([r.status, r.body.message], [403, deny(agentUser, verb, subject, `in the namespace "${NS}"`)], `agent ${verb}`);
  }
  const elsewhere = await send(server, controller.token, 'GET', '/api/v1/namespaces/kube-system/pods');
  assert.deepEqual([elsewhere.status, elsewhere.body.message], [403, deny(controllerUser, 'list', 'pods', 'in the namespace "kube-system"')]);
  const everywhere = await send(server, controller.token, 'GET', '/api/v1/pods');
  assert.deepEqual([everywhere.status, everywhere.body.message], [403, deny(controllerUser, 'list', 'pods', 'at the cluster scope')]);
  const write = await send(server, controller.token, 'PUT', `${POD_PATH}/mentat-a`, server.getObject('pods', NS, 'mentat-a'));
  assert.deepEqual([write.status, write.body.message], [403, deny(controllerUser, 'update', 'pods "mentat-a"', `in the namespace "${NS}"`)]);
  assert.equal((await send(server, controller.token, 'GET', `${POD_PATH}/mentat-a`)).status, 200);

  // The real PodWatch, as each role: the controller's sees every node's pod addresses; the agent's is refused and says what to grant.
  const client = await loadKubeClient();
  const watchAs = (kc: KubeConfig) => {
    const rec = recordingLog();
    const seen: Array<Map<string, string[]>> = [];
    const watch = new PodWatch({
      client,
      kubeConfig: kc,
      namespace: NS,
      onPods: (byNode) => seen.push(byNode),
      log: rec.log,
      warnings: new RateLimitedLog(rec.log, 60_000, () => Date.now()),
      delay: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))),
    });
    t.after(() => watch.stop());
    watch.start();
    return { rec, seen };
  };
  const ctl = watchAs(controller.kc);
  await waitFor(() => ctl.seen.length > 0 && server.openWatchesOf('pods') === 1, 5000, "the controller's pod watch");
  assert.deepEqual(Object.fromEntries(ctl.seen.at(-1)!), { 'node-a': ['198.19.1.2'], 'node-b': ['198.19.2.2', 'fd00:6d65:6e75::2'] });
  server.upsertPod(NS, { name: 'mentat-c', labels, nodeName: 'node-c', podIPs: ['198.19.3.2'] });
  server.terminatePod(NS, 'mentat-a');
  await waitFor(() => Object.keys(Object.fromEntries(ctl.seen.at(-1)!)).join() === 'node-b,node-c', 5000, 'a new pod in, a terminating one out');
  const agentWatch = watchAs(agent.kc);
  await waitFor(() => agentWatch.rec.lines.some((l) => l.level === 'warn'), 5000, "the agent's refusal");
  assert.match(agentWatch.rec.lines.find((l) => l.level === 'warn')!.message, /403 Forbidden\): grant mentat-controller get, list and watch on "pods"/);
  assert.deepEqual(agentWatch.seen, []);
  const podRequests = server.requests.filter((r) => r.resource === 'pods' && r.user === agentUser && r.kind !== 'other');
  assert.ok(podRequests.length > 0 && podRequests.every((r) => r.status === 403), 'every pod request of the agent was refused');
});

test('Pods over HTTP, as the pod strategy takes them: created Pending whatever status is sent; a PUT keeps the status and changes only container images; containers are required', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const sent = makePod({ name: 'p', nodeName: 'node-a', podIPs: ['198.19.1.2'] });
  const created = await send(server, server.token, 'POST', POD_PATH, sent);
  assert.equal(created.status, 201);
  assert.deepEqual((created.body as unknown as V1Pod).status, { phase: 'Pending' }, 'the status is the server own');
  const stored = server.getObject('pods', NS, 'p')!;

  const relabel = await send(server, server.token, 'PUT', `${POD_PATH}/p`, {
    ...stored,
    metadata: { ...stored.metadata, labels: { a: 'b' } },
    status: { phase: 'Running', podIP: '1.2.3.4' },
  });
  assert.equal(relabel.status, 200);
  assert.deepEqual((relabel.body as unknown as V1Pod).status, { phase: 'Pending' }, 'status changes through PUT on the pod are ignored');
  assert.deepEqual(relabel.body.metadata?.labels, { a: 'b' });

  const current = server.getObject('pods', NS, 'p')! as unknown as V1Pod;
  const image = await send(server, server.token, 'PUT', `${POD_PATH}/p`, {
    ...current,
    spec: { ...current.spec, containers: [{ name: 'mentat', image: 'mentat:v2' }] },
  });
  assert.equal(image.status, 200);
  const moved = await send(server, server.token, 'PUT', `${POD_PATH}/p`, { ...current, spec: { ...current.spec, nodeName: 'node-b' } });
  assert.deepEqual([moved.status, moved.body.reason], [422, 'Invalid']);
  assert.match(moved.body.message ?? '', /^Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers\[\*\]\.image`/);
  assert.equal((server.getObject('pods', NS, 'p') as unknown as V1Pod).spec?.nodeName, 'node-a');

  const empty = await send(server, server.token, 'POST', POD_PATH, { metadata: { name: 'q' }, spec: { containers: [{ name: 'c' }] } });
  assert.deepEqual([empty.status, empty.body.message], [422, 'Pod "q" is invalid: spec.containers[0].image: Required value']);
  const none = await send(server, server.token, 'POST', POD_PATH, { metadata: { name: 'q' }, spec: {} });
  assert.deepEqual([none.status, none.body.message], [422, 'Pod "q" is invalid: spec.containers: Required value']);
  const notList = await send(server, server.token, 'POST', POD_PATH, { metadata: { name: 'q' }, spec: { containers: {} } });
  assert.equal(notList.status, 400);
  assert.equal(server.getObject('pods', NS, 'q'), undefined, 'nothing stored');
});
