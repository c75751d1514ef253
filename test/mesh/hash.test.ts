import assert from 'node:assert/strict';
import { test } from 'node:test';
import { byHash, hash32 } from '../../src/mesh/hash.js';

test('hash32 values are pinned: every agent, of any version during a rollout, must place a node at the same ring position', () => {
  assert.deepEqual(['', 'node-1', 'node-2', 'ip-10-0-0-1.ec2.internal'].map(hash32), [2872998923, 2865264164, 2899805412, 726497605]);
});

test('names that differ only at their end do not keep their order (the finalizer mixes the last characters in)', () => {
  const names = Array.from({ length: 20 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
  assert.notDeepEqual(
    byHash(names, (n) => n),
    names,
  );
});

test('the order depends on the names alone, not on the order they came in', () => {
  const names = ['node-1', 'node-2', 'node-3', 'node-10', 'b', 'a'];
  const expected = byHash(names, (n) => n);
  assert.deepEqual(
    byHash([...names].reverse(), (n) => n),
    expected,
  );
  assert.deepEqual(
    byHash(
      names.map((name) => ({ name })),
      (x) => x.name,
    ).map((x) => x.name),
    expected,
  );
});
