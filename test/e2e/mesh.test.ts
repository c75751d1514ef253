/**
 * The sampled mesh with real agents: 12 agents, one per network namespace, two zones, against the
 * in-repo API server, MENTAT_MESH=sampled MENTAT_PEERS=3. Degrees and zones, a node leaving, and a
 * lossy pair that the sweep finds and names.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { sampleValue, type Sample } from '../support/exposition.js';
import { destinations, until, type Agent } from '../support/fault-client.js';
import type { MeshCluster } from '../support/mesh-cluster.js';
import { requireNetns, startResponder, type Responder } from '../support/netns.js';
import { startZonedMesh } from '../support/zoned-mesh.js';

const SWEEP_S = 20;
const HOLD_S = 20;

type PeerMap = Map<string, Set<string>>;

/** An agent's destinations probed every interval: its peers, and any outlier or suspect. */
async function probedBy(agent: Agent): Promise<{ peers: Set<string>; samples: Sample[] }> {
  const samples = await agent.scrape();
  return { peers: destinations(samples), samples };
}

/** The peers of each of the `live` agents, by node. */
async function peersOf(mesh: MeshCluster, live: readonly string[]): Promise<PeerMap> {
  return new Map(await Promise.all(live.map(async (n) => [n, (await probedBy(mesh.agents.get(n)!)).peers] as const)));
}

/** Waits until every agent probes exactly 3 nodes; their peers then. */
function untilThreePeersEach(mesh: MeshCluster, names: readonly string[]): Promise<PeerMap> {
  return until(
    'every agent probing 3 nodes',
    60_000,
    async () => {
      const all = await peersOf(mesh, names);
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
}

/** Every agent probes at least one node in the other zone; every node is probed by 2-4 agents. */
function assertZonesAndDegrees(t: TestContext, mesh: MeshCluster, names: readonly string[], peers: PeerMap): void {
  const inDegree = new Map(names.map((n) => [n, 0]));
  for (const [origin, ofOrigin] of peers) {
    assert.ok(
      [...ofOrigin].some((p) => mesh.zoneOf(p) !== mesh.zoneOf(origin)),
      `${origin} probes ${[...ofOrigin].join(', ')}: none in the other zone`,
    );
    for (const p of ofOrigin) inDegree.set(p, inDegree.get(p)! + 1);
  }
  for (const [node, degree] of inDegree) assert.ok(degree >= 2 && degree <= 4, `${node} is probed by ${degree} agents`);
  t.diagnostic(`in-degrees: ${[...inDegree].map(([n, d]) => `${n}=${d}`).join(' ')}`);
}

/** Stops `leaving`'s agent and deletes its Node; when the Node was deleted. */
async function removeNode(mesh: MeshCluster, leaving: string): Promise<number> {
  await mesh.agents.get(leaving)!.stop();
  mesh.agents.delete(leaving);
  const deletedAt = Date.now();
  await mesh.control.delete(leaving);
  return deletedAt;
}

/** Within 5 s of the deletion no one probes `leaving`, and at most 6 agents' peers changed; the `live` agents' peers then. */
async function assertPeersMovedOff(
  t: TestContext,
  mesh: MeshCluster,
  live: readonly string[],
  leaving: string,
  before: PeerMap,
  deletedAt: number,
): Promise<PeerMap> {
  const after = await until(
    `${leaving} probed by no one`,
    5000,
    async () => {
      const all = await peersOf(mesh, live);
      return [...all.values()].every((p) => !p.has(leaving) && p.size === 3) ? all : undefined;
    },
    { everyMs: 250 },
  );
  const goneMs = Date.now() - deletedAt;
  const changed = live.filter((n) => [...before.get(n)!].sort().join() !== [...after.get(n)!].sort().join());
  assert.ok(changed.length <= 6, `${changed.length} agents changed peers: ${changed.join(', ')}`);
  t.diagnostic(`${leaving} left: probed by no one after ${goneMs} ms; ${changed.length} agents changed peers (${changed.join(', ')})`);
  return after;
}

/** A pair whose destination drops every echo of its origin, which sweeps it (it is not a peer of it). */
interface LossyPair {
  readonly origin: string;
  readonly target: string;
  readonly originAgent: Agent;
  readonly responder: Responder;
  readonly lossyAt: number;
}

/** Makes the first live node's echoes to a node it does not peer with lost. */
async function startLossyPair(mesh: MeshCluster, live: readonly string[], peers: PeerMap): Promise<LossyPair> {
  const origin = live[0]!;
  const target = live.find((n) => n !== origin && !peers.get(origin)!.has(n))!;
  const originAgent = mesh.agents.get(origin)!;
  const responder = await startResponder(mesh.cluster, mesh.nodes.get(target)!.ns, { dropFrom: [mesh.nodes.get(origin)!.ipv4] });
  return { origin, target, originAgent, responder, lossyAt: Date.now() };
}

/** Within one sweep the origin names the pair an outlier, every echo of it lost; how long that took. */
async function assertOutlierNamed({ origin, target, originAgent, lossyAt }: LossyPair): Promise<number> {
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
  return namedMs;
}

/** No agent but the origin has an outlier: the responder answers everyone else. */
async function assertNoOtherOutlier(mesh: MeshCluster, live: readonly string[], origin: string): Promise<void> {
  for (const n of live.filter((x) => x !== origin)) {
    const s = await mesh.agents.get(n)!.scrape();
    assert.equal(sampleValue(s, 'mentat_targets', { state: 'outlier' }), 0, `${n} has no outlier`);
  }
}

/** The pair recovers: after the hold (and the 10 s expiry check) its series go; how long after the recovery. */
async function untilSeriesGoneAfterHold({ origin, target, originAgent, responder }: LossyPair): Promise<number> {
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
  return Date.now() - recoveredAt;
}

test('12 agents, two zones, MENTAT_PEERS=3: degrees, zones, a node leaving, and a lossy pair named by the sweep', { timeout: 300_000 }, async (t) => {
  if (!requireNetns(t)) return;
  const { mesh, names } = await startZonedMesh(t, {
    agents: 12,
    dirPrefix: 'mentat-mesh-',
    env: {
      MENTAT_MESH: 'sampled',
      MENTAT_PEERS: '3',
      MENTAT_PROBE_INTERVAL: '500ms',
      MENTAT_SWEEP_INTERVAL: `${SWEEP_S}s`,
      MENTAT_OUTLIER_HOLD: `${HOLD_S}s`,
    },
  });

  // Every agent probes exactly 3 nodes, at least one in the other zone; every node is probed by 2-4.
  const before = await untilThreePeersEach(mesh, names);
  assertZonesAndDegrees(t, mesh, names, before);

  // A node leaving: its agent stopped, its Node deleted; within 5 s no one probes it, and at most 6 agents' peers change.
  const leaving = names[4]!;
  const deletedAt = await removeNode(mesh, leaving);
  const live = names.filter((n) => n !== leaving);
  const after = await assertPeersMovedOff(t, mesh, live, leaving, before, deletedAt);

  // A lossy pair: one destination drops the echoes of one origin that sweeps it (not a peer of it).
  const pair = await startLossyPair(mesh, live, after);
  const namedMs = await assertOutlierNamed(pair);
  await assertNoOtherOutlier(mesh, live, pair.origin);
  const goneMs = await untilSeriesGoneAfterHold(pair);
  t.diagnostic(
    `lossy pair ${pair.origin} → ${pair.target}: outlier after ${namedMs} ms (sweep ${SWEEP_S} s); series gone ${goneMs} ms after it recovered (hold ${HOLD_S} s)`,
  );
});
