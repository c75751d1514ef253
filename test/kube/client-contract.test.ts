/**
 * Pins down the behaviours of @kubernetes/client-node 2.0.1 that mentat's node and pod watches rely
 * on, against the in-repo fake API server over real HTTP: an informer's add/update/delete, its
 * re-list after a cut watch and 410, that it stops on errors and must be restarted, the shapes of
 * its errors (ApiException with a body for a list, a bare statusCode for a watch, undici's
 * TypeError for a cut), BOOKMARK handling without asking for them, silent reconnects on a clean
 * close or a non-410 ERROR event, AbortError on stop(), a watch opened after a stop() that came
 * during the list, and Watch's private request timeout.
 * A failure here means client-node changed under the fence (src/kube/client.ts).
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { ApiException, ListWatch, makeInformer, type Informer, type ObjectCache, type V1Node, Watch } from '@kubernetes/client-node';
import { FakeApiServer, makeNode, waitFor } from '../fake-apiserver/index.js';
import { AGENT, clientFor, CM_PATH, nodeName, seed, setup, statusOf, type Env } from '../fake-apiserver/test-helpers.js';

/** What makeInformer returns for nodes: the informer and its cache. */
type NodeInformer = Informer<V1Node> & ObjectCache<V1Node>;

/** A running informer and what its callbacks saw. */
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

test('Watch: a watch that never gets its response head ends with a TimeoutError after the request timeout, a private field', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const agent = await clientFor(env, AGENT);
  // The server accepts the watch and never answers, not even with headers.
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
});

test('informer stopped while its list is in flight: once the list answers it opens a watch anyway (src/kube/informer.ts informerWatch aborts it)', async (t) => {
  const env = await setup(t);
  const { server } = env;
  seed(server, 2);
  const informer = makeInformer<V1Node>(env.kc, '/api/v1/nodes', () => env.api.listNode());
  informer.on('error', () => undefined);
  server.hang({ kind: 'list', resource: 'nodes' });
  void informer.start();
  await waitFor(() => server.requests.some((r) => r.kind === 'list'), 5000, 'the list sent');
  await informer.stop();
  server.clearHangs();
  await server.waitFor((s) => s.openWatches === 1, 5000, 'a watch opened after stop()');
  // The fence's reason: this watch stays open until the server ends it.
  server.closeWatches();
});
