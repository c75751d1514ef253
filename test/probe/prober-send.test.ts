/**
 * The Prober's sends: sequence numbers never reused while in flight, send errors retried, discarded
 * or made the probe's error, and socket errors counted while probing goes on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SEQUENCE_SPACE } from '../../src/probe/in-flight.js';
import { phaseOf } from '../../src/probe/schedule.js';
import { FakeSocket, ipv4Header } from '../support/fake-socket.js';
import { errno, hostUnreachable, sequenceOf, setup, target } from '../support/prober-harness.js';

test('a family without a socket and a failed send are errors, not crashes', () => {
  const { clock, s4, results, prober } = setup({ families: [4] });
  prober.setTargets([target('v6', 'fd00::1', 6)]);
  clock.advance(1);
  assert.deepEqual(results[0]!.outcome, { kind: 'error', reason: 'no IPv6 ICMP socket is open' });
  s4.sendError = new Error('Network is unreachable');
  prober.setTargets([target('a', '198.18.0.1')]);
  clock.advance(1000);
  assert.deepEqual(results.at(-1)!.outcome, { kind: 'error', reason: 'send failed: Network is unreachable' });
});

test('sequence numbers wrap without reusing one still in flight', () => {
  const { clock, s4, prober } = setup({ intervalMs: 10, timeoutMs: 10 });
  prober.setTargets(Array.from({ length: 100 }, (_, i) => target(`n${i}`, `198.18.1.${i}`)));
  clock.advance(7000);
  assert.ok(s4.sent.length > 65536, `wrapped: ${s4.sent.length} probes`);
  const inWindow = s4.sent.slice(-100).map((s) => sequenceOf(s.packet));
  assert.equal(new Set(inWindow).size, 100, 'the last interval used distinct sequences');
});

test('with more probes due than 16 bits of sequence, the excess is counted and not sent: no spin, no reuse', () => {
  const { clock, s4, results, discards, prober } = setup({ intervalMs: 10_000, timeoutMs: 10_000, families: [4] });
  const targets = 70_000;
  prober.setTargets(Array.from({ length: targets }, (_, i) => target(`n${i}`, `198.18.${i >> 8}.${i & 255}`)));
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

test("a socket's 'error' event is counted and reported, and probing goes on", () => {
  const reported: string[] = [];
  const { clock, s4, results, prober } = setup({ families: [4], onSocketError: (family, err) => reported.push(`${family}:${err.message}`) });
  prober.setTargets([target('a', '198.18.0.1')]);
  clock.advance(1);
  s4.emitError(new Error('poll failed'));
  s4.emitError(new Error('recvfrom failed'));
  assert.deepEqual(reported, ['4:poll failed', '4:recvfrom failed']);
  assert.equal(prober.stats.socketErrors, 2);
  const sent = s4.sent.length;
  clock.advance(3000);
  assert.ok(s4.sent.length >= sent + 3, 'still probing every interval');
  assert.ok(
    results.every((r) => r.outcome.kind === 'timeout'),
    'a socket error is no probe error: unanswered probes time out',
  );
});

test("an error parked by another destination's ICMP error is retried, not blamed on the next target", () => {
  const { clock, s4, results, prober } = setup({ families: [4] });
  prober.setTargets([target('void', '198.18.0.1'), target('ok', '198.18.0.2')]);
  clock.advance(phaseOf(0) * 1000 + 1);
  const toVoid = s4.sent.find((s) => s.address === '198.18.0.1')!;
  // The neighbour of 198.18.0.1 does not answer ARP: the kernel quotes the request in a host unreachable
  // and parks EHOSTUNREACH on the socket, for whatever is sent next.
  const icmp = hostUnreachable(toVoid.packet, [198, 18, 0, 1]);
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
  prober.setTargets([target('a', '198.18.0.1')]);
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
  prober.setTargets([target('a', '198.18.0.1')]);
  clock.advance(999);
  assert.deepEqual(
    results.map((r) => r.outcome),
    [{ kind: 'error', reason: 'send failed: sendto: Network is unreachable' }],
  );
  assert.equal(prober.stats.sendRetries, 2, 'three attempts in all');
  assert.equal(s4.sent.length, 0);
});
