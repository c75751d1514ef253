import assert from 'node:assert/strict';
import { test } from 'node:test';
import { effectiveIntervalMs } from '../../src/probe/schedule.js';

test('the packet budget stretches the interval', () => {
  assert.equal(effectiveIntervalMs(1000, 5000, 0), 1000);
  assert.equal(effectiveIntervalMs(1000, 500, 1000), 1000);
  assert.equal(effectiveIntervalMs(1000, 5000, 2000), 2500);
});

test('the packet budget covers every probe sent, the sweep included: both schedules stretch alike', () => {
  assert.equal(effectiveIntervalMs(1000, 40, 50, { targets: 200, intervalMs: 10_000 }), 1200);
  assert.equal(effectiveIntervalMs(1000, 40, 0, { targets: 200, intervalMs: 10_000 }), 1000);
  assert.equal(effectiveIntervalMs(1000, 40, 50, { targets: 200, intervalMs: Infinity }), 1000, 'no sweep, no sweep load');
});
