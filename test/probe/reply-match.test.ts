import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeEchoRequest, type Decoded } from '../../src/icmp/packet.js';
import type { InFlight } from '../../src/probe/in-flight.js';
import { CLOCK_STEP_TOLERANCE_MS, clockStepped, decodeQueuedError, matchReply, replyOutcome, type Match } from '../../src/probe/reply-match.js';
import type { Family } from '../../src/types.js';

const mark = { identifier: 0x4242, cookie: Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2]), payloadBytes: 24 };

function probeTo(address: string, family: Family, sequence: number): InFlight {
  return {
    slot: { due: 0, target: { key: 'k', name: 'k', address, family }, schedule: 'continuous', active: true },
    address,
    sequence,
    deadline: 500,
    sentAt: 100,
    sentAfterMonotonic: 100,
    sentBeforeMonotonic: 100,
    done: false,
  };
}

function echoReply(family: Family, sequence: number, change: Partial<typeof mark> = {}): Decoded {
  const request = encodeEchoRequest({ family, sequence, ...mark, ...change });
  return { kind: 'echo-reply', identifier: change.identifier ?? mark.identifier, sequence, payload: request.subarray(8) };
}

const icmpError = (sequence: number, quotedDestination: string, extra: { identifier?: number; nextHopMtu?: number } = {}): Decoded => ({
  kind: 'error',
  reason: 'fragmentation needed',
  identifier: extra.identifier ?? mark.identifier,
  sequence,
  quotedDestination,
  ...(extra.nextHopMtu === undefined ? {} : { nextHopMtu: extra.nextHopMtu }),
});

test('replies and ICMP errors match a probe in flight only on every field; anything else is dropped', () => {
  const v4 = probeTo('198.18.0.1', 4, 7);
  const v6 = probeTo('2001:db8::1', 6, 8);
  const unsent: InFlight = { ...probeTo('198.18.0.3', 4, 9), sentAt: undefined };
  const table = new Map([v4, v6, unsent].map((p) => [p.sequence, p]));
  const raw4 = { family: 4 as const, kernelOwnsIdentifier: false };
  const dgram4 = { family: 4 as const, kernelOwnsIdentifier: true };
  const raw6 = { family: 6 as const, kernelOwnsIdentifier: false };
  const cases: Array<[string, Decoded, string, typeof raw4 | typeof raw6, Match['kind']]> = [
    ['a reply from the target', echoReply(4, 7), '198.18.0.1', raw4, 'reply'],
    ['a packet the codec ignored', { kind: 'ignored', why: 'not ICMP' }, '198.18.0.1', raw4, 'dropped'],
    ['a sequence not in flight', echoReply(4, 1), '198.18.0.1', raw4, 'dropped'],
    ["another process's identifier", echoReply(4, 7, { identifier: 1 }), '198.18.0.1', raw4, 'dropped'],
    ['any identifier where the kernel owns it', echoReply(4, 7, { identifier: 1 }), '198.18.0.1', dgram4, 'reply'],
    ['a reply on the socket of the other family', echoReply(6, 8), '2001:db8::1', raw4, 'dropped'],
    ['an IPv6 reply from the expanded address', echoReply(6, 8), '2001:0db8:0000:0000:0000:0000:0000:0001', raw6, 'reply'],
    ['a reply from another source', echoReply(4, 7), '198.18.0.2', raw4, 'dropped'],
    ['a reply carrying another cookie', echoReply(4, 7, { cookie: new Uint8Array(8) }), '198.18.0.1', raw4, 'dropped'],
    ['a reply to a probe whose send has not returned', echoReply(4, 9), '198.18.0.3', raw4, 'dropped'],
    ['an error quoting the probe', icmpError(7, '198.18.0.1'), '198.18.0.254', raw4, 'error'],
    ['an error quoting another destination', icmpError(7, '198.18.0.2'), '198.18.0.254', raw4, 'dropped'],
    ['an error quoting another identifier', icmpError(7, '198.18.0.1', { identifier: 1 }), '198.18.0.254', raw4, 'dropped'],
  ];
  for (const [name, decoded, source, socket, kind] of cases) {
    assert.equal(matchReply(decoded, source, socket, (s) => table.get(s), mark).kind, kind, name);
  }
});

