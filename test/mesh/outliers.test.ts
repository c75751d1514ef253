/** The outlier lifecycle: suspect, confirmed or cleared, held, capped. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Baselines, CONFIRM_PROBES, OutlierTracker } from '../../src/mesh/outliers.js';

const LOST = { kind: 'timeout' } as const;
const ok = (rttSeconds: number) => ({ kind: 'success', rttSeconds }) as const;

function tracker(max = 2) {
  let now = 0;
  const t = new OutlierTracker({ max, holdMs: 60_000, latencyExcessSeconds: 0.005 }, () => now);
  return { t, advance: (ms: number) => (now += ms) };
}

test('a lost swept probe makes a suspect; two bad of five confirm it; its hold ends once it looks normal', () => {
  const { t, advance } = tracker();
  assert.equal(t.onSweep('b', ok(0.0002), 0.0002), false, 'a normal sweep is nothing');
  assert.equal(t.onSweep('b', LOST, 0.0002), true);
  assert.equal(t.stateOf('b'), 'suspect');
  assert.equal(t.onProbe('b', LOST, 0.0002), false);
  assert.equal(t.onProbe('b', LOST, 0.0002), true);
  assert.equal(t.stateOf('b'), 'outlier');
  advance(50_000);
  t.onProbe('b', LOST, 0.0002);
  advance(50_000);
  assert.equal(t.expire(), false, 'still bad 50 s ago');
  advance(10_000);
  t.onProbe('b', ok(0.0002), 0.0002);
  assert.equal(t.expire(), true, 'normal for the hold time');
  assert.equal(t.stateOf('b'), undefined);
});

test("a slow pair is measured against its zone pair's baseline, and a suspect that looks normal is cleared", () => {
  const { t } = tracker();
  assert.equal(t.onSweep('c', ok(0.004), 0.0003), false, '+3.7 ms is within the 5 ms excess');
  assert.equal(t.onSweep('c', ok(0.0056), 0.0003), true, '+5.3 ms is not');
  for (let i = 0; i < CONFIRM_PROBES - 1; i++) assert.equal(t.onProbe('c', ok(0.0003), 0.0003), false);
  assert.equal(t.onProbe('c', ok(0.0003), 0.0003), true);
  assert.equal(t.stateOf('c'), undefined, 'five normal probes: back to the sweep');
  assert.equal(t.onSweep('d', ok(0.01), undefined), false, 'without a baseline only loss counts');
});

test('the cap: at most max outliers, as many suspects again, the rest refused and counted', () => {
  const { t } = tracker(1);
  assert.equal(t.onSweep('a', LOST, undefined), true);
  assert.equal(t.onSweep('b', LOST, undefined), true);
  assert.equal(t.onSweep('c', LOST, undefined), false);
  assert.equal(t.refused, 1);
  t.onProbe('a', LOST, undefined);
  t.onProbe('a', LOST, undefined);
  t.onProbe('b', LOST, undefined);
  t.onProbe('b', LOST, undefined);
  assert.deepEqual(t.outliers, ['a'], 'one outlier at most');
  assert.equal(t.stateOf('b'), 'suspect', 'confirmed but no room: it stays a suspect');
  assert.equal(new OutlierTracker({ max: 0, holdMs: 1, latencyExcessSeconds: 1 }, () => 0).onSweep('x', LOST, undefined), false, 'max 0: none at all');
  assert.equal(t.retain(new Set(['b'])), true);
  assert.deepEqual(t.tracked, ['b'], 'a node that is no longer swept is forgotten');
});

test('baselines are the median of recent samples per zone pair', () => {
  const b = new Baselines(5);
  b.add('z', 0.001);
  assert.equal(b.median('z'), undefined, 'too few samples');
  for (const v of [0.0002, 0.0003, 0.0004, 0.05]) b.add('z', v);
  assert.equal(b.median('z'), 0.0004);
  for (let i = 0; i < 5; i++) b.add('z', 0.0001);
  assert.equal(b.median('z'), 0.0001, 'old samples roll out');
  assert.equal(b.median('other'), undefined);
});
