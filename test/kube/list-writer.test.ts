/**
 * The controller's writer of the published list (ListWriter) against the in-repo API server: only
 * the shards whose content changed are written, then the index with a delta; nothing when nothing
 * changed; nothing at all once the replica no longer leads; what someone else deleted or overwrote is
 * put back by verify; the refresh period grows with the list.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { NotLeaderError, refreshSecondsFor, type ListWriter } from '../../src/kube/list-writer.js';
import { INDEX_NAME, parseIndex, READ_BOUNDS, SHARD_COUNT, shardData, shardName, shardOf, type ConfigMap } from '../../src/kube/node-list.js';
import type { FakeApiServer } from '../fake-apiserver/index.js';
import { setup } from '../fake-apiserver/test-helpers.js';
import { listEntry as entry, listWriterOn, NS } from '../support/node-list-parts.js';

/** A writer over the API server's default (unrestricted) token; `leading` is what it is told before every write. */
async function writerOn(t: TestContext): Promise<{ server: FakeApiServer; writer: ListWriter; leading: { now: boolean } }> {
  const { server, kc } = await setup(t);
  const leading = { now: true };
  const { writer } = await listWriterOn(kc, () => leading.now);
  return { server, writer, leading };
}

/** The last path segment of each ConfigMap write since request `from`: the name replaced, or the collection created in. */
function writtenSince(server: FakeApiServer, from: number): string[] {
  return server.requests
    .slice(from)
    .filter((r) => r.resource === 'configmaps' && (r.kind === 'create' || r.kind === 'update'))
    .map((r) => r.path.split('/').at(-1) ?? r.path);
}

const configMap = (server: FakeApiServer, name: string) => server.getObject('configmaps', NS, name) as unknown as ConfigMap | undefined;

test('the first publication writes every shard, then the index; the same list again writes nothing; one change writes its shard and an index with a delta', async (t) => {
  const { server, writer } = await writerOn(t);
  const entries = Array.from({ length: 100 }, (_, i) => entry(i));
  assert.equal(await writer.publish(entries), true);
  for (let i = 0; i < SHARD_COUNT; i++) assert.ok(shardData(configMap(server, shardName(i))), `shard ${i} written`);
  const first = parseIndex(configMap(server, INDEX_NAME));
  assert.ok('index' in first, JSON.stringify(first));
  assert.equal(first.index.nodes, 100);
  assert.equal(first.index.delta, undefined, 'no delta without a list before it');

  let mark = server.requests.length;
  assert.equal(await writer.publish([...entries].reverse()), false, 'the same list in another order is no change');
  assert.deepEqual(writtenSince(server, mark), []);

  mark = server.requests.length;
  const changed = entries.map((e, i) => (i === 42 ? entry(42, '198.18.9.9') : e));
  assert.equal(await writer.publish(changed), true);
  assert.deepEqual(writtenSince(server, mark), [shardName(shardOf('node-42', SHARD_COUNT)), INDEX_NAME], 'the changed shard, then the index');
  const second = parseIndex(configMap(server, INDEX_NAME));
  assert.ok('index' in second && second.index.delta !== undefined, 'the index carries the change');
});

test('a replica that no longer leads writes nothing: not a shard, not the index', async (t) => {
  const { server, writer, leading } = await writerOn(t);
  await writer.publish([entry(1)]);
  const before = configMap(server, INDEX_NAME)?.data?.['index.json'];
  leading.now = false;
  const mark = server.requests.length;
  await assert.rejects(writer.publish([entry(1), entry(2)]), (err: Error) => err instanceof NotLeaderError && /no longer holds the lease/.test(err.message));
  await assert.rejects(writer.refresh(), NotLeaderError);
  assert.deepEqual(writtenSince(server, mark), []);
  assert.equal(configMap(server, INDEX_NAME)?.data?.['index.json'], before);
});

test('verify puts back a shard deleted and one overwritten by someone else, and renews the index', async (t) => {
  const { server, writer } = await writerOn(t);
  const entries = Array.from({ length: 64 }, (_, i) => entry(i));
  await writer.publish(entries);
  const original = (i: number) => shardData(configMap(server, shardName(i)));
  const [three, five] = [original(3), original(5)];
  assert.equal(await writer.verify(), 0, 'nothing to repair');
  server.deleteObject('configmaps', NS, shardName(5));
  server.putObject('configmaps', NS, { ...configMap(server, shardName(3))!, binaryData: { 'nodes.json.gz': 'H4sIAAAAAAAAA6uuBQBDv6ajAgAAAA==' } });
  assert.equal(await writer.verify(), 2);
  assert.equal(original(3), three);
  assert.equal(original(5), five);
  const renewed = parseIndex(configMap(server, INDEX_NAME));
  assert.ok('index' in renewed && renewed.index.nodes === 64);
});

test('the refresh period is a third of the lease, grows with the list, and stays within what readers accept', () => {
  assert.equal(refreshSecondsFor(10, 15_000), 5);
  assert.equal(refreshSecondsFor(10, 30_000), 10);
  assert.equal(refreshSecondsFor(99_990, 15_000), 30, 'a node in 3333 adds a second: 30 s near 100 000 nodes');
  assert.equal(refreshSecondsFor(10, 1000), READ_BOUNDS.minRefreshS);
  assert.equal(refreshSecondsFor(10_000_000, 15_000), READ_BOUNDS.maxRefreshS);
});
