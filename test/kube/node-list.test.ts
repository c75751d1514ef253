/** The node list's wire form, read as untrusted input: tables of hostile shards and indexes, each refused with a reason, none costing more than its bounds. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  applyDelta,
  decodeDelta,
  decodeShard,
  encodeDelta,
  encodeShard,
  MAX_DELTA_CHARS,
  parseIndex,
  READ_BOUNDS,
  SHARD_COUNT,
  shardEntries,
  shardOf,
  type ConfigMap,
} from '../../src/kube/node-list.js';
import type { NodeEntry } from '../../src/types.js';

const hashOf = (json: string) => createHash('sha256').update(json).digest('base64url').slice(0, 16);
/** A shard as anyone could write it: any JSON, gzipped, with the hash that matches it. */
const forged = (json: string) => ({ data: gzipSync(json).toString('base64'), hash: hashOf(json) });

test('entries survive the shard encoding; the hash is the content, whatever the order', () => {
  const entries: NodeEntry[] = [
    { name: 'b', addresses: [{ type: 'InternalIP', address: '10.0.0.2' }], state: 'cordoned', zone: 'z1', createdAtS: 1_700_000_000 },
    {
      name: 'a',
      addresses: [
        { type: 'InternalIP', address: 'fd00::1' },
        { type: 'ExternalIP', address: '203.0.113.1' },
      ],
      state: 'active',
    },
    { name: 'c', addresses: [], state: 'leaving' },
  ];
  const { data, hash } = encodeShard(entries);
  assert.deepEqual(
    decodeShard(data, hash),
    [...entries].sort((x, y) => x.name.localeCompare(y.name)),
  );
  assert.equal(encodeShard([...entries].reverse()).hash, hash);
  assert.notEqual(encodeShard(entries.slice(1)).hash, hash);
  assert.equal(new Set(Array.from({ length: 400 }, (_, i) => shardOf(`n${i}`, SHARD_COUNT))).size, SHARD_COUNT, 'names spread over every shard');
});

test('malformed entries are skipped, the rest kept', () => {
  const { data, hash } = forged(
    JSON.stringify({
      v: 2,
      nodes: [
        ['ok', null, 'a', null, []],
        'junk',
        [42],
        ['x', null, 'a', null, 'not-a-list'],
        ['bad-state', null, 'zz', null, []],
        ['long-address', null, 'a', null, [['InternalIP', '1'.repeat(100)]]],
        ['x'.repeat(300), null, 'a', null, []],
        ['many', null, 'a', null, Array.from({ length: 17 }, () => ['InternalIP', '10.0.0.1'])],
      ],
    }),
  );
  assert.deepEqual(
    decodeShard(data, hash).map((e) => e.name),
    ['ok'],
  );
});

const hostileShards: Array<[string, () => { data: string; hash: string }, RegExp]> = [
  [
    'a gzip bomb (60 MB of JSON in 60 kB)',
    () => {
      const data = gzipSync(Buffer.alloc(60 * 1024 * 1024, 0x20)).toString('base64');
      return { data, hash: 'AAAAAAAAAAAAAAAA' };
    },
    /does not unpack within 2097152 bytes/,
  ],
  ['base64 past a ConfigMap', () => ({ data: 'A'.repeat(READ_BOUNDS.shardBase64Chars + 4), hash: 'x' }), /characters long/],
  ['content that does not match the index', () => ({ data: encodeShard([]).data, hash: 'AAAAAAAAAAAAAAAA' }), /does not match the hash the index names/],
  ['the wrong version', () => forged(JSON.stringify({ v: 1, nodes: [] })), /not a node list shard of version 2/],
  ['not JSON', () => forged('{"v":2,'), /JSON|Unexpected|Expected/],
  [
    'more entries than a shard holds',
    () => forged(JSON.stringify({ v: 2, nodes: Array.from({ length: READ_BOUNDS.shardEntries + 1 }, (_, i) => [`n${i}`, null, 'a', null, []]) })),
    /holds 13751 entries \(at most 13750\)/,
  ],
  ['not gzip', () => ({ data: Buffer.from('plain').toString('base64'), hash: 'x' }), /does not unpack/],
];
for (const [what, make, message] of hostileShards) {
  test(`a shard with ${what} is refused with a reason`, () => {
    const { data, hash } = make();
    const before = process.memoryUsage().heapUsed;
    assert.throws(() => decodeShard(data, hash), message);
    assert.ok(process.memoryUsage().heapUsed - before < 32 * 1024 * 1024, 'refused before it costs tens of MiB');
  });
}

