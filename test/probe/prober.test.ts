import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, internetChecksum, ICMP4_DEST_UNREACHABLE } from '../../src/icmp/packet.js';
import type { Family, Outcome, Target } from '../../src/types.js';
import { SEQUENCE_SPACE } from '../../src/probe/in-flight.js';
import { Prober } from '../../src/probe/prober.js';
import { phaseOf } from '../../src/probe/schedule.js';
import { ManualClock } from '../support/fake-clock.js';
import { FakeSocket, ipv4Header } from '../support/fake-socket.js';

const cookie = Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2]);
const IDENTIFIER = 0x4242;

function setup(opts: { intervalMs?: number; timeoutMs?: number; families?: Family[]; sweepIntervalMs?: number } = {}) {
  const clock = new ManualClock();
  const sockets = new Map<Family, FakeSocket>();
  for (const f of opts.families ?? [4, 6]) sockets.set(f, new FakeSocket(f, () => clock.now()));
  const results: Array<{ key: string; outcome: Outcome; at: number }> = [];
  const discards: Array<{ key: string; reason: string }> = [];
  const prober = new Prober({
    intervalMs: opts.intervalMs ?? 1000,
    ...(opts.sweepIntervalMs === undefined ? {} : { sweepIntervalMs: opts.sweepIntervalMs }),
    timeoutMs: opts.timeoutMs ?? 500,
    payloadBytes: 24,
    identifier: IDENTIFIER,
    cookie,
    sockets,
    clock,
    onResult: (t, outcome) => results.push({ key: t.key, outcome, at: clock.now() }),
    onDiscard: (t, reason) => discards.push({ key: t.key, reason }),
  });
  return { clock, sockets, results, discards, prober, s4: sockets.get(4)!, s6: sockets.get(6)! };
}

const t = (key: string, address: string, family: Family = 4): Target => ({ key, name: key, address, family });

function sequenceOf(packet: Buffer): number {
  return packet.readUInt16BE(6);
}

test('every target is probed once per interval, each on its own phase, the first within one interval', () => {
  const { clock, s4, prober } = setup();
  const targets = Array.from({ length: 50 }, (_, i) => t(`node-${i}`, `198.18.0.${i + 1}`));
  prober.setTargets(targets);
  clock.advance(999);
  assert.equal(s4.sent.length, 50, 'all 50 within the first interval');
  const firstAt = new Map(s4.sent.map((s) => [s.address, s.sentAt]));
  targets.forEach((target, i) => assert.equal(firstAt.get(target.address), phaseOf(i) * 1000, `${target.key} at its phase`));
  // Spread, not a burst: 50 probes a second average one per 20 ms; no 10 ms window holds more than 2.
  const times = [...firstAt.values()].sort((a, b) => a - b);
  let maxInWindow = 0;
  for (let i = 0; i < times.length; i++) maxInWindow = Math.max(maxInWindow, times.filter((x) => x >= times[i]! && x < times[i]! + 10).length);
  assert.ok(maxInWindow <= 2, `at most 2 probes in any 10 ms, saw ${maxInWindow}`);
  clock.advance(9000);
  assert.equal(s4.sent.length, 500, 'ten intervals, ten probes each');
  for (const target of targets) {
    const sends = s4.sent.filter((s) => s.address === target.address).map((s) => s.sentAt);
    for (let i = 1; i < sends.length; i++) assert.ok(Math.abs(sends[i]! - sends[i - 1]! - 1000) < 1e-6, 'no drift');
  }
});

