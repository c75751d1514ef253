/**
 * The node-list controller against the in-repo API server, with the RBAC rendered from deploy/:
 * one replica elected, the only reader of Nodes and the only writer; changes debounced; what lies
 * in the API server checked and repaired (a forged index included); failover when the leader is cut
 * off; a stop that hands the lease over at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ELECTION_LEASE, INDEX_NAME, SHARD_COUNT, shardName } from '../../src/kube/node-list.js';
import { need } from '../deploy/render.js';
import { makeNode, sumLoad, waitFor } from '../fake-apiserver/index.js';
import { AGENT_USER, CONTROLLER_USER, NS, nodeListParts } from '../support/node-list-parts.js';

const holder = (server: { getObject(r: 'leases', ns: string, n: string): unknown }) =>
  (server.getObject('leases', NS, ELECTION_LEASE) as { spec?: { holderIdentity?: string } } | undefined)?.spec?.holderIdentity;

test('one replica leads and publishes; agents read the list and never Nodes; a burst of changes is one publication', { timeout: 30_000 }, async (t) => {
  const kubectl = need(t, 'kubectl', 'the machine image');
  if (!kubectl) return;
  const parts = await nodeListParts(t, kubectl);
  const names = parts.nodes(30);
  const [c1, c2] = [await parts.controller('ctl-a'), await parts.controller('ctl-b')];
  const agents = await Promise.all(['node0', 'node1', 'node2'].map((n) => parts.agent(n)));
  await waitFor(() => agents.every((a) => a.known().length === 30), 15_000, 'every agent has the 30 nodes');
  assert.equal([c1, c2].filter((c) => c.controller.isLeader).length, 1, 'one leader');
  assert.equal(holder(parts.server), [c1, c2].find((c) => c.controller.isLeader)!.name);
  for (let i = 0; i < SHARD_COUNT; i++) assert.ok(parts.server.getObject('configmaps', NS, shardName(i)), `shard ${i} written`);
  for (const a of agents) assert.equal(a.source.mode, 'published');
  const load = parts.server.load();
  assert.equal(sumLoad(load, { user: AGENT_USER, resource: 'nodes' }).requests, 0, 'agents never read Nodes');
  assert.equal(sumLoad(load, { user: AGENT_USER, resource: 'leases' }).requests, 0, 'agents never read the election lease');
  assert.ok(sumLoad(load, { user: CONTROLLER_USER, resource: 'nodes' }).requests >= 2, 'the leader lists and watches Nodes');

  parts.server.resetLoad();
  for (let i = 0; i < 20; i++) parts.server.upsertNode(makeNode(`new-${i}`, `198.18.1.${i}`));
  const startedAt = Date.now();
  await waitFor(() => agents.every((a) => a.known().length === 50), 15_000, 'the added nodes reach every agent');
  const after = parts.server.load();
  const writes = (name: string) =>
    parts.server.requests.filter((r) => r.user === CONTROLLER_USER && (r.kind === 'update' || r.kind === 'create') && r.name === name).length;
  const shardWrites = Array.from({ length: SHARD_COUNT }, (_, i) => writes(shardName(i)));
  assert.ok(
    shardWrites.every((n) => n <= 1),
    `each changed shard written once: ${shardWrites.join(',')}`,
  );
  assert.ok(sumLoad(after, { user: CONTROLLER_USER, resource: 'configmaps', kind: 'update' }).requests <= SHARD_COUNT + 3, 'shards, then the index');
  t.diagnostic(`20 nodes added at once reached 3 agents in ${Date.now() - startedAt} ms`);
  // The change rode on the index: no agent fetched a shard for it.
  const shardGets = parts.server.requests.filter(
    (r) => r.user === AGENT_USER && r.at >= startedAt && r.kind === 'get' && r.name?.startsWith(`${INDEX_NAME}-`),
  ).length;
  assert.equal(shardGets, 0, `agents applied the delta in the index instead of fetching shards: ${shardGets} shard GETs`);
  for (const a of agents) assert.ok(a.source.deltasApplied > 0, `${a.name} applied a delta`);
  parts.server.deleteNode(names[29]!);
  await waitFor(() => agents.every((a) => !a.known().includes(names[29]!)), 15_000, 'a deleted node leaves every list');
});

test('an agent token may write nothing: every write of the list, the lease or a Node gets 403', { timeout: 30_000 }, async (t) => {
  const kubectl = need(t, 'kubectl', 'the machine image');
  if (!kubectl) return;
  const parts = await nodeListParts(t, kubectl);
  parts.nodes(3);
  await parts.controller('ctl-a');
  const agent = await parts.agent('node0');
  await waitFor(() => agent.known().length === 3, 15_000, 'synced');
  const token = parts.agentToken;
  const send = async (method: string, path: string, body?: unknown) =>
    (
      await fetch(`${parts.server.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
    ).status;
  const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data: { x: 'y' } });
  const writes: Array<[string, string, string, unknown?]> = [
    ['create a shard', 'POST', `/api/v1/namespaces/${NS}/configmaps`, cm('mentat-nodes-99')],
    ['replace the index', 'PUT', `/api/v1/namespaces/${NS}/configmaps/${INDEX_NAME}`, cm(INDEX_NAME)],
    ['replace a shard', 'PUT', `/api/v1/namespaces/${NS}/configmaps/${shardName(3)}`, cm(shardName(3))],
    ['delete a shard', 'DELETE', `/api/v1/namespaces/${NS}/configmaps/${shardName(3)}`],
    ['take the lease', 'PUT', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${ELECTION_LEASE}`, { metadata: { name: ELECTION_LEASE } }],
    ['create a lease', 'POST', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`, { metadata: { name: 'x' } }],
    ['read the lease', 'GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${ELECTION_LEASE}`],
    ['change a Node', 'PUT', '/api/v1/nodes/node1', makeNode('node1', '198.18.0.99')],
  ];
  for (const [what, method, path, body] of writes) assert.equal(await send(method, path, body), 403, `an agent may not ${what}`);
  assert.equal(await send('GET', `/api/v1/namespaces/${NS}/configmaps/${shardName(3)}`), 200, 'but it reads the shards');
});

test(
  'what someone else wrote is repaired within one check: a shard deleted or overwritten, a forged index; a follower started after that syncs',
  { timeout: 30_000 },
  async (t) => {
    const kubectl = need(t, 'kubectl', 'the machine image');
    if (!kubectl) return;
    const parts = await nodeListParts(t, kubectl);
    parts.nodes(20);
    const ctl = await parts.controller('ctl-a', { verifyEveryMs: 1000 });
    const first = await parts.agent('node0');
    await waitFor(() => first.known().length === 20, 15_000, 'synced');
    const shard = parts.server.getObject('configmaps', NS, shardName(3))!;
    const indexText = () => (parts.server.getObject('configmaps', NS, INDEX_NAME) as unknown as { data: Record<string, string> }).data['index.json']!;
    const index = parts.server.getObject('configmaps', NS, INDEX_NAME)!;
    const original = indexText();
    const realHash = (JSON.parse(original) as { shards: string[] }).shards[3]!;
    parts.server.deleteObject('configmaps', NS, shardName(5));
    parts.server.putObject('configmaps', NS, { ...shard, binaryData: { 'nodes.json.gz': 'H4sIAAAAAAAAA6uuBQBDv6ajAgAAAA==' } });
    const forged = JSON.parse(original) as { shards: string[] };
    forged.shards[3] = 'AAAAAAAAAAAAAAAA';
    parts.server.putObject('configmaps', NS, { ...index, data: { 'index.json': JSON.stringify(forged) } });
    await waitFor(() => parts.server.getObject('configmaps', NS, shardName(5)) !== undefined, 10_000, 'the deleted shard is back');
    await waitFor(() => indexText().includes(realHash), 10_000, 'the index names the real shards again');
    await waitFor(() => ctl.lines.some((l) => /missing or changed by someone else/.test(l.message)), 5000, 'the repair logged');
    assert.equal(first.known().length, 20, 'the follower kept its nodes throughout');
    const late = await parts.agent('node1');
    await waitFor(() => late.known().length === 20, 10_000, 'a follower started after the repair syncs');
  },
);

test(
  'the leader cut off from the API server: the other replica takes over within the lease duration, the old one stops writing',
  { timeout: 45_000 },
  async (t) => {
    const kubectl = need(t, 'kubectl', 'the machine image');
    if (!kubectl) return;
    const parts = await nodeListParts(t, kubectl);
    parts.nodes(12);
    const LEASE_MS = 3000;
    // Two replicas of the controller's service account, told apart by a user each so that one can be cut off.
    const ctls = [await parts.controller('ctl-a', { leaseMs: LEASE_MS, user: 'ctl-a' }), await parts.controller('ctl-b', { leaseMs: LEASE_MS, user: 'ctl-b' })];
    const agent = await parts.agent('node0');
    await waitFor(() => agent.known().length === 12 && ctls.some((c) => c.controller.isLeader), 15_000, 'synced');
    const leader = ctls.find((c) => c.controller.isLeader)!;
    const other = ctls.find((c) => c !== leader)!;
    // A crash without release: the leader's requests hang from now on.
    parts.server.hang({ user: leader.name });
    const crashedAt = Date.now();
    await waitFor(() => other.controller.isLeader, LEASE_MS * 3, 'the other replica took over');
    const tookMs = Date.now() - crashedAt;
    t.diagnostic(`took over ${tookMs} ms after the leader stopped renewing (lease ${LEASE_MS} ms)`);
    assert.ok(tookMs < LEASE_MS * 2, `within the lease duration and a retry period: ${tookMs} ms`);
    parts.server.upsertNode(makeNode('late', '198.18.2.1'));
    await waitFor(() => agent.known().includes('late'), 15_000, 'the new leader publishes');
    await waitFor(() => !leader.controller.isLeader, LEASE_MS, 'the cut-off replica no longer takes itself for the leader');
    parts.server.clearHangs();
  },
);

test('a stopping leader finishes its write, gives the lease up, and the other replica takes over at once', { timeout: 30_000 }, async (t) => {
  const kubectl = need(t, 'kubectl', 'the machine image');
  if (!kubectl) return;
  const parts = await nodeListParts(t, kubectl);
  parts.nodes(5);
  const LEASE_MS = 6000;
  const ctls = [await parts.controller('ctl-a', { leaseMs: LEASE_MS }), await parts.controller('ctl-b', { leaseMs: LEASE_MS })];
  await waitFor(() => ctls.some((c) => c.controller.isLeader) && ctls.some((c) => c.controller.publishedNodes === 5), 15_000, 'published');
  const leader = ctls.find((c) => c.controller.isLeader)!;
  const other = ctls.find((c) => c !== leader)!;
  const stoppedAt = Date.now();
  await leader.controller.stop();
  assert.equal(holder(parts.server), '', 'released');
  await waitFor(() => other.controller.isLeader, LEASE_MS, 'taken over');
  const tookMs = Date.now() - stoppedAt;
  assert.ok(tookMs < LEASE_MS / 2, `taken over at its next retry, not after the lease duration: ${tookMs} ms`);
});
