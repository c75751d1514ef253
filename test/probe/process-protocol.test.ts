import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromWire, toWire } from '../../src/probe/process-protocol.js';
import type { Outcome } from '../../src/types.js';

test('outcomes survive the trip to and from the probe process', () => {
  const outcomes: Outcome[] = [{ kind: 'success', rttSeconds: 0.000123 }, { kind: 'timeout' }, { kind: 'error', reason: 'x' }];
  for (const o of outcomes) assert.deepEqual(fromWire(toWire('k', o)), o);
});