test('a matching reply is a success with its round-trip time; silence is a timeout', () => {
  const { clock, s4, results, prober } = setup();
  prober.setTargets([t('a', '198.18.0.1'), t('b', '198.18.0.2')]);
  clock.advance(1);
  const toA = s4.sent.find((s) => s.address === '198.18.0.1')!;
  clock.advance(2);
  s4.deliver(FakeSocket.replyTo(toA.packet, 4), '198.18.0.1');
  assert.deepEqual(results[0], { key: 'a', outcome: { kind: 'success', rttSeconds: 0.003 }, at: 3 });
  clock.advance(700);
  const toB = s4.sent.find((s) => s.address === '198.18.0.2')!;
  clock.advance(toB.sentAt + 500 - clock.now());
  const timeout = results.find((r) => r.key === 'b')!;
  assert.deepEqual(timeout.outcome, { kind: 'timeout' });
  assert.equal(timeout.at, toB.sentAt + 500, 'timed out exactly at the deadline');
});

test('late, duplicate and foreign replies are dropped, never counted as success', () => {
  const { clock, s4, results, prober } = setup();
  prober.setTargets([t('a', '198.18.0.1')]);
  clock.advance(1);
  const first = s4.sent[0]!;
  const good = FakeSocket.replyTo(first.packet, 4);
  const foreignId = FakeSocket.replyTo(first.packet, 4, (p) => p.writeUInt16BE(IDENTIFIER + 1, 4));
  const wrongCookie = FakeSocket.replyTo(first.packet, 4, (p) => {
    p[8] = (p[8] ?? 0) ^ 0xff;
  });
  const wrongSeq = FakeSocket.replyTo(first.packet, 4, (p) => p.writeUInt16BE(sequenceOf(first.packet) + 1, 6));
  s4.deliver(foreignId, '198.18.0.1');
  s4.deliver(wrongCookie, '198.18.0.1');
  s4.deliver(wrongSeq, '198.18.0.1');
  s4.deliver(good, '198.18.0.99');
  assert.equal(results.length, 0, 'none of these is ours');
  s4.deliver(good, '198.18.0.1');
  s4.deliver(good, '198.18.0.1');
  assert.equal(results.length, 1, 'the duplicate is dropped');
  assert.equal(prober.stats.dropped, 5);
  // Next probe: its reply comes 600 ms later, after the 500 ms timeout.
  clock.advance(first.sentAt + 1000 - clock.now());
  const second = s4.sent[1]!;
  clock.advance(600);
  s4.deliver(FakeSocket.replyTo(second.packet, 4), '198.18.0.1');
  assert.deepEqual(
    results.map((r) => r.outcome.kind),
    ['success', 'timeout'],
  );
});

test('a reply that arrives after the deadline but before its timer ran is still a timeout', () => {
  const { clock, s4, results, prober } = setup();
  prober.setTargets([t('a', '198.18.0.1')]);
  clock.advance(phaseOf(0) * 1000);
  const sent = s4.sent[0]!;
  // Simulate a stalled event loop: time jumps without running timers, then the reply is read.
  (clock as unknown as { time: number }).time = sent.sentAt + 700;
  s4.deliver(FakeSocket.replyTo(sent.packet, 4), '198.18.0.1');
  assert.deepEqual(
    results.map((r) => r.outcome),
    [{ kind: 'timeout' }],
  );
});

test('an ICMP error quoting our request is an error with its reason', () => {
  const { clock, s4, results, prober } = setup();
  prober.setTargets([t('a', '198.18.0.1')]);
  clock.advance(1);
  const request = s4.sent[0]!.packet;
  const quoted = ipv4Header(request.length);
  quoted.set([198, 18, 0, 1], 16);
  const icmp = Buffer.concat([Buffer.from([ICMP4_DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0]), quoted, request.subarray(0, 8)]);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  // An error quoting another destination with our sequence is not about this probe.
  const other = Buffer.from(icmp);
  other.set([198, 18, 0, 2], 8 + 16);
  other.writeUInt16BE(0, 2);
  other.writeUInt16BE(internetChecksum(other), 2);
  s4.deliver(Buffer.concat([ipv4Header(other.length), other]), '198.18.0.254');
  assert.equal(results.length, 0);
  s4.deliver(Buffer.concat([ipv4Header(icmp.length), icmp]), '198.18.0.254');
  assert.deepEqual(results[0]!.outcome, { kind: 'error', reason: 'destination unreachable (code 1) from 198.18.0.254' });
});

