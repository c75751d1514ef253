/** Which nodes an agent probes: sampling per zone and the target cap. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectTargets } from '../../src/mesh/selection.js';
import type { Target } from '../../src/types.js';

const node = (name: string, zone?: string, family: 4 | 6 = 4): Target => ({ key: family === 6 ? `${name}/ipv6` : name, name, address: family === 4 ? '198.18.0.1' : 'fd00::1', family, ...(zone ? { zone } : {}) });

test('sampling: the own zone in full, k per other zone, every pair covered over ceil(n/k) epochs', () => {
  const all: Target[] = [];
  for (let i = 0; i < 5; i++) all.push(node(`own-${i}`, 'z1'));
  for (let i = 0; i < 10; i++) all.push(node(`b-${i}`, 'z2'));
  for (let i = 0; i < 7; i++) all.push(node(`c-${i}`, 'z3'));
  const options = { origin: 'me', originZone: 'z1', perZone: 3, maxTargets: 1000 };
  const seen = new Set<string>();
  for (let epoch = 0; epoch < 4; epoch++) {
    const { selected, overCap } = selectTargets(all, options, epoch);
    assert.equal(overCap, 0);
    assert.equal(selected.length, 5 + 3 + 3, `epoch ${epoch}: 5 own + 3 + 3`);
    assert.equal(selected.filter((t) => t.zone === 'z1').length, 5);
    for (const t of selected) seen.add(t.name);
  }
  assert.equal(seen.size, all.length, 'after ceil(10/3) = 4 epochs every node was probed');
  // Another origin walks the nodes in another order, so agents do not all pick the same ones.
  const other = selectTargets(all, { ...options, origin: 'someone-else' }, 0).selected.map((t) => t.name).sort();
  assert.notDeepEqual(other, selectTargets(all, options, 0).selected.map((t) => t.name).sort());
});

test('without a known own zone, or with sampling off, every node is probed', () => {
  const all = [node('a', 'z1'), node('b', 'z2'), node('c', 'z2'), node('d', 'z2')];
  assert.equal(selectTargets(all, { origin: 'me', originZone: undefined, perZone: 1, maxTargets: 100 }, 0).selected.length, 4);
  assert.equal(selectTargets(all, { origin: 'me', originZone: 'z1', perZone: 0, maxTargets: 100 }, 0).selected.length, 4);
});

test('the cap keeps the own zone first, keeps a node\'s two families together, and counts the rest', () => {
  const all = [node('x', 'z2'), node('x', 'z2', 6), node('own', 'z1'), node('own', 'z1', 6), node('y', 'z2'), node('y', 'z2', 6)];
  const { selected, overCap } = selectTargets(all, { origin: 'me', originZone: 'z1', perZone: 0, maxTargets: 3 }, 0);
  assert.deepEqual(selected.map((t) => t.key).slice(0, 2), ['own', 'own/ipv6']);
  assert.equal(selected.length, 2, 'the next node has two targets and does not fit in 3');
  assert.equal(overCap, 4);
});
