/**
 * The Prober's replies: a matching reply is a success with its RTT, silence or lateness a timeout,
 * an ICMP error quoting the request an error; anything not ours is dropped.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode } from '../../src/icmp/packet.js';
import { phaseOf } from '../../src/probe/schedule.js';
import { FakeSocket, ipv4Header } from '../support/fake-socket.js';
import { hostUnreachable, IDENTIFIER, sequenceOf, setup, target } from '../support/prober-harness.js';

test('a matching reply is a success with its round-trip time; silence is a timeout', () => {
  const { clock, s4, results, prober } = setup();
  prober.setTargets([target('a', '198.18.0.1'), target('b', '198.18.0.2')]);
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
  prober.setTargets([target('a', '198.18.0.1')]);
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
  prober.setTargets([target('a', '198.18.0.1')]);
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
  prober.setTargets([target('a', '198.18.0.1')]);
  clock.advance(1);
  const request = s4.sent[0]!.packet;
  const icmp = hostUnreachable(request, [198, 18, 0, 1]);
  // An error quoting another destination with our sequence is not about this probe.
  const other = hostUnreachable(request, [198, 18, 0, 2]);
  s4.deliver(Buffer.concat([ipv4Header(other.length), other]), '198.18.0.254');
  assert.equal(results.length, 0);
  s4.deliver(Buffer.concat([ipv4Header(icmp.length), icmp]), '198.18.0.254');
  assert.deepEqual(results[0]!.outcome, { kind: 'error', reason: 'destination unreachable (code 1) from 198.18.0.254' });
});

test('IPv6 targets use the IPv6 socket and match compressed and expanded sources alike', () => {
  const { clock, s4, s6, results, prober } = setup();
  prober.setTargets([target('v6', 'fd00:6d65:6e74:0:0:0:0:b', 6)]);
  clock.advance(1);
  assert.equal(s4.sent.length, 0);
  assert.equal(s6.sent.length, 1);
  const d = decode(FakeSocket.replyTo(s6.sent[0]!.packet, 6), 6, false);
  assert.equal(d.kind, 'echo-reply');
  s6.deliver(FakeSocket.replyTo(s6.sent[0]!.packet, 6), 'fd00:6d65:6e74::b');
  assert.equal(results[0]?.outcome.kind, 'success');
});
