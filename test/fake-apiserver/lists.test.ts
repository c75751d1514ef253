/**
 * Lists as the fake pages them (lists.ts), read with the real client-node CoreV1Api: limit and
 * continue over one consistent snapshot while objects change between pages, remainingItemCount,
 * a token bound to its resource and namespace, 410 Expired after compaction, and lists across
 * namespaces sorted by namespace and name.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { makeNode } from './index.js';
import { LIST_LABELS, NS, nodeName, seed, setup } from './test-helpers.js';

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
