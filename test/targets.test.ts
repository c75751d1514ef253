import assert from 'node:assert/strict';
import { test } from 'node:test';
import { staticTargets } from '../src/targets.js';

test('static targets keep their names; dual mode keys them per family', () => {
  assert.deepEqual(staticTargets([{ name: 'a', address: '::1' }], 'first'), [{ key: 'a', name: 'a', address: '::1', family: 6 }]);
  assert.deepEqual(staticTargets([{ name: 'a', address: '::1' }], 'dual'), [{ key: 'a/ipv6', name: 'a', address: '::1', family: 6 }]);
});