test('IPv6 targets use the IPv6 socket and match compressed and expanded sources alike', () => {
  const { clock, s4, s6, results, prober } = setup();
  prober.setTargets([t('v6', 'fd00:6d65:6e74:0:0:0:0:b', 6)]);
  clock.advance(1);
  assert.equal(s4.sent.length, 0);
  assert.equal(s6.sent.length, 1);
  const d = decode(FakeSocket.replyTo(s6.sent[0]!.packet, 6), 6, false);
  assert.equal(d.kind, 'echo-reply');
  s6.deliver(FakeSocket.replyTo(s6.sent[0]!.packet, 6), 'fd00:6d65:6e74::b');
  assert.equal(results[0]?.outcome.kind, 'success');
});

test('a family without a socket and a failed send are errors, not crashes', () => {
  const { clock, s4, results, prober } = setup({ families: [4] });
  prober.setTargets([t('v6', 'fd00::1', 6)]);
  clock.advance(1);
  assert.deepEqual(results[0]!.outcome, { kind: 'error', reason: 'no IPv6 ICMP socket is open' });
  s4.sendError = new Error('Network is unreachable');
  prober.setTargets([t('a', '198.18.0.1')]);
  clock.advance(1000);
  assert.deepEqual(results.at(-1)!.outcome, { kind: 'error', reason: 'send failed: Network is unreachable' });
});

