/**
 * The fake's objects (store.ts) as clients see them over HTTP: a Lease created, renewed, refused on
 * a stale resourceVersion, written back unchanged without a new resourceVersion or event, deleted
 * with and without preconditions, and nodes that keep what a drain leaves on them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeNode, waitFor, type FakeApiServer, type StoredNode } from './index.js';
import { AGENT, clientFor, LEASE, LEASE_PATH, lease, NS, pinnedLeaseWatch, record, seed, send, setup, type Wire } from './test-helpers.js';

/** POST creates the lease, with the six-digit MicroTime client-node writes; a second POST of its name is AlreadyExists; another name is created. */
async function createLease(server: FakeApiServer, tok: string): Promise<Wire> {
  const created = await send(server, tok, 'POST', LEASE_PATH, lease('agent-a'));
  assert.equal(created.status, 201);
  assert.deepEqual([created.body.kind, created.body.apiVersion, created.body.spec?.holderIdentity], ['Lease', 'coordination.k8s.io/v1', 'agent-a']);
  assert.match(created.body.spec?.renewTime ?? '', /\.\d{6}Z$/, 'client-node writes MicroTime with six digits');
  const again = await send(server, tok, 'POST', LEASE_PATH, lease('agent-b'));
  assert.equal(again.status, 409);
  assert.deepEqual([again.body.reason, again.body.message], ['AlreadyExists', `leases.coordination.k8s.io "${LEASE}" already exists`]);
  assert.deepEqual(again.body.details, { name: LEASE, group: 'coordination.k8s.io', kind: 'leases' });
  assert.equal((await send(server, tok, 'POST', LEASE_PATH, lease('x', 'another-lease'))).status, 201);
  return created.body;
}

/** DELETE with a precondition on the stale `staleRv` is refused; without one it deletes; then the lease is gone for DELETE, PUT and GET. */
async function deleteLease(server: FakeApiServer, tok: string, staleRv: string): Promise<void> {
  const precondition = await send(server, tok, 'DELETE', `${LEASE_PATH}/${LEASE}`, {
    apiVersion: 'v1',
    kind: 'DeleteOptions',
    preconditions: { resourceVersion: staleRv },
  });
  assert.equal(precondition.status, 409);
  assert.match(precondition.body.message ?? '', /Precondition failed: ResourceVersion in precondition: \d+, ResourceVersion in object meta: \d+$/);
  assert.equal((await send(server, tok, 'DELETE', `${LEASE_PATH}/${LEASE}`)).status, 200);
  const gone = await send(server, tok, 'DELETE', `${LEASE_PATH}/${LEASE}`);
  assert.deepEqual([gone.status, gone.body.reason, gone.body.message], [404, 'NotFound', `leases.coordination.k8s.io "${LEASE}" not found`]);
  assert.equal((await send(server, tok, 'PUT', `${LEASE_PATH}/${LEASE}`, lease('agent-a'))).status, 404, 'PUT does not create');
  assert.equal((await send(server, tok, 'GET', `${LEASE_PATH}/${LEASE}`)).status, 404);
}

// One lease's life told in order, each step on the state the last one left; the ListWatch's events,
// checked at the end, are the record of every step (the no-op's absence included).
test('Leases: create, renew, stale-resourceVersion conflict, no-op update, delete; a ListWatch pinned by fieldSelector sees only its lease', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const agent = await clientFor(env, AGENT);
  const lw = pinnedLeaseWatch(agent);
  const seen = record(t, lw);
  await lw.start();
  await server.waitFor((s) => s.openWatchesOf('leases') === 1, 2000, 'lease watch open');
  const tok = server.token;

  const created = await createLease(server, tok);

  const rv1 = created.metadata?.resourceVersion ?? '';
  const renew = { ...lease('agent-a'), metadata: { name: LEASE, namespace: NS, resourceVersion: rv1 } };
  const renewed = await send(server, tok, 'PUT', `${LEASE_PATH}/${LEASE}`, renew);
  assert.equal(renewed.status, 200);
  const rv2 = renewed.body.metadata?.resourceVersion ?? '';
  assert.ok(Number(rv2) > Number(rv1));
  assert.equal(renewed.body.metadata?.uid, created.metadata?.uid, 'uid survives an update');
  assert.equal(renewed.body.metadata?.creationTimestamp, created.metadata?.creationTimestamp);

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

  await deleteLease(server, tok, rv1);

  await waitFor(() => seen.events.length === 3, 2000, 'lease events');
  assert.deepEqual(seen.events, [`add ${LEASE}`, `update ${LEASE}`, `delete ${LEASE}`], 'the no-op PUT sent nothing; another-lease is not seen');
  assert.deepEqual(seen.errors, []);
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
