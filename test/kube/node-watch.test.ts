import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeClient } from '../../src/kube/client.js';
import { explainApiError, NodeWatch } from '../../src/kube/node-watch.js';
import { NodeSource } from '../../src/kube/node-source.js';
import { NodeTable } from '../../src/mesh/node-table.js';
import { systemClock } from '../../src/types.js';
import { RateLimitedLog, type Log } from '../../src/log.js';
import type { NodeEntry, Target } from '../../src/types.js';
import { startNodeHeartbeats } from '../fake-apiserver/heartbeats.js';
import { FakeApiServer, makeNode, waitFor } from '../fake-apiserver/index.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mentat-discovery-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Recorded {
  level: string;
  message: string;
  fields: object;
}

async function setup(server: FakeApiServer, opts: { pageSize?: number } = {}) {
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(dir));
  const lines: Recorded[] = [];
  const record = (level: string) => (fields: object, message: string) => lines.push({ level, message, fields });
  const log: Log = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
  let latest: Target[] = [];
  const delays: number[] = [];
  // The direct watch as the agent runs it: discovery feeding the node table through the node source.
  const discovery = new NodeSource({
    client: await loadKubeClient(),
    kubeConfig: kc,
    table: new NodeTable('first', 'self', false),
    onNodes: (nodes) => {
      latest = nodes.flatMap((n) => n.targets);
    },
    log,
    warnings: new RateLimitedLog(log, 60_000, () => Date.now()),
    // Backoff is recorded, and waited only briefly so the test stays fast.
    delay: async (ms) => {
      delays.push(ms);
      await new Promise((r) => setTimeout(r, 20));
    },
    clock: systemClock,
    random: Math.random,
    ...(opts.pageSize ? { watch: { pageSize: opts.pageSize } } : {}),
    serviceAccount: 'system:serviceaccount:mentat:mentat',
  });
  const names = () => latest.map((t) => t.name).sort();
  return { discovery, lines, names, delays, targets: () => latest };
}

/** NodeWatch alone, quiet, reporting its entries to `onEntries`. */
async function bareDiscovery(server: FakeApiServer, onEntries: (entries: NodeEntry[]) => void): Promise<NodeWatch> {
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(dir));
  const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };
  return new NodeWatch({
    client: await loadKubeClient(),
    kubeConfig: kc,
    onEntries,
    log: quiet,
    warnings: new RateLimitedLog(quiet, 1000, () => 0),
    delay: async () => {},
  });
}

test('lists in pages, skips itself, then follows adds, address changes and deletes over the watch', async () => {
  const server = await FakeApiServer.start();
  const { discovery, names, targets } = await setup(server, { pageSize: 2 });
  try {
    for (const [name, ip] of [
      ['self', '198.18.0.1'],
      ['a', '198.18.0.2'],
      ['b', '198.18.0.3'],
      ['c', '198.18.0.4'],
      ['d', '198.18.0.5'],
    ] as const) {
      server.upsertNode(makeNode(name, ip));
    }
    discovery.start();
    await waitFor(() => names().length === 4, 5000, 'initial list');
    assert.deepEqual(names(), ['a', 'b', 'c', 'd']);
    assert.equal(discovery.synced, true);
    assert.ok(server.counts.list >= 3, `paged list: ${server.counts.list} requests of 2`);
    server.upsertNode(makeNode('e', '198.18.0.6'));
    await waitFor(() => names().includes('e'), 5000, 'added node');
    server.upsertNode(makeNode('a', '198.18.0.22'));
    await waitFor(() => targets().find((t) => t.name === 'a')?.address === '198.18.0.22', 5000, 'changed address');
    server.deleteNode('b');
    await waitFor(() => !names().includes('b'), 5000, 'deleted node');
    assert.deepEqual(names(), ['a', 'c', 'd', 'e']);
    assert.equal(server.counts.list, 3, 'never re-listed while the watch was healthy');
  } finally {
    await discovery.stop();
    await server.stop();
  }
});

test('a node without addresses is skipped with one warning; the rest are probed', async () => {
  const server = await FakeApiServer.start();
  const { discovery, names, lines } = await setup(server);
  try {
    server.upsertNode(makeNode('a', '198.18.0.2'));
    server.upsertNode({ metadata: { name: 'broken' }, status: { addresses: [] } });
    discovery.start();
    await waitFor(() => names().length === 1, 5000);
    server.upsertNode({ metadata: { name: 'broken', labels: { touched: 'yes' } }, status: { addresses: [] } });
    server.upsertNode(makeNode('z', '198.18.0.9'));
    await waitFor(() => names().includes('z'), 5000);
    const warnings = lines.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1, 'one warning for the broken node, not one per update');
    assert.deepEqual(warnings[0]!.fields, { node: 'broken', problem: 'node has no addresses' });
  } finally {
    await discovery.stop();
    await server.stop();
  }
});

test('403 says which permission is missing, backs off, and recovers when granted', async () => {
  const server = await FakeApiServer.start();
  const { discovery, names, lines, delays } = await setup(server);
  try {
    server.upsertNode(makeNode('a', '198.18.0.2'));
    server.setAuth(403);
    discovery.start();
    await waitFor(() => delays.length >= 3, 5000, 'retries');
    const errors = lines.filter((l) => l.level === 'error');
    assert.equal(errors.length, 1, 'the same failure is logged once, not at every retry');
    assert.match(errors[0]!.message, /403 Forbidden\): grant system:serviceaccount:mentat:mentat get, list and watch on "nodes"/);
    assert.deepEqual(delays.slice(0, 3), [1000, 2000, 4000], 'exponential backoff');
    assert.equal(discovery.synced, false);
    server.setAuth('ok');
    await waitFor(() => names().length === 1, 5000, 'recovered');
    assert.equal(discovery.synced, true);
  } finally {
    await discovery.stop();
    await server.stop();
  }
});

