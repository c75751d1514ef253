/**
 * The fake's load accounting (load.ts): requests and bytes per user, resource and kind of request
 * equal what each client read off its own socket, anonymous requests and open watches included,
 * and a reset that an open watch counts from.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeRealisticNode, sumLoad, waitFor } from './index.js';
import { CM_PATH, LIST_LABELS, LIST_SELECTOR, NS, nodeName, published, rawGet, rawWatch, setup } from './test-helpers.js';

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
