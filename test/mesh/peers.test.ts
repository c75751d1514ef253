/** The sampled mesh over generated clusters: degrees, zones and stability as properties. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { peerGraph, type MeshMember, type PeerGraph } from '../../src/mesh/peers.js';

/** Node names as clouds make them, zones by weight (deterministic per index). */
function cluster(size: number, weights: readonly number[], prefix = 'ip-10-0'): MeshMember[] {
  return Array.from({ length: size }, (_, i) => {
    const r = ((i * 2654435761) >>> 0) / 2 ** 32;
    let zone = weights.length - 1;
    for (let z = 0, acc = 0; z < weights.length; z++)
      if (r < (acc += weights[z]!)) {
        zone = z;
        break;
      }
    return { name: `${prefix}-${i >> 8}-${i & 255}.eu-west-1.compute.internal`, zone: weights.length > 0 ? `eu-west-1${'abcdef'[zone]}` : undefined };
  });
}

function inDegrees(graph: PeerGraph): number[] {
  const counts = new Map<string, number>([...graph.keys()].map((n) => [n, 0]));
  for (const peers of graph.values()) for (const p of peers) counts.set(p, counts.get(p)! + 1);
  return [...counts.values()];
}

/** Agents whose peers differ between two graphs (the joining one counts; the leaving one does not). */
function changed(before: PeerGraph, after: PeerGraph): number {
  let n = 0;
  for (const [name, peers] of after) if (before.get(name)?.join() !== peers.join()) n++;
  return n;
}

const BALANCED: ReadonlyArray<readonly number[]> = [[], [1], [0.5, 0.5], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.3, 0.2], [0.2, 0.2, 0.2, 0.2, 0.2]];

test('every agent probes exactly k nodes, none twice, never itself; every node is probed by k ± 1', () => {
  for (const size of [13, 50, 200, 1000]) {
    for (const weights of BALANCED) {
      for (const k of [3, 8, 12]) {
        const graph = peerGraph(cluster(size, weights), k);
        const what = `${size} nodes, zones ${JSON.stringify(weights)}, k=${k}`;
        for (const [name, peers] of graph) {
          assert.equal(peers.length, k, what);
          assert.equal(new Set(peers).size, k, `${what}: no duplicate peer`);
          assert.ok(!peers.includes(name), `${what}: not itself`);
        }
        const degrees = inDegrees(graph);
        assert.ok(Math.min(...degrees) >= k - 1 && Math.max(...degrees) <= k + 1, `${what}: in-degree ${Math.min(...degrees)}..${Math.max(...degrees)}`);
      }
    }
  }
});

test('zones: every agent reaches into another zone, and every ordered pair of zones is measured', () => {
  for (const size of [13, 50, 200, 1000]) {
    for (const weights of BALANCED.filter((w) => w.length > 1)) {
      for (const k of [3, 12]) {
        const members = cluster(size, weights);
        const zone = new Map(members.map((m) => [m.name, m.zone]));
        const graph = peerGraph(members, k);
        const pairs = new Set<string>();
        for (const [name, peers] of graph) {
          assert.ok(
            peers.some((p) => zone.get(p) !== zone.get(name)),
            `${size}/${JSON.stringify(weights)}/k=${k}: ${name} has no peer in another zone`,
          );
          for (const p of peers) pairs.add(`${zone.get(name)}>${zone.get(p)}`);
        }
        const zones = new Set(zone.values());
        for (const a of zones)
          for (const b of zones) assert.ok(a === b || pairs.has(`${a}>${b}`), `${size}/${JSON.stringify(weights)}: ${a} → ${b} unmeasured`);
      }
    }
  }
});

test('one zone with nearly every node: the in-degree bound holds, and still every pair of zones is measured', () => {
  const members = cluster(1000, [0.95, 0.05]);
  const graph = peerGraph(members, 12);
  const degrees = inDegrees(graph);
  assert.ok(Math.min(...degrees) >= 11 && Math.max(...degrees) <= 13, `${Math.min(...degrees)}..${Math.max(...degrees)}`);
  const zone = new Map(members.map((m) => [m.name, m.zone]));
  const pairs = new Set([...graph].flatMap(([n, peers]) => peers.map((p) => `${zone.get(n)}>${zone.get(p)}`)));
  assert.ok(pairs.has('eu-west-1a>eu-west-1b') && pairs.has('eu-west-1b>eu-west-1a'));
});

test('stable: one node joining or leaving changes the peers of at most 2k agents', () => {
  for (const size of [30, 200, 1000]) {
    for (const weights of BALANCED) {
      const k = 12;
      const members = cluster(size, weights);
      const base = peerGraph(members, k);
      let worst = 0;
      for (let t = 0; t < 25; t++) {
        const joined = peerGraph([...members, { name: `new-node-${t}`, zone: members[t]!.zone }], k);
        const left = peerGraph(
          members.filter((_, i) => i !== (t * 37) % size),
          k,
        );
        worst = Math.max(worst, changed(base, joined), changed(base, left));
      }
      assert.ok(worst <= 2 * k, `${size} nodes, zones ${JSON.stringify(weights)}: a join or leave changed ${worst} agents' peers`);
    }
  }
});

test("the namespace test's shape (12 nodes, two zones, k=3): a node leaving changes at most 6 agents", () => {
  const members = Array.from({ length: 12 }, (_, i) => ({ name: `node${i}`, zone: i % 2 === 0 ? 'zone-a' : 'zone-b' }));
  const base = peerGraph(members, 3);
  for (const gone of members)
    assert.ok(
      changed(
        base,
        peerGraph(
          members.filter((m) => m !== gone),
          3,
        ),
      ) <= 6,
      `${gone.name} leaving`,
    );
});

test('with k or fewer others every node probes all of them; the order of the input does not matter', () => {
  const small = cluster(5, [0.5, 0.5]);
  for (const [name, peers] of peerGraph(small, 12))
    assert.deepEqual(
      [...peers].sort(),
      small
        .map((m) => m.name)
        .filter((n) => n !== name)
        .sort(),
    );
  const members = cluster(300, [1 / 3, 1 / 3, 1 / 3]);
  assert.deepEqual(peerGraph([...members].reverse(), 12), peerGraph(members, 12));
});
