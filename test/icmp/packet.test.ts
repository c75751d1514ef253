import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decode,
  encodeEchoRequest,
  internetChecksum,
  payloadMatches,
  ICMP4_DEST_UNREACHABLE,
  ICMP4_ECHO_REQUEST,
  ICMP6_ECHO_REQUEST,
  ICMP6_TIME_EXCEEDED,
} from '../../src/icmp/packet.js';
import { FakeSocket, ipv4Header } from '../support/fake-socket.js';

const cookie = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);

test('internet checksum matches the RFC 1071 worked example', () => {
  // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2, so the checksum is 220d.
  assert.equal(internetChecksum(Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0x220d);
  // An odd length pads with a zero byte.
  assert.equal(internetChecksum(Uint8Array.from([0xff])), 0x00ff);
});

test('an encoded IPv4 echo request carries type, identifier, sequence, cookie and a valid checksum', () => {
  const p = encodeEchoRequest({ family: 4, identifier: 0xbeef, sequence: 513, cookie, payloadBytes: 56 });
  assert.equal(p.length, 64);
  assert.equal(p[0], ICMP4_ECHO_REQUEST);
  assert.equal(p.readUInt16BE(4), 0xbeef);
  assert.equal(p.readUInt16BE(6), 513);
  assert.deepEqual([...p.subarray(8, 16)], [...cookie]);
  assert.equal(internetChecksum(p), 0, 'a packet with its checksum sums to zero');
});

test('an IPv6 echo request leaves the checksum to the kernel', () => {
  const p = encodeEchoRequest({ family: 6, identifier: 1, sequence: 2, cookie, payloadBytes: 8 });
  assert.equal(p[0], ICMP6_ECHO_REQUEST);
  assert.equal(p.readUInt16BE(2), 0);
});

test('encode rejects a wrong cookie or a payload too small for it', () => {
  assert.throws(() => encodeEchoRequest({ family: 4, identifier: 1, sequence: 1, cookie: new Uint8Array(4), payloadBytes: 56 }), /cookie must be 8 bytes/);
  assert.throws(() => encodeEchoRequest({ family: 4, identifier: 1, sequence: 1, cookie, payloadBytes: 4 }), /at least 8/);
});

for (const family of [4, 6] as const) {
  test(`an IPv${family} echo reply decodes and its payload matches only its own sequence`, () => {
    const request = encodeEchoRequest({ family, identifier: 77, sequence: 9, cookie, payloadBytes: 32 });
    const d = decode(FakeSocket.replyTo(request, family), family, family === 4);
    assert.equal(d.kind, 'echo-reply');
    if (d.kind !== 'echo-reply') return;
    assert.equal(d.identifier, 77);
    assert.equal(d.sequence, 9);
    assert.equal(payloadMatches(d.payload, cookie, 9, 32), true);
    assert.equal(payloadMatches(d.payload, cookie, 10, 32), false, 'another sequence pattern');
    assert.equal(payloadMatches(d.payload, Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9]), 9, 32), false, 'another cookie');
    assert.equal(payloadMatches(d.payload, cookie, 9, 56), false, 'another length');
  });
}

const request4 = encodeEchoRequest({ family: 4, identifier: 77, sequence: 9, cookie, payloadBytes: 32 });
const malformed: Array<[string, Buffer, 4 | 6, boolean, RegExp]> = [
  ['empty', Buffer.alloc(0), 4, true, /truncated IPv4 header/],
  ['IPv6 in an IPv4 socket', Buffer.from([0x60, ...new Array<number>(30).fill(0)]), 4, true, /not IPv4/],
  ['IHL below 5', Buffer.from([0x44, ...new Array<number>(30).fill(0)]), 4, true, /bad IPv4 header length/],
  ['IP header only', ipv4Header(0), 4, true, /truncated ICMP header/],
  [
    'bad checksum',
    (() => {
      const r = FakeSocket.replyTo(request4, 4);
      r[30] = (r[30]! + 1) & 0xff;
      return r;
    })(),
    4,
    true,
    /bad ICMP checksum/,
  ],
  ['echo request (our own, looped back)', Buffer.concat([ipv4Header(request4.length), request4]), 4, true, /ICMP type 8/],
  [
    'reply with code 1',
    FakeSocket.replyTo(request4, 4, (p) => {
      p[1] = 1;
    }),
    4,
    true,
    /non-zero code/,
  ],
  ['short ICMPv6', Buffer.from([129, 0, 0]), 6, false, /truncated ICMP header/],
  ['router advertisement', Buffer.from([134, 0, 0, 0, 0, 0, 0, 0]), 6, false, /ICMP type 134/],
];
for (const [name, packet, family, withIp, why] of malformed) {
  test(`decode ignores ${name}`, () => {
    const d = decode(packet, family, withIp);
    assert.equal(d.kind, 'ignored');
    if (d.kind === 'ignored') assert.match(d.why, why);
  });
}

test('an ICMPv4 destination unreachable quoting our request decodes to its identifier, sequence and destination', () => {
  const quotedIp = ipv4Header(request4.length);
  quotedIp.set([198, 18, 0, 11], 16);
  const body = Buffer.concat([quotedIp, request4.subarray(0, 8)]);
  const icmp = Buffer.concat([Buffer.from([ICMP4_DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0]), body]);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  const d = decode(Buffer.concat([ipv4Header(icmp.length), icmp]), 4, true);
  assert.deepEqual(d, { kind: 'error', reason: 'destination unreachable (code 1)', identifier: 77, sequence: 9, quotedDestination: '198.18.0.11' });
});

test('an ICMPv6 time exceeded quoting our request decodes with a compressed destination', () => {
  const request6 = encodeEchoRequest({ family: 6, identifier: 5, sequence: 6, cookie, payloadBytes: 8 });
  const ip6 = Buffer.alloc(40);
  ip6[0] = 0x60;
  ip6[6] = 58;
  Buffer.from('fd006d656e740000000000000000000b', 'hex').copy(ip6, 24);
  const packet = Buffer.concat([Buffer.from([ICMP6_TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0]), ip6, request6]);
  assert.deepEqual(decode(packet, 6, false), {
    kind: 'error',
    reason: 'time exceeded (code 0)',
    identifier: 5,
    sequence: 6,
    quotedDestination: 'fd00:6d65:6e74::b',
  });
});

test('an ICMP error quoting a UDP packet or a truncated quote is ignored', () => {
  const udpIp = ipv4Header(8, 17);
  const icmp = Buffer.concat([Buffer.from([ICMP4_DEST_UNREACHABLE, 3, 0, 0, 0, 0, 0, 0]), udpIp, Buffer.alloc(8)]);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  assert.equal(decode(Buffer.concat([ipv4Header(icmp.length), icmp]), 4, true).kind, 'ignored');
  const short = Buffer.concat([Buffer.from([ICMP4_DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0]), ipv4Header(8), Buffer.alloc(3)]);
  short.writeUInt16BE(internetChecksum(short), 2);
  assert.equal(decode(Buffer.concat([ipv4Header(short.length), short]), 4, true).kind, 'ignored');
});

test('decode never throws on random bytes', () => {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let i = 0; i < 5000; i++) {
    const len = next() % 120;
    const buf = Buffer.from(Array.from({ length: len }, next));
    if (len > 0 && i % 2 === 0) buf[0] = 0x45;
    assert.doesNotThrow(() => decode(buf, 4, true));
    assert.doesNotThrow(() => decode(buf, 6, false));
  }
});
