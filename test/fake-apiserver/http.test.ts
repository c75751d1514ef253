/**
 * The fake's HTTP handler (http.ts): failures injected for the requests a filter selects only,
 * hung requests that are never answered until cleared and forgotten when their client gives up,
 * and large responses gzipped for a client that accepts it, as the apiserver does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeRealisticNode, sumLoad } from './index.js';
import { AGENT, clientFor, LEASE, LEASE_PATH, lease, NS, nodeName, rawGet, seed, send, setup } from './test-helpers.js';

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

  // Clearing serves whatever a client is still waiting for.
  const waiting = renew(AbortSignal.timeout(10_000));
  await server.waitFor((s) => s.heldRequests === 1, 2000, 'a second update held');
  assert.equal(server.clearHangs(), 1);
  const answered = await waiting;
  assert.equal(answered.status, 200);
  assert.equal(answered.body.spec?.holderIdentity, 'agent-b');
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
