/**
 * An agent's reader of the published list (ListReader) against the in-repo API server, fed by the
 * real writer: it hands on the whole list, takes a change from the index's delta without fetching a
 * shard, and treats what it reads as untrusted: a forged shard or an invalid index costs one
 * warning and the last good list stays.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { ListReader } from '../../src/kube/list-reader.js';
import type { ListWriter } from '../../src/kube/list-writer.js';
import { encodeShard, INDEX_NAME, shardName, shardOf, SHARD_COUNT, type ConfigMap } from '../../src/kube/node-list.js';
import { RateLimitedLog } from '../../src/log.js';
import { systemClock, type NodeEntry } from '../../src/types.js';
import { waitFor, type FakeApiServer, type ObjectInput } from '../fake-apiserver/index.js';
import { setup } from '../fake-apiserver/test-helpers.js';
import { listEntry as entry, listWriterOn, NS, recordingLog, type Recorded } from '../support/node-list-parts.js';

interface Setup {
  server: FakeApiServer;
  writer: ListWriter;
  reader: ListReader;
  rec: Recorded;
  /** Every list the reader handed on, names sorted. */
  lists: string[][];
}

/** A writer and a reader on one API server (its default, unrestricted token); the reader started. */
async function readerAndWriter(t: TestContext): Promise<Setup> {
  const { server, kc: kubeConfig } = await setup(t);
  const { client, objects, writer } = await listWriterOn(kubeConfig, () => true);
  const rec = recordingLog();
  const lists: string[][] = [];
  const reader = new ListReader({
    client,
    kubeConfig,
    objects,
    namespace: NS,
    defaultRefreshS: 5,
    clock: systemClock,
    // Fetches at once (no spread) and retries after half the backoff: the test waits for outcomes.
    random: () => 0,
    delay: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))),
    log: rec.log,
    warnings: new RateLimitedLog(rec.log, 60_000, Date.now),
    onList: (entries) => lists.push(entries.map((e) => e.name).sort()),
  });
  t.after(() => reader.stop());
  reader.start();
  return { server, writer, reader, rec, lists };
}

const names = (entries: readonly NodeEntry[]) => entries.map((e) => e.name).sort();
const warnings = (s: Setup, re: RegExp) => s.rec.lines.filter((l) => l.level === 'warn' && re.test(l.message));

test('the whole list as written; a change reaches the reader through the index delta, without a shard GET', async (t) => {
  const s = await readerAndWriter(t);
  const entries = Array.from({ length: 100 }, (_, i) => entry(i));
  await s.writer.publish(entries);
  await waitFor(() => s.lists.length === 1, 10_000, 'the first list');
  assert.deepEqual(s.lists[0], names(entries));
  assert.equal(s.reader.shardsFetched, SHARD_COUNT);
  assert.ok(s.reader.current, 'the list it holds is the one the live index names');
  assert.equal(s.reader.staleForMs(), 0);

  const changed = [...entries.slice(1), entry(1000, '198.18.3.3')];
  await s.writer.publish(changed);
  await waitFor(() => s.lists.length === 2, 10_000, 'the changed list');
  assert.deepEqual(s.lists[1], names(changed));
  assert.equal(s.reader.shardsFetched, SHARD_COUNT, 'no shard fetched for the change');
  assert.ok(s.reader.deltasApplied >= 1, `applied from the delta: ${s.reader.deltasApplied}`);
  assert.deepEqual(warnings(s, /./), []);
});

test('a forged shard: one warning, the last good list kept, retried; the list the writer puts back is read', async (t) => {
  const s = await readerAndWriter(t);
  const entries = Array.from({ length: 40 }, (_, i) => entry(i));
  await s.writer.publish(entries);
  await waitFor(() => s.lists.length === 1, 10_000, 'the first list');

  // Someone with ConfigMap write swaps a shard for one listing a node of their own, and names its hash in the index.
  const i = shardOf('node-7', SHARD_COUNT);
  const forged = encodeShard([entry(7, '203.0.113.66')]);
  const shard = s.server.getObject('configmaps', NS, shardName(i)) as unknown as ConfigMap;
  const index = s.server.getObject('configmaps', NS, INDEX_NAME) as unknown as ConfigMap;
  const text = JSON.parse(index.data!['index.json']!) as { shards: string[] };
  text.shards[i] = 'AAAAAAAAAAAAAAAA'; // a hash that the shard's content does not have
  s.server.putObject('configmaps', NS, { ...shard, binaryData: { 'nodes.json.gz': forged.data } } as ObjectInput);
  s.server.putObject('configmaps', NS, { ...index, data: { 'index.json': JSON.stringify(text) } } as ObjectInput);
  await waitFor(() => warnings(s, /could not read the node list; keeping the last good list/).length >= 1, 10_000, 'the warning');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(s.lists.length, 1, 'nothing handed on from the forged shard');
  assert.equal(warnings(s, /could not read the node list/).length, 1, 'one warning, however many retries');
  assert.ok(!s.reader.current);

  // The writer's check finds both and rewrites them: the reader is current again with the real list.
  assert.equal(await s.writer.verify(), 2);
  await waitFor(() => s.reader.current, 10_000, 'current again');
  assert.deepEqual(s.lists.at(-1), names(entries));
});

test('an index that is not valid is ignored with one warning; the list stays', async (t) => {
  const s = await readerAndWriter(t);
  await s.writer.publish([entry(1), entry(2)]);
  await waitFor(() => s.lists.length === 1, 10_000, 'the first list');
  const index = s.server.getObject('configmaps', NS, INDEX_NAME) as unknown as ConfigMap;
  for (const body of ['{"v":1}', 'not json', JSON.stringify({ v: 2, shards: ['x'], nodes: 1e9, refreshS: 5, renewed: 'now' })]) {
    s.server.putObject('configmaps', NS, { ...index, data: { 'index.json': body } } as ObjectInput);
    await new Promise((r) => setTimeout(r, 300));
  }
  await waitFor(() => warnings(s, /ignoring a node-list index that is not valid/).length >= 1, 5000, 'the warning');
  assert.equal(warnings(s, /./).length, 1, `one warning for three bad indexes: ${JSON.stringify(s.rec.lines)}`);
  assert.equal(s.lists.length, 1);
  assert.deepEqual(s.lists[0], ['node-1', 'node-2']);
});
