/** Our own requests to the API server (src/kube/api.ts) over real HTTP to a server of the test's own: what is sent, and each way an answer can fail (status, bad JSON, hang, cut, refused). */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { test } from 'node:test';
import { CONFIG_MAPS, KubeApiError, LEASES, NODES, ObjectClient, PagedLister, PODS, statusCodeOf } from '../../src/kube/api.js';
import { loadKubeClient } from '../../src/kube/client.js';
import { statusBody } from '../fake-apiserver/index.js';
import { listenLocal } from '../support/listen.js';
import { configMap, eventually, kubeConfigFor, NS, plainServer, rejection, TOKEN, type Seen } from '../support/plain-api-server.js';

test('what is sent: names and queries encoded, JSON bodies, the token, Accept and User-Agent', async (t) => {
  const client = await loadKubeClient();
  const plain = await plainServer(t, client);
  plain.handler = (req, res) => res.end(req.method === 'GET' && req.url.includes('pods') ? '{"items":[]}' : req.body || '{"items":[]}');
  const objects = new ObjectClient(client, plain.kubeConfig, 2000);
  await objects.get(CONFIG_MAPS(NS), '../../secrets/x', true);
  await objects.list(LEASES(NS), 'metadata.name=a&b=c');
  await objects.create(CONFIG_MAPS(NS), configMap('new', { k: 'v' }));
  await objects.replace(CONFIG_MAPS(NS), configMap('a/b', {}, '7'));
  await new PagedLister(client, plain.kubeConfig, 2000, PODS(NS), 'app=agent,tier in (a,b)').list({ limit: 100, continueToken: 'tok&limit=1' });

  assert.deepEqual(
    plain.seen.map((s) => `${s.method} ${s.url}`),
    [
      'GET /api/v1/namespaces/mentat/configmaps/..%2F..%2Fsecrets%2Fx?resourceVersion=0',
      'GET /apis/coordination.k8s.io/v1/namespaces/mentat/leases?fieldSelector=metadata.name%3Da%26b%3Dc',
      'POST /api/v1/namespaces/mentat/configmaps',
      'PUT /api/v1/namespaces/mentat/configmaps/a%2Fb',
      'GET /api/v1/namespaces/mentat/pods?limit=100&labelSelector=app%3Dagent%2Ctier+in+%28a%2Cb%29&continue=tok%26limit%3D1',
    ],
  );
  for (const s of plain.seen) {
    assert.equal(s.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(s.headers.accept, 'application/json');
    assert.equal(s.headers['user-agent'], 'mentat');
    assert.equal(s.headers['content-type'], s.method === 'GET' ? undefined : 'application/json');
  }
  assert.deepEqual(JSON.parse(plain.seen[2]!.body), configMap('new', { k: 'v' }));
  assert.deepEqual(JSON.parse(plain.seen[3]!.body), configMap('a/b', {}, '7'));
  assert.equal(plain.seen[0]!.body, '');
});

test('error statuses: KubeApiError with the status and what the server said, from every call', async (t) => {
  const client = await loadKubeClient();
  const plain = await plainServer(t, client);
  const objects = new ObjectClient(client, plain.kubeConfig, 2000);
  const lister = new PagedLister(client, plain.kubeConfig, 2000, NODES);
  const forbidden = 'nodes is forbidden: User "system:serviceaccount:monitoring:mentat" cannot list resource "nodes" in API group "" at the cluster scope';
  const cases: Array<[status: number, body: string, message: string]> = [
    [401, JSON.stringify(statusBody(401, 'Unauthorized', 'Unauthorized')), 'Unauthorized'],
    [403, JSON.stringify(statusBody(403, 'Forbidden', forbidden)), forbidden],
    [429, JSON.stringify(statusBody(429, 'TooManyRequests', 'too many requests')), 'too many requests'],
    [500, JSON.stringify(statusBody(500, 'InternalError', 'x'.repeat(400))), 'x'.repeat(300)],
    [502, '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>', '<html> <head><title>502 Bad Gateway</title></head> </html>'],
    [503, '', '(empty body)'],
    [504, 'upstream request timeout', 'upstream request timeout'],
  ];
  const calls: Array<[what: string, call: () => Promise<unknown>]> = [
    ['get', () => objects.get(CONFIG_MAPS(NS), 'x')],
    ['list', () => objects.list(CONFIG_MAPS(NS))],
    ['create', () => objects.create(CONFIG_MAPS(NS), configMap('x', {}))],
    ['replace', () => objects.replace(CONFIG_MAPS(NS), configMap('x', {}))],
    ['paged list', () => lister.list({ limit: 1 })],
  ];
  for (const [status, body, message] of cases) {
    plain.handler = (_req, res) => {
      res.statusCode = status;
      res.end(body);
    };
    for (const [what, call] of calls) {
      const err = await rejection(call());
      assert.ok(err instanceof KubeApiError, `${what} ${status}: ${err.name}`);
      assert.deepEqual([err.code, err.message], [status, message], `${what} ${status}`);
    }
  }
  // 404: no such object for get; an error for the others.
  plain.handler = (_req, res) => {
    res.statusCode = 404;
    res.end(JSON.stringify(statusBody(404, 'NotFound', 'the server could not find the requested resource')));
  };
  assert.equal(await objects.get(CONFIG_MAPS(NS), 'x'), undefined);
  for (const [what, call] of calls.slice(1)) {
    const err = await rejection(call());
    assert.deepEqual([statusCodeOf(err), err.message], [404, 'the server could not find the requested resource'], what);
  }
});

test('200 with a body that is not what was asked for', async (t) => {
  const client = await loadKubeClient();
  const plain = await plainServer(t, client);
  const objects = new ObjectClient(client, plain.kubeConfig, 2000);
  const lister = new PagedLister(client, plain.kubeConfig, 2000, NODES);
  let body = '';
  plain.handler = (_req, res) => res.end(body);

  // Not JSON: JSON.parse's own error, as is.
  const notJson: Array<[body: string, message: string]> = [
    ['<html>\n<body>login</body></html>', `Unexpected token '<', "<html>\n<bo"... is not valid JSON`],
    ['', 'Unexpected end of JSON input'],
    ['{"items":[', 'Unexpected end of JSON input'],
    ['{"items":[]}garbage', 'Unexpected non-whitespace character after JSON at position 12 (line 1 column 13)'],
  ];
  for (const [text, message] of notJson) {
    body = text;
    for (const call of [() => lister.list({ limit: 1 }), () => objects.list(NODES), () => objects.get(NODES, 'n')]) {
      const err = await rejection(call());
      assert.deepEqual([err.name, err.message], ['SyntaxError', message], JSON.stringify(body));
    }
  }

  // JSON, but no items array: refused, naming the collection.
  for (const text of ['{}', 'null', '[]', '{"items":{}}', '{"items":"x"}', '{"kind":"Status","status":"Failure"}']) {
    body = text;
    for (const call of [() => lister.list({ limit: 1 }), () => objects.list(NODES)]) {
      const err = await rejection(call());
      assert.equal(err.message, 'the API server answered the list of /api/v1/nodes with no items array', body);
    }
  }

  // One object: whatever JSON came is returned unchecked, null included.
  body = 'null';
  assert.equal(await objects.get(NODES, 'n'), null);
  body = '42';
  assert.equal(await objects.create(CONFIG_MAPS(NS), configMap('x', {})), 42);
});

test('a request that hangs, or whose body stalls, fails with TimeoutError after timeoutMs, and its connection is closed', async (t) => {
  const client = await loadKubeClient();
  const plain = await plainServer(t, client);
  const timeoutMs = 200;
  const objects = new ObjectClient(client, plain.kubeConfig, timeoutMs);
  const lister = new PagedLister(client, plain.kubeConfig, timeoutMs, NODES);
  const hang = () => {};
  const stallBody = (_req: Seen, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"items":[');
  };
  for (const [what, handler, call] of [
    ['no answer', hang, () => objects.get(NODES, 'n')],
    ['no answer to a write', hang, () => objects.replace(CONFIG_MAPS(NS), configMap('x', {}))],
    ['a stalled body', stallBody, () => lister.list({ limit: 1 })],
    ['a stalled body of one object', stallBody, () => objects.get(NODES, 'n')],
  ] as const) {
    plain.handler = handler;
    const started = Date.now();
    const err = await rejection(call());
    const elapsedMs = Date.now() - started;
    // TimeoutError, not AbortError: the informer takes an AbortError for its own stop().
    assert.deepEqual([err.name, err.message], ['TimeoutError', 'The operation was aborted due to timeout'], what);
    assert.ok(elapsedMs >= timeoutMs - 5 && elapsedMs < timeoutMs + 1000, `${what}: ${elapsedMs} ms`);
    assert.ok(await eventually(() => plain.open() === 0, 1000), `${what}: the connection is closed (${plain.open()} open)`);
  }
  assert.equal(plain.connections(), 4);
});

test('a connection cut mid-body and a refused connection reject with the cause, and nothing else fails', async (t) => {
  const client = await loadKubeClient();
  const plain = await plainServer(t, client);
  plain.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"items":[');
    setTimeout(() => res.socket?.destroy(), 10);
  };
  const cut = await rejection(new ObjectClient(client, plain.kubeConfig, 2000).list(NODES));
  assert.deepEqual([cut.name, cut.message], ['TypeError', 'terminated']);
  assert.deepEqual([(cut.cause as { code?: unknown }).code, (cut.cause as Error).message], ['UND_ERR_SOCKET', 'other side closed']);

  // A port that was just free: nothing listens there.
  const closed = createServer();
  const port = await listenLocal(closed);
  await new Promise((r) => closed.close(r));
  const refused = await rejection(new ObjectClient(client, kubeConfigFor(client, `http://127.0.0.1:${port}`, TOKEN), 2000).get(NODES, 'n'));
  assert.deepEqual([refused.name, refused.message], ['TypeError', 'fetch failed']);
  assert.equal((refused.cause as { code?: unknown }).code, 'ECONNREFUSED');

  // A kubeconfig without a current cluster says which setting to fix.
  const empty = new client.KubeConfig();
  empty.loadFromOptions({ clusters: [], users: [], contexts: [], currentContext: 'none' });
  const unset = await rejection(new ObjectClient(client, empty, 2000).get(NODES, 'n'));
  assert.equal(unset.message, 'the Kubernetes configuration has no current cluster: set current-context');
});