const cm = (text: unknown): ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'mentat-nodes' },
  data: { 'index.json': typeof text === 'string' ? text : JSON.stringify(text) },
});
const goodShards = Array.from({ length: SHARD_COUNT }, () => 'abcdefghABCDEFGH');
const hostileIndexes: Array<[string, ConfigMap, RegExp]> = [
  ['no index', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mentat-nodes' } }, /has no index.json/],
  ['not JSON', cm('{'), /not JSON/],
  ['the wrong version', cm({ v: 1, shards: goodShards, nodes: 1, refreshS: 10 }), /not of version 2/],
  ['15 shards', cm({ v: 2, shards: goodShards.slice(1), nodes: 1, refreshS: 10 }), /does not name 16 shard hashes/],
  ['a hash that is not one', cm({ v: 2, shards: [...goodShards.slice(1), '../../etc'], nodes: 1, refreshS: 10 }), /does not name 16 shard hashes/],
  ['a million nodes', cm({ v: 2, shards: goodShards, nodes: 1_000_000, refreshS: 10 }), /names 1000000 nodes \(at most 110000\)/],
  ['64 kB of text', cm('x'.repeat(64 * 1024)), /characters long \(at most 16384\)/],
];
for (const [what, object, message] of hostileIndexes) {
  test(`an index with ${what} is refused with a reason`, () => {
    const parsed = parseIndex(object);
    assert.ok('problem' in parsed, 'refused');
    assert.match(parsed.problem, message);
  });
}

test('a refresh period outside 1-300 s is ignored and reported; a sane one is kept', () => {
  const huge = parseIndex(cm({ v: 2, shards: goodShards, nodes: 3, refreshS: 86_400, renewed: 't' }));
  assert.ok('index' in huge);
  assert.equal(huge.index.refreshS, 0, 'the agent uses its own');
  assert.equal(huge.refreshIgnored, 86_400);
  const sane = parseIndex(cm({ v: 2, shards: goodShards, nodes: 3, refreshS: 30, renewed: 't' }));
  assert.ok('index' in sane && sane.index.refreshS === 30 && sane.refreshIgnored === undefined);
});

test('a delta carries a change; applied to the shard it was made on it gives the hash the index names, and nothing else does', () => {
  const before: NodeEntry[] = Array.from({ length: 200 }, (_, i) => ({
    name: `n${i}`,
    state: 'active',
    addresses: [{ type: 'InternalIP', address: `10.0.${i >> 8}.${i & 255}` }],
  }));
  const after: NodeEntry[] = [
    ...before.filter((e) => e.name !== 'n7'),
    { name: 'n-new', state: 'active', addresses: [{ type: 'InternalIP', address: '10.9.9.9' }] },
  ];
  after[3] = { ...after[3]!, state: 'cordoned' };
  const shardsBefore = shardEntries(before);
  const shardsAfter = shardEntries(after).map((b) => encodeShard(b));
  const base = new Map<number, string>();
  for (const [i, s] of shardsAfter.entries()) if (s.hash !== encodeShard(shardsBefore[i]!).hash) base.set(i, encodeShard(shardsBefore[i]!).hash);
  assert.ok(base.size >= 2 && base.size <= 3, `one change per shard touched: ${base.size}`);
  const text = encodeDelta({ base, upsert: [after.find((e) => e.name === 'n-new')!, after[3]], remove: ['n7'] })!;
  assert.ok(text.length < 400, `a few changes are a few hundred bytes: ${text.length}`);
  const delta = decodeDelta(text)!;
  for (const i of base.keys()) assert.equal(applyDelta(shardsBefore[i]!, delta, i).hash, shardsAfter[i]!.hash, `shard ${i} rebuilt`);
  // Applied to another shard's content, or forged to say something else, it does not give the announced hash.
  const forged = decodeDelta(encodeDelta({ base, upsert: [{ ...after[3], addresses: [{ type: 'InternalIP', address: '10.6.6.6' }] }], remove: ['n7'] })!)!;
  const changedShard = shardOf(after[3].name, SHARD_COUNT);
  assert.notEqual(applyDelta(shardsBefore[changedShard]!, forged, changedShard).hash, shardsAfter[changedShard]!.hash, 'a forged change is refused');
  const other = [...base.keys()].find((i) => i !== changedShard)!;
  assert.notEqual(applyDelta(shardsBefore[other]!, delta, changedShard).hash, shardsAfter[changedShard]!.hash, "another shard's content does not pass");
  // Too many changes for the index: none (agents fetch the shards).
  const many = Array.from({ length: 2000 }, (_, i) => ({
    name: `big-${i}-${'x'.repeat(40)}`,
    state: 'active' as const,
    addresses: [{ type: 'InternalIP', address: `10.1.${i >> 8}.${i & 255}` }],
  }));
  assert.equal(encodeDelta({ base, upsert: many, remove: [] }), undefined);
});

const hostileDeltas: Array<[string, string]> = [
  ['not base64 gzip', 'not-a-delta'],
  ['a base of shard 99', gzipSync(JSON.stringify({ base: { 99: 'abcdefghABCDEFGH' }, upsert: [], remove: [] })).toString('base64')],
  ['a malformed entry', gzipSync(JSON.stringify({ base: {}, upsert: [['x', null, 'zz', null, []]], remove: [] })).toString('base64')],
  ['a bomb', gzipSync(Buffer.alloc(10 * 1024 * 1024, 0x20)).toString('base64')],
  ['past the size', 'A'.repeat(MAX_DELTA_CHARS + 1)],
];
for (const [what, text] of hostileDeltas) {
  test(`a delta with ${what} is not one: the agent fetches the shards`, () => {
    assert.equal(decodeDelta(text), undefined);
  });
}