test('a cut watch, an expired resourceVersion and an API outage lose no node and duplicate none', async () => {
  const server = await FakeApiServer.start();
  const { discovery, names, lines } = await setup(server);
  try {
    for (let i = 0; i < 20; i++) server.upsertNode(makeNode(`n${i}`, `198.18.0.${10 + i}`));
    discovery.start();
    await waitFor(() => names().length === 20, 5000);
    server.cutWatches();
    server.upsertNode(makeNode('after-cut', '198.18.0.100'));
    await waitFor(() => names().includes('after-cut'), 5000, 'resumed after a cut');
    // Expire history while the watch is down: the informer must re-list.
    await server.setDown(true);
    server.upsertNode(makeNode('while-down', '198.18.0.101'));
    server.deleteNode('n0');
    server.compactHistory();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(names().length, 21, 'the last known nodes are kept during the outage');
    await waitFor(() => lines.some((l) => /cannot reach the API server/.test(l.message)), 5000, 'the outage reported');
    await server.setDown(false);
    await waitFor(() => names().includes('while-down') && !names().includes('n0'), 10_000, 'resynced');
    assert.equal(new Set(names()).size, names().length, 'no duplicates');
    assert.equal(names().length, 21);
    assert.ok(
      lines.some((l) => l.level === 'warn' && /cannot reach the API server/.test(l.message)),
      'an outage is a warning; only 401/403 are errors',
    );
  } finally {
    await discovery.stop();
    await server.stop();
  }
});

test('5000 nodes arrive in pages and become one target update', async () => {
  const server = await FakeApiServer.start();
  let updates = 0;
  const { discovery, names } = await setup(server);
  const counting = await bareDiscovery(server, () => updates++);
  try {
    server.upsertNodes(Array.from({ length: 5000 }, (_, i) => makeNode(`node-${i}`, `198.18.${16 + (i >> 8)}.${i & 255}`)));
    discovery.start();
    counting.start();
    await waitFor(() => names().length === 5000, 10_000);
    await waitFor(() => counting.synced && updates >= 1, 10_000);
    assert.equal(updates, 1, 'coalesced into one update');
  } finally {
    await discovery.stop();
    await counting.stop();
    await server.stop();
  }
});

test('kubelet status reports change nothing an agent uses and cost no update; a cordon, an address or a new node does', async () => {
  const server = await FakeApiServer.start();
  let updates = 0;
  let last: string[] = [];
  const discovery = await bareDiscovery(server, (entries) => {
    updates++;
    last = entries.map((e) => `${e.name}:${e.state}:${e.addresses.find((a) => a.type === 'InternalIP')?.address ?? ''}`).sort();
  });
  const heartbeats: { stop(): void; readonly beats: number }[] = [];
  try {
    server.upsertNodes(Array.from({ length: 50 }, (_, i) => makeNode(`node-${i}`, `198.18.0.${i + 1}`)));
    discovery.start();
    await waitFor(() => discovery.synced && updates >= 1, 10_000);
    const synced = updates;
    // Every node's status three times over, as kubelets report it.
    heartbeats.push(startNodeHeartbeats(server, { periodMs: 200 }));
    await waitFor(() => heartbeats[0]!.beats >= 150, 10_000, 'heartbeats');
    heartbeats[0]!.stop();
    server.upsertNode(makeNode('node-50', '198.18.0.51'));
    await waitFor(() => last.some((l) => l.startsWith('node-50:')), 5000, 'the new node');
    assert.equal(updates, synced + 1, `${heartbeats[0]!.beats} status reports and one new node: one update`);
    server.upsertNode({ ...makeNode('node-3', '198.18.0.4'), spec: { unschedulable: true } });
    await waitFor(() => last.includes('node-3:cordoned:198.18.0.4'), 5000, 'the cordon');
    server.upsertNode(makeNode('node-4', '198.18.0.99'));
    await waitFor(() => last.includes('node-4:active:198.18.0.99'), 5000, 'the new address');
    assert.equal(updates, synced + 3);
  } finally {
    for (const h of heartbeats) h.stop();
    await discovery.stop();
    await server.stop();
  }
});

test('API errors say what to fix', () => {
  assert.match(
    explainApiError({ code: 403 }, 'https://k', 'system:serviceaccount:mentat:mentat'),
    /403 Forbidden\): grant system:serviceaccount:mentat:mentat get, list and watch on "nodes"/,
  );
  assert.match(explainApiError({ statusCode: 401 }, 'https://k', 'sa'), /401 Unauthorized\): check the service account token/);
  assert.match(explainApiError({ statusCode: 500, message: 'Internal Server Error' }, 'https://k', 'sa'), /answered 500 \(Internal Server Error\); retrying/);
  assert.match(
    explainApiError(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }), 'https://k', 'sa'),
    /cannot reach the API server at https:\/\/k \(ECONNREFUSED\)/,
  );
});
