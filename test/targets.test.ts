import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LOOPBACK_TARGETS, staticNodes, staticTargets } from '../src/targets.js';

const list = [
  { name: 'db', address: '10.0.0.5' },
  { name: 'web', address: 'fd00::6' },
];

test('static targets keep their names; in dual mode the key carries the family', () => {
  assert.deepEqual(staticTargets(list, 'first'), [
    { key: 'db', name: 'db', address: '10.0.0.5', family: 4 },
    { key: 'web', name: 'web', address: 'fd00::6', family: 6 },
  ]);
  assert.deepEqual(
    staticTargets(list, 'dual').map((t) => t.key),
    ['db/ipv4', 'web/ipv6'],
  );
});

test('static targets become active mesh nodes, one per name, with both families of a name in dual mode', () => {
  const nodes = staticNodes([...list, { name: 'db', address: 'fd00::5' }], 'dual');
  assert.deepEqual(
    nodes.map((n) => [n.name, n.state, n.targets.map((t) => t.key)]),
    [
      ['db', 'active', ['db/ipv4', 'db/ipv6']],
      ['web', 'active', ['web/ipv6']],
    ],
  );
});

test('without Kubernetes and without targets, the loopback of both families is probed', () => {
  assert.deepEqual(
    staticTargets(LOOPBACK_TARGETS, 'first').map((t) => [t.address, t.family]),
    [
      ['127.0.0.1', 4],
      ['::1', 6],
    ],
  );
});
