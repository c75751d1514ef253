/** Our own requests to the API server (src/kube/api.ts): the paths, the status helpers, and ObjectClient and PagedLister against the in-repo API server. Failures: api-failures.test.ts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONFIG_MAPS, KubeApiError, LEASES, NODES, ObjectClient, PagedLister, PODS, statusCodeOf, statusMessage } from '../../src/kube/api.js';
import { loadKubeClient } from '../../src/kube/client.js';
import { FakeApiServer, makeNode, statusBody } from '../fake-apiserver/index.js';
import { configMap, kubeConfigFor, NS, rejection } from '../support/plain-api-server.js';

test('paths: the collections mentat uses, the namespace encoded as one segment', () => {
  assert.equal(NODES, '/api/v1/nodes');
  assert.equal(LEASES(NS), '/apis/coordination.k8s.io/v1/namespaces/mentat/leases');
  assert.equal(CONFIG_MAPS(NS), '/api/v1/namespaces/mentat/configmaps');
  assert.equal(PODS(NS), '/api/v1/namespaces/mentat/pods');
  assert.equal(PODS('a/../../nodes'), '/api/v1/namespaces/a%2F..%2F..%2Fnodes/pods');
  assert.equal(CONFIG_MAPS('x?y#z'), '/api/v1/namespaces/x%3Fy%23z/configmaps');
});

test('statusCodeOf: our code, client-node Watch statusCode, nothing else', () => {
  const cases: Array<[err: unknown, status: number | undefined]> = [
    [new KubeApiError(403, 'forbidden'), 403],
    [Object.assign(new Error('watch'), { statusCode: 410 }), 410],
    [{ statusCode: 500, code: 404 }, 500],
    [{ statusCode: '500', code: 404 }, 404],
    // A socket error's code is a string: not a status.
    [Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), undefined],
    [new Error('plain'), undefined],
    [{ code: '404' }, undefined],
    [undefined, undefined],
    [null, undefined],
    ['a string', undefined],
    [42, undefined],
  ];
  for (const [err, status] of cases) assert.equal(statusCodeOf(err), status, JSON.stringify(err));
});

test('statusMessage: a Status message (300 chars at most), else the start of the body on one line', () => {
  const cases: Array<[body: string, message: string]> = [
    [
      JSON.stringify(statusBody(403, 'Forbidden', 'nodes is forbidden: User "x" cannot list resource "nodes"')),
      'nodes is forbidden: User "x" cannot list resource "nodes"',
    ],
    [JSON.stringify({ message: 'm'.repeat(1000) }), 'm'.repeat(300)],
    [JSON.stringify({ message: '' }), ''],
    // Not a Status: the body itself, at most 120 chars, whitespace runs as one space.
    ['<html>\n  <body>502 Bad Gateway</body>\n</html>', '<html> <body>502 Bad Gateway</body> </html>'],
    ['x'.repeat(500), 'x'.repeat(120)],
    [JSON.stringify({ message: 42 }), '{"message":42}'],
    [JSON.stringify({ reason: 'NotFound' }), '{"reason":"NotFound"}'],
    ['null', 'null'],
    ['[]', '[]'],
    ['{"message":', '{"message":'],
    ['', '(empty body)'],
  ];
  for (const [body, message] of cases) assert.equal(statusMessage(body), message, body.slice(0, 40));
});

test('ObjectClient against the fake API server: create, get (quorum and from the cache), list, replace, conflict, missing', async (t) => {
  const server = await FakeApiServer.start();
  t.after(() => server.stop());
  const client = await loadKubeClient();
  const objects = new ObjectClient(client, kubeConfigFor(client, server.url, server.token), 5000);
  const collection = CONFIG_MAPS(NS);

  assert.equal(await objects.get(collection, 'list'), undefined, 'a missing object is undefined, not an error');
  const created = await objects.create(collection, configMap('list', { a: '1' }));
  assert.equal(created.metadata.name, 'list');
  assert.deepEqual(created['data'], { a: '1' });
  const version = created.metadata.resourceVersion;
  assert.match(version ?? '', /^\d+$/);

  const read = await objects.get(collection, 'list');
  assert.equal(read?.metadata.resourceVersion, version);
  const cached = await objects.get(collection, 'list', true);
  assert.deepEqual(cached?.['data'], { a: '1' });
  assert.deepEqual(server.queries().slice(-2), ['', '?resourceVersion=0'], 'a quorum read, then a read from the watch cache');

  await objects.create(collection, configMap('other', {}));
  const listed = await objects.list(collection, 'metadata.name=list');
  assert.deepEqual(
    listed.items.map((o) => o.metadata.name),
    ['list'],
  );
  assert.equal((await objects.list(collection)).items.length, 2);

  const replaced = await objects.replace(collection, configMap('list', { a: '2' }, version));
  assert.deepEqual(replaced['data'], { a: '2' });
  const stale = await rejection(objects.replace(collection, configMap('list', { a: '3' }, version)));
  assert.ok(stale instanceof KubeApiError);
  assert.equal(stale.code, 409);
  assert.equal(stale.name, 'KubeApiError');
  assert.equal(
    stale.message,
    'Operation cannot be fulfilled on configmaps "list": the object has been modified; please apply your changes to the latest version and try again',
  );
  const again = await rejection(objects.create(collection, configMap('other', {})));
  assert.deepEqual([statusCodeOf(again), again.message], [409, 'configmaps "other" already exists']);
  assert.deepEqual((await objects.get(collection, 'list'))?.['data'], { a: '2' }, 'the conflicting write changed nothing');
});

test('PagedLister against the fake API server: pages with continue tokens, a label selector', async (t) => {
  const server = await FakeApiServer.start();
  t.after(() => server.stop());
  for (let i = 0; i < 5; i++) server.upsertNode(makeNode(`n${i}`, `10.0.0.${i + 1}`));
  for (let i = 0; i < 3; i++) server.upsertPod(NS, { name: `agent-${i}`, labels: { app: 'agent' }, nodeName: `n${i}`, podIPs: [`10.244.0.${i}`] });
  server.upsertPod(NS, { name: 'other', labels: { app: 'other' }, nodeName: 'n0', podIPs: ['10.244.9.9'] });
  const client = await loadKubeClient();
  const kubeConfig = kubeConfigFor(client, server.url, server.token);

  const nodes = new PagedLister<{ metadata?: { name?: string } }>(client, kubeConfig, 5000, NODES);
  const names: string[] = [];
  let continueToken: string | undefined;
  let pages = 0;
  do {
    const page = await nodes.list({ limit: 2, continueToken });
    pages++;
    names.push(...page.items.map((n) => n.metadata?.name ?? ''));
    assert.match(page.metadata?.resourceVersion ?? '', /^\d+$/);
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken !== undefined && pages < 10);
  assert.equal(pages, 3);
  assert.deepEqual(names.sort(), ['n0', 'n1', 'n2', 'n3', 'n4']);

  const pods = new PagedLister<{ metadata?: { name?: string } }>(client, kubeConfig, 5000, PODS(NS), 'app=agent');
  const page = await pods.list({ limit: 100 });
  assert.deepEqual(page.items.map((p) => p.metadata?.name).sort(), ['agent-0', 'agent-1', 'agent-2']);
});
