/**
 * Watches as the fake serves them (watch.ts), read with client-node's Watch and ListWatch: history
 * replay from a resourceVersion shared by every resource, bookmarks when asked for (of the watched
 * kind), a clean end at timeoutSeconds, 410 after compaction, and the per-watcher translation of a
 * label selector in one namespace (leaving the selector is a DELETED; other namespaces send nothing).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { type V1Lease, Watch } from '@kubernetes/client-node';
import { makeNode, waitFor, type FakeApiServer } from './index.js';
import {
  AGENT,
  CM_PATH,
  clientFor,
  LEASE,
  LEASE_PATH,
  lease,
  LIST_LABELS,
  LIST_SELECTOR,
  nodeListWatch,
  NS,
  nodeName,
  published,
  record,
  seed,
  send,
  setup,
  type Wire,
} from './test-helpers.js';

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

/** The publisher, with the default token, creates mentat-nodes-1 over HTTP: 201 with the metadata the server fills in. */
async function createShard(server: FakeApiServer): Promise<Wire> {
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
  return created.body;
}

// One publisher's writes in order, and the events the agent's ListWatch got for each, checked
// together at the end, as an agent sees a list being republished.
test('ConfigMaps: a ListWatch with a label selector in one namespace follows a publisher that creates, updates and deletes over HTTP', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const agent = await clientFor(env, AGENT);
  server.putObject('configmaps', NS, { metadata: { name: 'mentat-nodes-0', labels: LIST_LABELS }, binaryData: { nodes: published(['a']) } });
  server.putObject('configmaps', NS, { metadata: { name: 'unrelated' }, data: { a: 'b' } });
  server.putObject('configmaps', 'elsewhere', { metadata: { name: 'mentat-nodes-0', labels: LIST_LABELS }, data: {} });

  const lw = nodeListWatch(agent);
  const seen = record(t, lw);
  await lw.start();
  await server.waitFor((s) => s.openWatchesOf('configmaps') === 1, 2000, 'configmap watch open');
  assert.deepEqual(seen.events, ['add mentat-nodes-0']);
  const watchReq = server.requests.find((r) => r.kind === 'watch');
  assert.deepEqual(
    { resource: watchReq?.resource, namespace: watchReq?.namespace, user: watchReq?.user, selector: watchReq?.query['labelSelector'] },
    { resource: 'configmaps', namespace: NS, user: AGENT, selector: LIST_SELECTOR },
  );

  const created = await createShard(server);
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
    details: { name: 'mentat-nodes-1', kind: 'configmaps', uid: created.metadata?.uid },
  });
  await waitFor(() => seen.events.length === 5, 2000, 'two deletes');
  assert.deepEqual(seen.events, ['add mentat-nodes-0', 'add mentat-nodes-1', 'update mentat-nodes-0', 'delete mentat-nodes-0', 'delete mentat-nodes-1']);
  assert.equal(lw.latestResourceVersion(), server.resourceVersion);
  assert.deepEqual(seen.errors, []);

  // One resourceVersion counter for all resources, as etcd has.
  assert.equal((await env.api.listNode()).metadata?.resourceVersion, server.resourceVersion);
});