test("a matched ICMP error is its probe's error, from its sender, with the next-hop MTU when it says one", () => {
  const probe = probeTo('198.18.0.1', 4, 7);
  const lookup = (s: number) => (s === 7 ? probe : undefined);
  const socket = { family: 4 as const, kernelOwnsIdentifier: false };
  assert.deepEqual(matchReply(icmpError(7, '198.18.0.1', { nextHopMtu: 1400 }), '198.18.0.254', socket, lookup, mark), {
    kind: 'error',
    probe,
    outcome: { kind: 'error', reason: 'fragmentation needed from 198.18.0.254', nextHopMtu: 1400 },
  });
  assert.deepEqual(matchReply(icmpError(7, '198.18.0.1'), '198.18.0.254', socket, lookup, mark), {
    kind: 'error',
    probe,
    outcome: { kind: 'error', reason: 'fragmentation needed from 198.18.0.254' },
  });
  assert.deepEqual(matchReply(echoReply(4, 7), '198.18.0.1', socket, lookup, mark), { kind: 'reply', probe, sentAt: 100 });
});

test('an error from the error queue is decoded from the request it quotes, its MTU kept', () => {
  const request = encodeEchoRequest({ family: 4, sequence: 0x1234, ...mark });
  assert.deepEqual(decodeQueuedError(request, '198.18.0.1', 'packet too big', 1280), {
    kind: 'error',
    reason: 'packet too big',
    identifier: 0x4242,
    sequence: 0x1234,
    quotedDestination: '198.18.0.1',
    nextHopMtu: 1280,
  });
  assert.ok(!('nextHopMtu' in decodeQueuedError(request, '198.18.0.1', 'unreachable', undefined)));
  assert.equal(decodeQueuedError(request.subarray(0, 7), '198.18.0.1', 'unreachable', undefined).kind, 'ignored');
});

test('a clock step is a send-to-read span outside what the monotonic clock allows, by more than the tolerance', () => {
  // Sent at 100 (socket clock), between monotonic 100 and 100; read at monotonic 150.
  const probe = probeTo('198.18.0.1', 4, 7);
  const at = (socketNow: number) =>
    clockStepped(
      probe,
      100,
      () => socketNow,
      () => 150,
    );
  assert.equal(at(150), false, 'the same span');
  assert.equal(at(150 + CLOCK_STEP_TOLERANCE_MS), false, 'within the tolerance');
  assert.equal(at(150 + CLOCK_STEP_TOLERANCE_MS + 0.01), true, 'stepped forward');
  assert.equal(at(150 - CLOCK_STEP_TOLERANCE_MS - 0.01), true, 'stepped back');
  // Descheduled between the send and its return: the bounds widen instead of reading as a step.
  const slow = { ...probe, sentBeforeMonotonic: 90, sentAfterMonotonic: 110 };
  assert.equal(
    clockStepped(
      slow,
      100,
      () => 159,
      () => 150,
    ),
    false,
  );
});

test("a reply's outcome: its RTT in seconds, never negative; later than the timeout is loss", () => {
  assert.deepEqual(replyOutcome(100, 100.25, 500), { kind: 'success', rttSeconds: 0.00025 });
  assert.deepEqual(replyOutcome(100, 99, 500), { kind: 'success', rttSeconds: 0 });
  assert.deepEqual(replyOutcome(100, 600, 500), { kind: 'success', rttSeconds: 0.5 });
  assert.deepEqual(replyOutcome(100, 600.001, 500), { kind: 'timeout' });
});
