/** planMesh: full or sampled, what is swept, what is left out and why. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planMesh, type PlanInput } from '../../src/mesh/plan.js';
import type { MeshNode, NodeState } from '../../src/types.js';

const node = (name: string, zone?: string, state: NodeState = 'active', families: Array<4 | 6> = [4]): MeshNode => ({
  name,
  state,
  ...(zone ? { zone } : {}),
  targets: families.map((family) => ({
    key: families.length > 1 ? `${name}/ipv${family}` : name,
    name,
    address: family === 4 ? '198.18.0.1' : 'fd00::1',
    family,
    ...(zone ? { zone } : {}),
  })),
});
const mesh = { mode: 'auto', fullMax: 100, peers: 12, sweepIntervalMs: 1_800_000 } as const;
const input = (nodes: MeshNode[], extra: Partial<PlanInput> = {}): PlanInput => ({ origin: 'n0', nodes, mesh, maxTargets: 10_000, probeSelf: false, ...extra });
const cluster = (n: number) => Array.from({ length: n }, (_, i) => node(`n${i}`, `z${i % 3}`));

test('auto: a full mesh up to MENTAT_MESH_FULL_MAX nodes, sampled above, every other node swept', () => {
  const small = planMesh(input(cluster(100)));
  assert.equal(small.mode, 'full');
  assert.equal(small.peers.length, 99);
  assert.equal(small.sweep.length, 0, 'nothing left to sweep in a full mesh');
  const large = planMesh(input(cluster(101)));
  assert.equal(large.mode, 'sampled');
  assert.equal(large.peers.length, 12);
  assert.equal(large.sweep.length, 100 - 12, 'every other node is swept');
  assert.equal(new Set([...large.peers, ...large.sweep].map((n) => n.name)).size, 100);
  assert.equal(large.known, 100);
  assert.equal(planMesh(input(cluster(50), { mesh: { ...mesh, mode: 'sampled' } })).peers.length, 12);
  // At the line: once sampled, auto stays sampled until a tenth below it.
  assert.equal(planMesh(input(cluster(100), { previousMode: 'sampled' })).mode, 'sampled');
  assert.equal(planMesh(input(cluster(91), { previousMode: 'sampled' })).mode, 'sampled');
  assert.equal(planMesh(input(cluster(90), { previousMode: 'sampled' })).mode, 'full');
  assert.equal(planMesh(input(cluster(100), { previousMode: 'full' })).mode, 'full');
  assert.equal(planMesh(input(cluster(500), { mesh: { ...mesh, mode: 'full' } })).peers.length, 499);
  assert.equal(planMesh(input(cluster(500), { mesh: { ...mesh, sweepIntervalMs: 0 } })).sweep.length, 0, 'sweep off');
});

test('leaving nodes are probed by no one and swept by no one; a leaving agent probes nothing', () => {
  const nodes = cluster(200).map((n, i) => (i % 10 === 5 ? { ...n, state: 'leaving' as const } : n));
  const plan = planMesh(input(nodes));
  assert.equal(plan.leaving, 20);
  assert.ok([...plan.peers, ...plan.sweep].every((n) => n.state !== 'leaving'));
  const gone = planMesh(input(nodes, { origin: 'n5' }));
  assert.deepEqual([gone.peers.length, gone.sweep.length], [0, 0]);
  // Cordoned nodes are still measured (only alerts about them stay quiet).
  assert.equal(planMesh(input(cluster(10).map((n) => ({ ...n, state: 'cordoned' as const })))).peers.length, 9);
});

test('an agent whose own Node is not listed yet still takes its place in the ring', () => {
  const nodes = cluster(300).filter((n) => n.name !== 'n0');
  const plan = planMesh(input(nodes));
  assert.equal(plan.peers.length, 12);
  assert.ok(plan.peers.every((n) => n.name !== 'n0'));
});

test("the cap keeps the own zone first, keeps a node's two families together, and sweeps the rest", () => {
  const nodes = [node('n0', 'z1'), node('x', 'z2', 'active', [4, 6]), node('own', 'z1', 'active', [4, 6]), node('y', 'z2', 'active', [4, 6])];
  const plan = planMesh(input(nodes, { maxTargets: 3 }));
  assert.deepEqual(
    plan.peers.map((n) => n.name),
    ['own'],
    'the next node has two targets and does not fit in 3',
  );
  assert.equal(plan.overCap, 2);
  assert.deepEqual(plan.sweep.map((n) => n.name).sort(), ['x', 'y']);
});

test('probe_self adds the own node to the probed ones', () => {
  const plan = planMesh(input([node('n0'), node('n1')], { probeSelf: true }));
  assert.deepEqual(plan.peers.map((n) => n.name).sort(), ['n0', 'n1']);
});
