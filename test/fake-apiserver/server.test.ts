/**
 * The fake API server's switches (server.ts), met by the real client-node CoreV1Api: failures for
 * the next requests, 401 for every request or for a revoked token, a GET and its 404, and a server
 * that goes down (connection refused) and comes back on the same URL.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { nodeName, seed, setup, statusOf } from './test-helpers.js';

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