test('removed targets stop at once and their probes in flight report nothing; changed addresses are followed', () => {
  const { clock, s4, results, prober } = setup();
  prober.setTargets([t('a', '198.18.0.1'), t('b', '198.18.0.2')]);
  clock.advance(1);
  prober.setTargets([t('b', '198.18.0.22')]);
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
  prober.setTargets([t('a', '198.18.0.1')]);
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

test('sequence numbers wrap without reusing one still in flight', () => {
  const { clock, s4, prober } = setup({ intervalMs: 10, timeoutMs: 10 });
  prober.setTargets(Array.from({ length: 100 }, (_, i) => t(`n${i}`, `198.18.1.${i}`)));
  clock.advance(7000);
  assert.ok(s4.sent.length > 65536, `wrapped: ${s4.sent.length} probes`);
  const inWindow = s4.sent.slice(-100).map((s) => sequenceOf(s.packet));
  assert.equal(new Set(inWindow).size, 100, 'the last interval used distinct sequences');
});

test('with more probes due than 16 bits of sequence, the excess is counted and not sent: no spin, no reuse', () => {
  const { clock, s4, results, discards, prober } = setup({ intervalMs: 10_000, timeoutMs: 10_000, families: [4] });
  const targets = 70_000;
  prober.setTargets(Array.from({ length: targets }, (_, i) => t(`n${i}`, `198.18.${i >> 8}.${i & 255}`)));
  clock.advance(10_000 - 1);
  assert.equal(s4.sent.length, SEQUENCE_SPACE, 'every sequence number in flight at once');
  assert.equal(new Set(s4.sent.map((s) => sequenceOf(s.packet))).size, SEQUENCE_SPACE, 'none reused while in flight');
  // Targets whose phase fell due in this first interval: all of them but a few at its very end.
  const due = Array.from({ length: targets }, (_, i) => phaseOf(i) * 10_000).filter((at) => at <= 10_000 - 1).length;
  assert.ok(due > targets - 10);
  assert.equal(discards.length, due - SEQUENCE_SPACE, 'each probe due beyond the 65 536th is counted');
  assert.ok(discards.every((d) => d.reason === 'sequence_space'));
  assert.equal(prober.stats.unsent, due - SEQUENCE_SPACE);
  assert.equal(results.length, 0);
  // As the first probes time out, their numbers come free and the next round is sent.
  clock.advance(1000);
  assert.ok(results.length > 0 && results.every((r) => r.outcome.kind === 'timeout'));
  assert.ok(s4.sent.length > SEQUENCE_SPACE, 'probing goes on');
  const inFlight = s4.sent.slice(-SEQUENCE_SPACE).map((s) => sequenceOf(s.packet));
  assert.equal(new Set(inFlight).size, SEQUENCE_SPACE, 'the latest 65 536 sends use distinct numbers');
});

test('the packet budget stretches the interval and the prober keeps to it', () => {
  const clock = new ManualClock();
  const socket = new FakeSocket(4, () => clock.now());
  const prober = new Prober({
    intervalMs: 1000,
    maxProbesPerSecond: 50,
    timeoutMs: 500,
    payloadBytes: 16,
    identifier: 1,
    cookie: new Uint8Array(8),
    sockets: new Map([[4, socket]]),
    clock,
    onResult: () => {},
  });
  prober.setTargets(Array.from({ length: 100 }, (_, i) => t(`n${i}`, '198.18.0.1')));
  assert.equal(prober.currentIntervalMs, 2000);
  clock.advance(10_000 - 1);
  assert.equal(socket.sent.length, 500, '100 targets every 2 s for 10 s: 50 per second');
  prober.setTargets(Array.from({ length: 10 }, (_, i) => t(`n${i}`, '198.18.0.1')));
  assert.equal(prober.currentIntervalMs, 1000, 'back to the configured interval when the budget allows');
});

test('the packet budget bounds every probe sent, the sweep included: both schedules stretch alike', () => {
  const clock = new ManualClock();
  const socket = new FakeSocket(4, () => clock.now());
  const prober = new Prober({
    intervalMs: 1000,
    sweepIntervalMs: 10_000,
    maxProbesPerSecond: 50,
    timeoutMs: 500,
    payloadBytes: 16,
    identifier: 1,
    cookie: new Uint8Array(8),
    sockets: new Map([[4, socket]]),
    clock,
    onResult: () => {},
  });
  // 40 a second every interval and 20 a second of sweep: 60 asked for, 50 allowed.
  prober.setTargets(
    Array.from({ length: 40 }, (_, i) => t(`p${i}`, `198.18.0.${i}`)),
    Array.from({ length: 200 }, (_, i) => t(`s${i}`, `198.18.1.${i}`)),
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
  const sweep = Array.from({ length: 20 }, (_, i) => t(`s${i}`, `198.18.1.${i}`));
  prober.setTargets([t('p', '198.18.0.1')], sweep);
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
  prober.setTargets([t('p', '198.18.0.1'), sweep[0]!], sweep.slice(1));
  clock.advance(5000);
  assert.ok(sentTo(mark).filter((a) => a === '198.18.1.0').length >= 4, 'moved to the interval schedule');
  assert.equal(prober.currentIntervalMs, 1000, 'without a packet budget nothing stretches');
});

test("a socket's 'error' event is counted and reported, and probing goes on", () => {
  const { clock, s4, results, prober } = setup();
  const reported: string[] = [];
  const p = new Prober({
    intervalMs: 1000,
    timeoutMs: 500,
    payloadBytes: 24,
    identifier: IDENTIFIER,
    cookie,
    sockets: new Map([[4, s4]]),
    clock,
    onResult: () => {},
    onSocketError: (family, err) => reported.push(`${family}:${err.message}`),
  });
  p.setTargets([t('a', '198.18.0.1')]);
  clock.advance(1);
  s4.emitError(new Error('poll failed'));
  s4.emitError(new Error('recvfrom failed'));
  assert.deepEqual(reported, ['4:poll failed', '4:recvfrom failed']);
  assert.equal(p.stats.socketErrors, 2);
  const sent = s4.sent.length;
  clock.advance(3000);
  assert.ok(s4.sent.length >= sent + 3, 'still probing every interval');
  assert.equal(results.length, 0);
  void prober;
});

test('a stall longer than the timeout loses no reply the kernel stamped in time', () => {
  const { clock, s4, results, prober } = setup({ intervalMs: 1000, timeoutMs: 1000, families: [4] });
  s4.echoAfterMs = 200;
  prober.setTargets(Array.from({ length: 100 }, (_, i) => t(`n${i}`, `198.18.2.${i}`)));
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

function errno(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`sendto: ${message}`), { code });
}

test('a probe sent after a stall in the middle of a tick waits its whole timeout, by the clock of its send', () => {
  const { clock, s4, results, prober } = setup({ intervalMs: 1000, timeoutMs: 1000, families: [4] });
  s4.echoAfterMs = 200;
  prober.setTargets(Array.from({ length: 10 }, (_, i) => t(`n${i}`, `198.18.3.${i}`)));
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

test("an error parked by another destination's ICMP error is retried, not blamed on the next target", () => {
  const { clock, s4, results, prober } = setup({ families: [4] });
  prober.setTargets([t('void', '198.18.0.1'), t('ok', '198.18.0.2')]);
  clock.advance(phaseOf(0) * 1000 + 1);
  const toVoid = s4.sent.find((s) => s.address === '198.18.0.1')!;
  // The neighbour of 198.18.0.1 does not answer ARP: the kernel quotes the request in a host unreachable
  // and parks EHOSTUNREACH on the socket, for whatever is sent next.
  const quoted = ipv4Header(toVoid.packet.length);
  quoted.set([198, 18, 0, 1], 16);
  const icmp = Buffer.concat([Buffer.from([ICMP4_DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0]), quoted, toVoid.packet.subarray(0, 8)]);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  s4.deliver(Buffer.concat([ipv4Header(icmp.length), icmp]), '198.18.0.254');
  s4.sendErrors.push(errno('EHOSTUNREACH', 'No route to host'));
  clock.advance(phaseOf(1) * 1000 - clock.now() + 1);
  const toOk = s4.sent.filter((s) => s.address === '198.18.0.2');
  assert.equal(toOk.length, 1, 'the healthy target was probed once, by the retry');
  s4.deliver(FakeSocket.replyTo(toOk[0]!.packet, 4), '198.18.0.2');
  assert.deepEqual(
    results.map((r) => [r.key, r.outcome.kind]),
    [
      ['void', 'error'],
      ['ok', 'success'],
    ],
  );
  assert.equal(prober.stats.sendRetries, 1);
});

test('a send refused for a full socket buffer is counted, not blamed on its destination', () => {
  const { clock, s4, results, discards, prober } = setup({ families: [4] });
  s4.sendErrors.push(errno('EAGAIN', 'Resource temporarily unavailable'));
  prober.setTargets([t('a', '198.18.0.1')]);
  clock.advance(999);
  assert.equal(results.length, 0);
  assert.deepEqual(discards, [{ key: 'a', reason: 'send_buffer' }]);
  clock.advance(1);
  s4.deliver(FakeSocket.replyTo(s4.sent.at(-1)!.packet, 4), '198.18.0.1');
  assert.equal(results[0]?.outcome.kind, 'success', 'the next probe goes out');
});

test('a send that keeps failing is an error of its probe after a bounded number of attempts', () => {
  const { clock, s4, results, prober } = setup({ families: [4] });
  s4.sendError = errno('ENETUNREACH', 'Network is unreachable');
  prober.setTargets([t('a', '198.18.0.1')]);
  clock.advance(999);
  assert.deepEqual(
    results.map((r) => r.outcome),
    [{ kind: 'error', reason: 'send failed: sendto: Network is unreachable' }],
  );
  assert.equal(prober.stats.sendRetries, 2, 'three attempts in all');
  assert.equal(s4.sent.length, 0);
});

test('a wall-clock step during a probe records no RTT: the probe is discarded and counted', () => {
  const { clock, s4, results, discards, prober } = setup({ families: [4] });
  prober.setTargets([t('a', '198.18.0.1')]);
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
