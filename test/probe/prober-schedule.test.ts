/**
 * The Prober's schedule: each target on its own phase once per interval, swept targets once per sweep
 * interval, the packet budget stretching both alike, targets removed or moved at once, and stop.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { phaseOf } from '../../src/probe/schedule.js';
import { setup, target } from '../support/prober-harness.js';

test('every target is probed once per interval, each on its own phase, the first within one interval', () => {
  const { clock, s4, prober } = setup();
  const targets = Array.from({ length: 50 }, (_, i) => target(`node-${i}`, `198.18.0.${i + 1}`));
  prober.setTargets(targets);
  clock.advance(999);
  assert.equal(s4.sent.length, 50, 'all 50 within the first interval');
  const firstAt = new Map(s4.sent.map((s) => [s.address, s.sentAt]));
  targets.forEach((each, i) => assert.equal(firstAt.get(each.address), phaseOf(i) * 1000, `${each.key} at its phase`));
  // Spread, not a burst: 50 probes a second average one per 20 ms; no 10 ms window holds more than 2.
  const times = [...firstAt.values()].sort((a, b) => a - b);
  let maxInWindow = 0;
  for (let i = 0; i < times.length; i++) maxInWindow = Math.max(maxInWindow, times.filter((x) => x >= times[i]! && x < times[i]! + 10).length);
  assert.ok(maxInWindow <= 2, `at most 2 probes in any 10 ms, saw ${maxInWindow}`);
  clock.advance(9000);
  assert.equal(s4.sent.length, 500, 'ten intervals, ten probes each');
  for (const each of targets) {
    const sends = s4.sent.filter((s) => s.address === each.address).map((s) => s.sentAt);
    for (let i = 1; i < sends.length; i++) assert.ok(Math.abs(sends[i]! - sends[i - 1]! - 1000) < 1e-6, 'no drift');
  }
});

test('batched sends: probes due within 25 ms leave together, each at most 25 ms after its phase, still once per interval', () => {
  const { clock, s4, prober } = setup({ families: [4], sendBatchMs: 25 });
  const targets = Array.from({ length: 100 }, (_, i) => target(`node-${i}`, `198.18.0.${i + 1}`));
  prober.setTargets(targets);
  // Ten intervals, and the last batch of the tenth (due before 10 s, sent at 10 s at the latest).
  clock.advance(10_000);
  targets.forEach((each, i) => {
    const sends = s4.sent.filter((s) => s.address === each.address && s.sentAt < phaseOf(i) * 1000 + 10_000).map((s) => s.sentAt);
    assert.equal(sends.length, 10, `${each.key}: once per interval`);
    const late = sends[0]! - phaseOf(i) * 1000;
    assert.ok(late >= 0 && late < 25, `${each.key}: ${late} ms after its phase`);
    for (let k = 1; k < sends.length; k++) assert.equal(sends[k]! - sends[k - 1]!, 1000, `${each.key}: no drift`);
  });
  const instants = new Set(s4.sent.map((s) => s.sentAt));
  assert.ok(
    [...instants].every((at) => at % 25 === 0),
    'sends on the 25 ms grid',
  );
  // 100 probes a second, one wake-up each without batching: at most one per 25 ms with it.
  assert.ok(instants.size <= 401, `${instants.size} send instants in 10 s and at 10 s`);
});

test('the packet budget stretches the interval and the prober keeps to it', () => {
  const { clock, s4: socket, prober } = setup({ families: [4], maxProbesPerSecond: 50 });
  prober.setTargets(Array.from({ length: 100 }, (_, i) => target(`n${i}`, '198.18.0.1')));
  assert.equal(prober.currentIntervalMs, 2000);
  clock.advance(10_000 - 1);
  assert.equal(socket.sent.length, 500, '100 targets every 2 s for 10 s: 50 per second');
  prober.setTargets(Array.from({ length: 10 }, (_, i) => target(`n${i}`, '198.18.0.1')));
  assert.equal(prober.currentIntervalMs, 1000, 'back to the configured interval when the budget allows');
});

test('the packet budget bounds every probe sent, the sweep included: both schedules stretch alike', () => {
  const { clock, s4: socket, prober } = setup({ families: [4], sweepIntervalMs: 10_000, maxProbesPerSecond: 50 });
  // 40 a second every interval and 20 a second of sweep: 60 asked for, 50 allowed.
  prober.setTargets(
    Array.from({ length: 40 }, (_, i) => target(`p${i}`, `198.18.0.${i}`)),
    Array.from({ length: 200 }, (_, i) => target(`s${i}`, `198.18.1.${i}`)),
  );
  assert.equal(prober.currentIntervalMs, 1200);
  clock.advance(12_000);
  const from = socket.sent.length;
  // Two sweep periods, each stretched to 12 s: every target sends a whole number of times in them.
  clock.advance(24_000);
  const sent = socket.sent.slice(from);
  assert.equal(sent.length, 50 * 24, 'exactly the budget: 50 a second');
  assert.equal(sent.filter((s) => s.address.startsWith('198.18.1.')).length, 400, 'each swept target twice');
});

test('swept targets are probed once per sweep interval, spread over it; a target moved to the interval schedule starts over there', () => {
  const { clock, s4, prober } = setup({ sweepIntervalMs: 10_000 });
  const sweep = Array.from({ length: 20 }, (_, i) => target(`s${i}`, `198.18.1.${i}`));
  prober.setTargets([target('p', '198.18.0.1')], sweep);
  const sentTo = (from: number) => s4.sent.slice(from).map((p) => p.address);
  clock.advance(10_000 - 1);
  const first = sentTo(0);
  assert.equal(first.filter((a) => a === '198.18.0.1').length, 10, 'the peer every second');
  assert.equal(first.filter((a) => a !== '198.18.0.1').length, 20, 'every swept target once in 10 s');
  assert.equal(new Set(first.filter((a) => a !== '198.18.0.1')).size, 20);
  const times = s4.sent
    .filter((p) => p.address !== '198.18.0.1')
    .map((p) => p.sentAt)
    .sort((a, b) => a - b);
  const gaps = times.slice(1).map((v, i) => v - times[i]!);
  assert.ok(Math.max(...gaps) < 2000, `spread over the interval, no burst or hole: largest gap ${Math.max(...gaps)} ms`);
  const mark = s4.sent.length;
  prober.setTargets([target('p', '198.18.0.1'), sweep[0]!], sweep.slice(1));
  clock.advance(5000);
  assert.ok(sentTo(mark).filter((a) => a === '198.18.1.0').length >= 4, 'moved to the interval schedule');
  assert.equal(prober.currentIntervalMs, 1000, 'without a packet budget nothing stretches');
});

test('removed targets stop at once and their probes in flight report nothing; changed addresses are followed', () => {
  const { clock, s4, results, prober } = setup();
  prober.setTargets([target('a', '198.18.0.1'), target('b', '198.18.0.2')]);
  clock.advance(1);
  prober.setTargets([target('b', '198.18.0.22')]);
  const before = s4.sent.length;
  clock.advance(3000);
  const after = s4.sent.slice(before);
  assert.ok(
    after.every((s) => s.address === '198.18.0.22'),
    'only b, at its new address',
  );
  assert.equal(after.length, 3);
  assert.ok(
    results.every((r) => r.key === 'b'),
    'a reported nothing after removal',
  );
  assert.equal(prober.targetCount, 1);
});

test('stop sends nothing more and resolves once probes in flight have ended', async () => {
  const { clock, s4, results, prober } = setup({ timeoutMs: 500 });
  prober.setTargets([target('a', '198.18.0.1')]);
  clock.advance(phaseOf(0) * 1000 + 1);
  assert.equal(s4.sent.length, 1);
  let resolved = false;
  const stopped = prober.stop().then(() => {
    resolved = true;
  });
  await Promise.resolve();
  assert.equal(resolved, false, 'waits for the probe in flight');
  clock.advance(500);
  await stopped;
  assert.deepEqual(
    results.map((r) => r.outcome.kind),
    ['timeout'],
    'the last probe is still reported',
  );
  clock.advance(5000);
  assert.equal(s4.sent.length, 1);
  assert.equal(clock.pendingTimers, 0, 'no timer left behind');
});
