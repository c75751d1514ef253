/**
 * Where an agent's node list comes from (NodeSource), against the in-repo API server with deploy/'s
 * RBAC: with no live writer it falls back to watching Nodes itself, says so once, and goes back to
 * the published list (and stops watching Nodes) as soon as a controller writes it, keeping its nodes
 * through both changes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { STALE_REFRESHES } from '../../src/kube/list-reader.js';
import { need } from '../deploy/render.js';
import { makeNode, sumLoad, waitFor } from '../fake-apiserver/index.js';
import { AGENT_USER, nodeListParts, type TestAgent } from '../support/node-list-parts.js';

const NODES = 10;
const REFRESH_S = 1;

/** The fewest nodes `agent` knew at any 20 ms from now until `stop` is called, once it first knew them all. */
function watchFewest(agent: TestAgent): { stop: () => number } {
  let fewest = Number.POSITIVE_INFINITY;
  const timer = setInterval(() => (fewest = Math.min(fewest, agent.known().length)), 20);
  return {
    stop: () => {
      clearInterval(timer);
      return fewest;
    },
  };
}

test(
  'no live writer: the agent watches Nodes itself, then follows the published list again once a controller writes it, keeping its nodes',
  { timeout: 45_000 },
  async (t) => {
    const kubectl = need(t, 'kubectl', 'the machine image');
    if (!kubectl) return;
    const parts = await nodeListParts(t, kubectl);
    parts.nodes(NODES);
    const agent = await parts.agent('node0', { refreshS: REFRESH_S });
    assert.equal(agent.source.mode, 'published', 'an agent starts on the published list');

    // No index at all: stale after STALE_REFRESHES refresh periods, then within one more (the spread).
    const startedAt = Date.now();
    await waitFor(() => agent.source.mode === 'fallback' && agent.known().length === NODES, 15_000, 'the fallback has every node');
    const fellBackMs = Date.now() - startedAt;
    assert.ok(fellBackMs >= STALE_REFRESHES * REFRESH_S * 1000 - 100, `not before the list is stale: ${fellBackMs} ms`);
    const warned = agent.lines.filter((l) => l.level === 'warn' && /no live writer of the node list/.test(l.message));
    assert.equal(warned.length, 1, 'said once, naming what is missing');
    assert.match(warned[0]!.message, /mentat-controller Deployment/);
    const nodeRequests = (kind: string) => parts.server.requests.filter((r) => r.user === AGENT_USER && r.resource === 'nodes' && r.kind === kind).length;
    await waitFor(() => nodeRequests('watch') >= 1, 5000, 'the agent watches Nodes');
    assert.ok(nodeRequests('list') >= 1, 'after listing them');

    const fewest = watchFewest(agent);
    const controller = await parts.controller('ctl-a');
    await waitFor(() => agent.source.mode === 'published', 15_000, 'back on the published list');
    assert.ok(controller.controller.isLeader);
    assert.equal(agent.lines.filter((l) => l.message === 'the node list is published again: no longer watching Nodes directly').length, 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(fewest.stop(), NODES, 'no node was forgotten while the source changed');

    // The direct watch is gone: from now on no Node request arrives from the agent, and a node added reaches it through the published list.
    const returnedAt = Date.now();
    parts.server.upsertNode(makeNode('late', '198.18.2.1'));
    await waitFor(() => agent.known().includes('late'), 10_000, 'the added node reaches the agent');
    // The leader's is the one Node watch left open: the agent's ended when it returned.
    await waitFor(() => parts.server.openWatchesOf('nodes') === 1, 5000, "only the leader's Node watch is open");
    await new Promise((r) => setTimeout(r, 2 * REFRESH_S * 1000));
    const after = parts.server.requests.filter((r) => r.user === AGENT_USER && r.resource === 'nodes' && r.at > returnedAt);
    assert.deepEqual(
      after.map((r) => `${r.kind} ${r.path}`),
      [],
      'no Node request after the return',
    );
    assert.equal(agent.source.mode, 'published');
    t.diagnostic(`fell back after ${fellBackMs} ms (refresh ${REFRESH_S} s)`);
  },
);

test('a live writer keeps every agent off the Nodes: none falls back while the controller renews the list', { timeout: 30_000 }, async (t) => {
  const kubectl = need(t, 'kubectl', 'the machine image');
  if (!kubectl) return;
  const parts = await nodeListParts(t, kubectl);
  parts.nodes(NODES);
  await parts.controller('ctl-a');
  const agents = await Promise.all(['node0', 'node1'].map((n) => parts.agent(n, { refreshS: REFRESH_S })));
  await waitFor(() => agents.every((a) => a.known().length === NODES), 15_000, 'every agent has the list');
  // Many refresh periods: a writer that renews the index is live, however long nothing changes.
  await new Promise((r) => setTimeout(r, 2 * STALE_REFRESHES * REFRESH_S * 1000));
  for (const a of agents) {
    assert.equal(a.source.mode, 'published', `${a.name} stays on the published list`);
    assert.deepEqual(
      a.lines.filter((l) => l.level === 'warn'),
      [],
      `${a.name} has nothing to warn about`,
    );
  }
  assert.equal(sumLoad(parts.server.load(), { user: AGENT_USER, resource: 'nodes' }).requests, 0, 'no agent read a Node');
});
