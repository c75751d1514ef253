/**
 * The published node list against the in-repo API server (Leases and ConfigMaps with real
 * resourceVersion and watch semantics), with several agents' node sources in one process, each
 * with a user of its own: election, what only the publisher reads, debounce, takeover, repair of
 * shards deleted or overwritten, a partitioned publisher, and the fallback to watching Nodes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeClient } from '../../src/kube/client.js';
import { decodeShard, encodeShard, LEASE_NAME, SHARD_COUNT, shardName, shardOf } from '../../src/kube/node-list.js';
import { NodeSource } from '../../src/kube/node-source.js';
import { NodeTable } from '../../src/mesh/node-table.js';
import { RateLimitedLog, type Log } from '../../src/log.js';
import { systemClock, type MeshNode, type NodeEntry } from '../../src/types.js';
import { FakeApiServer, makeNode, sumLoad, waitFor } from '../support/fake-apiserver.js';

const NS = 'mentat';
const LEASE_MS = 3000;
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mentat-node-list-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Agent {
  readonly name: string;
  readonly source: NodeSource;
  nodes: MeshNode[];
  readonly lines: Array<{ level: string; message: string }>;
}

async function agents(server: FakeApiServer, count: number, opts: { verifyEveryMs?: number } = {}): Promise<Agent[]> {
  const client = await loadKubeClient();
  const list: Agent[] = [];
  for (let i = 0; i < count; i++) {
    const name = `node${i}`;
    const kc = new KubeConfig();
    kc.loadFromFile(await server.writeKubeconfig(dir, { user: `agent-${name}` }));
    const lines: Agent['lines'] = [];
    const record = (level: string) => (_f: object, message: string) => lines.push({ level, message });
    const log: Log = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
    const agent: Agent = {
      name,
      lines,
      nodes: [],
      source: new NodeSource({
        client,
        kubeConfig: kc,
        table: new NodeTable('first', name, false),
        onNodes: (nodes) => (agent.nodes = nodes),
        log,
        warnings: new RateLimitedLog(log, 60_000, () => Date.now()),
        delay: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))),
        clock: systemClock,
        wallNow: Date.now,
        random: Math.random,
        published: { namespace: NS, identity: `mentat-${name}`, nodeName: name, leaseDurationMs: LEASE_MS },
        ...(opts.verifyEveryMs ? { verifyEveryMs: opts.verifyEveryMs } : {}),
      }),
    };
    list.push(agent);
  }
  return list;
}

const holder = (server: FakeApiServer) =>
  (server.getObject('leases', NS, LEASE_NAME) as { spec?: { holderIdentity?: string } } | undefined)?.spec?.holderIdentity;
const known = (a: Agent) => a.nodes.map((n) => n.name).sort();

function cluster(server: FakeApiServer, n: number): string[] {
  const names = Array.from({ length: n }, (_, i) => `node${i}`);
  for (const [i, name] of names.entries()) server.upsertNode(makeNode(name, `198.18.0.${10 + i}`, { 'topology.kubernetes.io/zone': `z${i % 2}` }));
  return names;
}

test('node entries survive the shard encoding; a malformed entry is skipped; shards are stable', () => {
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
    decodeShard(data),
    [...entries].sort((x, y) => x.name.localeCompare(y.name)),
  );
  assert.equal(encodeShard([...entries].reverse()).hash, hash, 'the same content, the same hash, whatever the order');
  assert.notEqual(encodeShard(entries.slice(1)).hash, hash);
  const { gzipSync } = require_zlib();
  const bad = gzipSync(JSON.stringify({ v: 1, nodes: [['ok', null, 'a', null, []], 'junk', [42], ['x', null, 'a', null, 'not-a-list']] }));
  assert.deepEqual(
    decodeShard(bad).map((e) => e.name),
    ['ok'],
  );
  assert.throws(() => decodeShard(gzipSync(JSON.stringify({ v: 2, nodes: [] }))), /not a node list shard of version 1/);
  assert.equal(shardOf('node-1', SHARD_COUNT), shardOf('node-1', SHARD_COUNT));
  assert.equal(new Set(Array.from({ length: 400 }, (_, i) => shardOf(`n${i}`, SHARD_COUNT))).size, SHARD_COUNT, 'names spread over every shard');
});

function require_zlib(): typeof import('node:zlib') {
  return zlib;
}
import * as zlib from 'node:zlib';

test(
  'one agent is elected and publishes; only it reads Nodes; every agent gets the list; a change reaches all of them, debounced',
  { timeout: 30_000 },
  async () => {
    const server = await FakeApiServer.start();
    const names = cluster(server, 30);
    const all = await agents(server, 4);
    try {
      for (const a of all) a.source.start();
      await waitFor(() => all.every((a) => known(a).length === 30), 15_000, 'every agent has the 30 nodes');
      const leader = holder(server);
      assert.ok(leader?.startsWith('mentat-node'), `a holder: ${leader}`);
      assert.equal(all.filter((a) => a.source.mode === 'leader').length, 1, 'one publisher');
      assert.deepEqual(new Set(all.map((a) => a.source.mode)), new Set(['leader', 'published']));
      for (let i = 0; i < SHARD_COUNT; i++) assert.ok(server.getObject('configmaps', NS, shardName(i)), `shard ${i} written`);
      const load = server.load();
      for (const a of all) {
        const nodes = sumLoad(load, { user: `agent-${a.name}`, resource: 'nodes' });
        if (a.source.mode === 'leader') assert.ok(nodes.requests >= 2, 'the publisher lists and watches Nodes');
        else assert.equal(nodes.requests, 0, `${a.name} never reads Nodes`);
      }
      // A burst of changes: 20 nodes added within a second become one announcement.
      server.resetLoad();
      for (let i = 0; i < 20; i++) server.upsertNode(makeNode(`new-${i}`, `198.18.1.${i}`));
      const startedAt = Date.now();
      await waitFor(() => all.every((a) => known(a).length === 50), 15_000, 'the added nodes reach every agent');
      const reachedMs = Date.now() - startedAt;
      const after = server.load();
      const leaseUpdates = sumLoad(after, { resource: 'leases', kind: 'update' }).requests;
      const shardWrites =
        sumLoad(after, { resource: 'configmaps', kind: 'update' }).requests + sumLoad(after, { resource: 'configmaps', kind: 'create' }).requests;
      assert.ok(shardWrites <= SHARD_COUNT, `each changed shard written once: ${shardWrites}`);
      assert.ok(leaseUpdates <= 3, `one announcement (plus renewals): ${leaseUpdates} lease updates`);
      assert.ok(reachedMs < 10_000, `reached every agent in ${reachedMs} ms`);
      // A removed node is removed everywhere.
      server.deleteNode(names[29]!);
      await waitFor(() => all.every((a) => !known(a).includes(names[29]!)), 15_000, 'a deleted node leaves every list');
    } finally {
      await Promise.all(all.map((a) => a.source.stop()));
      await server.stop();
    }
  },
);

test(
  'followers read changed shards from the watch cache (resourceVersion=0), spread in time; a cache behind the announcement costs one consistent read',
  { timeout: 30_000 },
  async () => {
    const server = await FakeApiServer.start();
    cluster(server, 20);
    const all = await agents(server, 4);
    try {
      for (const a of all) a.source.start();
      await waitFor(() => all.every((a) => known(a).length === 20), 15_000, 'synced');
      const followers = all.filter((a) => a.source.mode === 'published');
      assert.equal(followers.length, 3);
      const shardGets = (user: string) =>
        server.requests.filter((r) => r.user === user && r.kind === 'get' && r.resource === 'configmaps' && r.name?.startsWith('mentat-nodes-'));
      const cached = (user: string) => shardGets(user).filter((r) => r.query['resourceVersion'] === '0').length;
      const consistent = (user: string) => shardGets(user).filter((r) => r.query['resourceVersion'] === undefined).length;
      for (const f of followers) assert.equal(consistent(`agent-${f.name}`), 0, `${f.name}: a current cache is never bypassed`);

      // The watch cache one write behind: the GET from the cache brings the old shard, so a consistent read follows.
      server.lagCacheReads();
      const before = new Map(followers.map((f) => [f.name, { cached: cached(`agent-${f.name}`), consistent: consistent(`agent-${f.name}`) }]));
      const startedAt = Date.now();
      server.upsertNode(makeNode('late', '198.18.2.1'));
      const reachedAt = new Map<string, number>();
      await waitFor(
        () => {
          for (const f of followers) if (!reachedAt.has(f.name) && known(f).includes('late')) reachedAt.set(f.name, Date.now() - startedAt);
          return reachedAt.size === followers.length;
        },
        20_000,
        'the new node reaches every follower through the lagging cache',
      );
      for (const f of followers) {
        const b = before.get(f.name)!;
        assert.equal(cached(`agent-${f.name}`) - b.cached, 1, `${f.name}: one GET from the cache for the one changed shard`);
        assert.equal(consistent(`agent-${f.name}`) - b.consistent, 1, `${f.name}: one consistent GET, since the cache was behind`);
      }
      // The first GET of each follower: at a random moment within a sixth of the lease duration after the announcement.
      const firstGets = followers.map((f) => shardGets(`agent-${f.name}`).at(-2)!.at);
      const spreadMs = Math.max(...firstGets) - Math.min(...firstGets);
      assert.ok(spreadMs <= LEASE_MS / 6 + 1100, `within the spread (${LEASE_MS / 6} ms) and a tick: ${spreadMs} ms`);
      server.lagCacheReads(false);
    } finally {
      await Promise.all(all.map((a) => a.source.stop()));
      await server.stop();
    }
  },
);

test(
  'the publisher is cut off from the API server: another takes over within the lease duration, no agent loses its nodes, the old one steps down',
  { timeout: 45_000 },
  async () => {
    const server = await FakeApiServer.start();
    cluster(server, 12);
    const all = await agents(server, 3);
    try {
      for (const a of all) a.source.start();
      await waitFor(() => all.every((a) => known(a).length === 12), 15_000, 'synced');
      const first = all.find((a) => a.source.mode === 'leader')!;
      // A crash: its requests hang from now on (it can neither renew nor release).
      server.hang({ user: `agent-${first.name}` });
      const crashedAt = Date.now();
      const rest = all.filter((a) => a !== first);
      await waitFor(() => rest.some((a) => a.source.mode === 'leader'), LEASE_MS * 3, 'another agent took over');
      const tookMs = Date.now() - crashedAt;
      assert.ok(tookMs < LEASE_MS + 5 * 1000, `taken over ${tookMs} ms after the crash (lease ${LEASE_MS} ms)`);
      for (const a of rest) assert.equal(known(a).length, 12, `${a.name} kept its nodes`);
      server.upsertNode(makeNode('late', '198.18.2.1'));
      await waitFor(() => rest.every((a) => known(a).includes('late')), 15_000, 'the new publisher publishes');
      // The old one, cut off from the API server, gives up once its requests time out: no stale publisher.
      await waitFor(() => first.source.mode !== 'leader', 20_000, 'the partitioned publisher steps down');
      server.clearHangs();
    } finally {
      await Promise.all(all.map((a) => a.source.stop()));
      await server.stop();
    }
  },
);

test('a shard deleted by hand or overwritten by someone else is rewritten', { timeout: 30_000 }, async () => {
  const server = await FakeApiServer.start();
  cluster(server, 20);
  const all = await agents(server, 2, { verifyEveryMs: 1000 });
  try {
    for (const a of all) a.source.start();
    await waitFor(() => all.every((a) => known(a).length === 20), 15_000, 'synced');
    const shard = server.getObject('configmaps', NS, shardName(3))!;
    server.deleteObject('configmaps', NS, shardName(5));
    server.putObject('configmaps', NS, {
      ...shard,
      metadata: { ...shard.metadata, annotations: { 'mentat.dev/content-hash': 'someone-else' } },
      binaryData: { 'nodes.json.gz': 'AAAA' },
    });
    await waitFor(() => server.getObject('configmaps', NS, shardName(5)) !== undefined, 10_000, 'the deleted shard is back');
    await waitFor(
      () =>
        (server.getObject('configmaps', NS, shardName(3)) as { metadata: { annotations?: Record<string, string> } }).metadata.annotations?.[
          'mentat.dev/content-hash'
        ] !== 'someone-else',
      10_000,
      'the overwritten shard is repaired',
    );
    const leader = all.find((a) => a.source.mode === 'leader')!;
    // The shards are back before the check that wrote them returns and says so.
    await waitFor(() => leader.lines.some((l) => /shards were missing or changed by someone else/.test(l.message)), 5000, 'the repair logged');
    for (const a of all) assert.equal(known(a).length, 20);
  } finally {
    await Promise.all(all.map((a) => a.source.stop()));
    await server.stop();
  }
});

test('without leases (RBAC refuses them), agents fall back to watching Nodes, and say so', { timeout: 30_000 }, async () => {
  const server = await FakeApiServer.start();
  cluster(server, 8);
  const all = await agents(server, 2);
  for (const a of all) server.setPermissions(`agent-${a.name}`, [{ verb: '*', resource: 'nodes' }]);
  try {
    for (const a of all) a.source.start();
    await waitFor(() => all.every((a) => known(a).length === 8 && a.source.mode === 'fallback'), LEASE_MS * 4, 'fallen back');
    for (const a of all)
      assert.ok(
        a.lines.some((l) => /watching Nodes directly/.test(l.message)),
        a.name,
      );
    // Leases allowed again: one publishes, the other leaves its fallback.
    for (const a of all) server.setPermissions(`agent-${a.name}`, undefined);
    await waitFor(
      () => all.some((a) => a.source.mode === 'leader') && all.some((a) => a.source.mode === 'published'),
      LEASE_MS * 6,
      'back to the published list',
    );
  } finally {
    await Promise.all(all.map((a) => a.source.stop()));
    await server.stop();
  }
});
