/**
 * The Prober against its clocks: event-loop stalls lose no reply the kernel stamped in time, and a
 * wall-clock step during a probe records no RTT.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeSocket } from '../support/fake-socket.js';
import { setup, target } from '../support/prober-harness.js';

test('a stall longer than the timeout loses no reply the kernel stamped in time', () => {
  const { clock, s4, results, prober } = setup({ intervalMs: 1000, timeoutMs: 1000, families: [4] });
  s4.echoAfterMs = 200;
  prober.setTargets(Array.from({ length: 100 }, (_, i) => target(`n${i}`, `198.18.2.${i}`)));
  // The poll phase reads replies every 5 ms while the loop runs.
  const run = (ms: number) => {
    for (let elapsed = 0; elapsed < ms; elapsed += 5) {
      clock.advance(5);
      s4.deliverQueued();
    }
  };
  run(2000);
  const beforeStalls = results.length;
  for (let stall = 0; stall < 5; stall++) {
    // About 20 probes are in flight when the loop stops; their replies arrive during the stall.
    clock.stall(1500);
    // On resuming, timers run before the poll phase.
    clock.advance(0);
    s4.deliverQueued();
    run(1000);
  }
  run(2000);
  assert.ok(results.length - beforeStalls > 500, `probes ended across the stalls: ${results.length - beforeStalls}`);
  assert.deepEqual(
    results.filter((r) => r.outcome.kind !== 'success'),
    [],
    'no timeout: every reply was stamped 200 ms after its probe',
  );
  assert.ok(
    results.every((r) => r.outcome.kind === 'success' && Math.abs(r.outcome.rttSeconds - 0.2) < 1e-9),
    'every RTT is the kernel-stamped 200 ms, not the time it was read',
  );
  assert.ok(s4.drains > 0, 'expiry drained the socket first');
});

test('a probe sent after a stall in the middle of a tick waits its whole timeout, by the clock of its send', () => {
  const { clock, s4, results, prober } = setup({ intervalMs: 1000, timeoutMs: 1000, families: [4] });
  s4.echoAfterMs = 200;
  prober.setTargets(Array.from({ length: 10 }, (_, i) => target(`n${i}`, `198.18.3.${i}`)));
  let stalled = false;
  // The loop stops (SIGSTOP, a long GC) after the tick read the clock, before one of its sends.
  s4.beforeSyscall = () => {
    if (s4.sent.length === 3 && !stalled) {
      stalled = true;
      clock.stall(1500);
    }
  };
  for (let elapsed = 0; elapsed < 5000; elapsed += 5) {
    clock.advance(5);
    s4.deliverQueued();
  }
  assert.ok(stalled);
  assert.ok(results.length >= 40, `${results.length} probes ended`);
  assert.deepEqual(
    results.filter((r) => r.outcome.kind !== 'success'),
    [],
    'no timeout: each reply came 200 ms after its send',
  );
});

test('a wall-clock step during a probe records no RTT: the probe is discarded and counted', () => {
  const { clock, s4, results, discards, prober } = setup({ families: [4] });
  prober.setTargets([target('a', '198.18.0.1')]);
  const replyAfter = (ms: number, stepMs: number) => {
    const sent = s4.sent.at(-1)!;
    clock.advance(ms / 2);
    s4.wallOffsetMs += stepMs;
    clock.advance(ms / 2);
    s4.deliver(FakeSocket.replyTo(sent.packet, 4), '198.18.0.1');
    clock.advance(1000 - ms);
  };
  clock.advance(0);
  replyAfter(20, 300); // forward: the realtime RTT reads 320 ms
  replyAfter(20, -50); // backward: it reads -30 ms, once clamped to a 0 s success
  replyAfter(20, 0.2); // an NTP slew, not a step
  s4.deliver(FakeSocket.replyTo(s4.sent.at(-1)!.packet, 4), '198.18.0.1');
  results.pop();
  assert.equal(results.length, 1, 'only the probe without a step is recorded');
  const only = results[0]!.outcome;
  assert.ok(only.kind === 'success' && Math.abs(only.rttSeconds - 0.0202) < 1e-9, `a slewed RTT stays: ${JSON.stringify(only)}`);
  assert.deepEqual(discards, [
    { key: 'a', reason: 'clock_step' },
    { key: 'a', reason: 'clock_step' },
  ]);
  assert.equal(prober.stats.clockSteps, 2);
  // Descheduled for 80 ms right after the send (CPU throttling): the bounds widen, it is no step.
  s4.afterSyscall = () => clock.stall(80);
  clock.advance(1000);
  s4.afterSyscall = undefined;
  const sent = s4.sent.at(-1)!;
  assert.equal(s4.now() - sent.sentAt, 80);
  clock.advance(20);
  s4.deliver(FakeSocket.replyTo(sent.packet, 4), '198.18.0.1');
  assert.equal(results.length, 2);
  const late = results[1]!.outcome;
  assert.ok(late.kind === 'success' && Math.abs(late.rttSeconds - 0.1) < 1e-9, `recorded: ${JSON.stringify(late)}`);
  assert.equal(prober.stats.clockSteps, 2);
});
