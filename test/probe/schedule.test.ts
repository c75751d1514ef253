import assert from 'node:assert/strict';
import { test } from 'node:test';
import { effectiveIntervalMs, phaseOf } from '../../src/probe/schedule.js';

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

test('golden-ratio phases keep any number of targets nearly evenly spread over the interval', () => {
  for (let n = 2; n <= 500; n++) {
    const phases = Array.from({ length: n }, (_, i) => phaseOf(i)).sort((a, b) => a - b);
    assert.ok(phases[0]! >= 0 && phases[n - 1]! < 1);
    let widestGap = 1 - phases[n - 1]! + phases[0]!;
    for (let i = 1; i < n; i++) widestGap = Math.max(widestGap, phases[i]! - phases[i - 1]!);
    assert.ok(widestGap < 2 / n, `${n} targets: a gap of ${widestGap}, twice the even spacing is ${2 / n}`);
  }
});
