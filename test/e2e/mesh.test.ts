/**
 * The sampled mesh with real agents: 12 agents, one per network namespace, two zones, against the
 * in-repo API server, MENTAT_MESH=sampled MENTAT_PEERS=3. Degrees and zones, a node leaving, and a
 * lossy pair that the sweep finds and names.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sampleValue, type Sample } from '../support/exposition.js';
import { destinations, until, type Agent } from '../support/fault-client.js';
import { startMeshCluster } from '../support/mesh-cluster.js';
import { requireNetns, startResponder } from '../support/netns.js';

const SWEEP_S = 20;
const HOLD_S = 20;

/** An agent's destinations probed every interval: its peers, and any outlier or suspect. */
async function probedBy(agent: Agent): Promise<{ peers: Set<string>; samples: Sample[] }> {
  const samples = await agent.scrape();
  return { peers: destinations(samples), samples };
}

test('12 agents, two zones, MENTAT_PEERS=3: degrees, zones, a node leaving, and a lossy pair named by the sweep', { timeout: 300_000 }, async (t) => {
  if (!requireNetns(t)) return;
  const dir = await mkdtemp(join(tmpdir(), 'mentat-mesh-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const mesh = await startMeshCluster(t, {
    agents: 12,
    zone: (i) => (i % 2 === 1 ? 'zone-a' : 'zone-b'),
    dir,
    env: {
      MENTAT_MESH: 'sampled',
      MENTAT_PEERS: '3',
      MENTAT_PROBE_INTERVAL: '500ms',
      MENTAT_SWEEP_INTERVAL: `${SWEEP_S}s`,
      MENTAT_OUTLIER_HOLD: `${HOLD_S}s`,
    },
  });
  const names = [...mesh.nodes.keys()];
  for (const name of names) mesh.start(name);

  // Every agent probes exactly 3 nodes, at least one in the other zone; every node is probed by 2-4.
  const peersOf = async (live: readonly string[]) =>
    new Map(await Promise.all(live.map(async (n) => [n, (await probedBy(mesh.agents.get(n)!)).peers] as const)));
  const before = await until(
    'every agent probing 3 nodes',
    60_000,
    async () => {
      const all = await peersOf(names);
      return [...all.values()].every((p) => p.size === 3) ? all : undefined;
    },
    {
      everyMs: 500,
      context: () =>
        [...mesh.agents.values()]
          .map((a) => a.describe())
          .slice(0, 2)
          .join('\n'),
    },
  );
  const inDegree = new Map(names.map((n) => [n, 0]));
  for (const [origin, peers] of before) {
    assert.ok(
      [...peers].some((p) => mesh.zoneOf(p) !== mesh.zoneOf(origin)),
      `${origin} probes ${[...peers].join(', ')}: none in the other zone`,
    );
    for (const p of peers) inDegree.set(p, inDegree.get(p)! + 1);
  }
  for (const [node, degree] of inDegree) assert.ok(degree >= 2 && degree <= 4, `${node} is probed by ${degree} agents`);
  t.diagnostic(`in-degrees: ${[...inDegree].map(([n, d]) => `${n}=${d}`).join(' ')}`);

  // A node leaving: its agent stopped, its Node deleted; within 5 s no one probes it, and at most 6 agents' peers change.
  const leaving = names[4]!;
  await mesh.agents.get(leaving)!.stop();
  mesh.agents.delete(leaving);
  const deletedAt = Date.now();
  await mesh.control.delete(leaving);
  const live = names.filter((n) => n !== leaving);
  const after = await until(
    `${leaving} probed by no one`,
    5000,
    async () => {
      const all = await peersOf(live);
      return [...all.values()].every((p) => !p.has(leaving) && p.size === 3) ? all : undefined;
    },
    { everyMs: 250 },
  );
  const goneMs = Date.now() - deletedAt;
  const changed = live.filter((n) => [...before.get(n)!].sort().join() !== [...after.get(n)!].sort().join());
  assert.ok(changed.length <= 6, `${changed.length} agents changed peers: ${changed.join(', ')}`);
  t.diagnostic(`${leaving} left: probed by no one after ${goneMs} ms; ${changed.length} agents changed peers (${changed.join(', ')})`);

  // A lossy pair: one destination drops the echoes of one origin that sweeps it (not a peer of it).
  const origin = live[0]!;
  const target = live.find((n) => n !== origin && !after.get(origin)!.has(n))!;
  const originAgent = mesh.agents.get(origin)!;
  const responder = await startResponder(mesh.cluster, mesh.nodes.get(target)!.ns, { dropFrom: [mesh.nodes.get(origin)!.ipv4] });
  const lossyAt = Date.now();
  const named = await until(
    `${origin} → ${target} named as an outlier within one sweep`,
    (SWEEP_S + 10) * 1000,
    async () => {
      const { samples } = await probedBy(originAgent);
      const lost = sampleValue(samples, 'node_latency_probes_total', { origin_node: origin, destination_node: target, result: 'timeout' });
      return lost !== undefined && lost > 0 && sampleValue(samples, 'mentat_targets', { state: 'outlier' }) === 1 ? samples : undefined;
    },
    { everyMs: 500, context: () => originAgent.describe() },
  );
  const namedMs = Date.now() - lossyAt;
  assert.equal(
    sampleValue(named, 'node_latency_probes_total', { origin_node: origin, destination_node: target, result: 'success' }),
    0,
    'every echo of this pair is lost',
  );
  // No other pair is an outlier: the responder answers everyone else.
  for (const n of live.filter((x) => x !== origin)) {
    const s = await mesh.agents.get(n)!.scrape();
    assert.equal(sampleValue(s, 'mentat_targets', { state: 'outlier' }), 0, `${n} has no outlier`);
  }
  // The pair recovers: after the hold (and the 10 s expiry check) its series go.
  await responder.stop();
  const recoveredAt = Date.now();
  await until(
    `${origin} → ${target} series gone after the hold`,
    (HOLD_S + 20) * 1000,
    async () => {
      const { peers } = await probedBy(originAgent);
      return peers.has(target) ? undefined : true;
    },
    { everyMs: 1000, context: () => originAgent.describe() },
  );
  t.diagnostic(
    `lossy pair ${origin} → ${target}: outlier after ${namedMs} ms (sweep ${SWEEP_S} s); series gone ${Date.now() - recoveredAt} ms after it recovered (hold ${HOLD_S} s)`,
  );
});
