/** Pure ICMP/ICMPv6 echo encoding, decoding and checksums: no sockets, no clocks. */
import type { Family } from '../types.js';
import { canonicalAddress } from './address.js';

export const ICMP4_ECHO_REPLY = 0;
export const ICMP4_DEST_UNREACHABLE = 3;
export const ICMP4_ECHO_REQUEST = 8;
export const ICMP4_TIME_EXCEEDED = 11;
export const ICMP6_DEST_UNREACHABLE = 1;
export const ICMP6_PACKET_TOO_BIG = 2;
export const ICMP6_TIME_EXCEEDED = 3;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;

const ICMP_HEADER_BYTES = 8;
export const COOKIE_BYTES = 8;
const IPV6_HEADER_BYTES = 40;

/** RFC 1071 one's-complement sum of 16-bit words, folded and inverted. */
export function internetChecksum(buf: Uint8Array, start = 0, end = buf.length): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface EchoFields {
  readonly family: Family;
  readonly identifier: number;
  readonly sequence: number;
  /** Per-agent random bytes that a reply must carry back. */
  readonly cookie: Uint8Array;
  readonly payloadBytes: number;
}

/**
 * Builds an echo request. The ICMPv4 checksum is filled in; for ICMPv6 the kernel
 * computes it (it covers a pseudo-header only the kernel knows the source of).
 */
export function encodeEchoRequest(f: EchoFields): Buffer {
  if (f.cookie.length !== COOKIE_BYTES) throw new RangeError(`cookie must be ${COOKIE_BYTES} bytes`);
  if (f.payloadBytes < COOKIE_BYTES) throw new RangeError(`payload must be at least ${COOKIE_BYTES} bytes`);
  const buf = Buffer.alloc(ICMP_HEADER_BYTES + f.payloadBytes);
  buf[0] = f.family === 4 ? ICMP4_ECHO_REQUEST : ICMP6_ECHO_REQUEST;
  buf[1] = 0;
  buf.writeUInt16BE(f.identifier & 0xffff, 4);
  buf.writeUInt16BE(f.sequence & 0xffff, 6);
  buf.set(f.cookie, ICMP_HEADER_BYTES);
  // The rest carries the sequence again so a reply can be checked beyond the header.
  for (let i = ICMP_HEADER_BYTES + COOKIE_BYTES; i < buf.length; i++) buf[i] = (f.sequence + i) & 0xff;
  if (f.family === 4) buf.writeUInt16BE(internetChecksum(buf), 2);
  return buf;
}

/** What arrived on an ICMP socket, reduced to what the prober can act on. */
export type Decoded =
  | { readonly kind: 'echo-reply'; readonly identifier: number; readonly sequence: number; readonly payload: Buffer }
  | {
      readonly kind: 'error';
      readonly reason: string;
      /** Identifier and sequence of our request that the error quotes. */
      readonly identifier: number;
      readonly sequence: number;
      /** Where the quoted request was going. */
      readonly quotedDestination: string;
      /** What a fragmentation-needed or packet-too-big says the path takes. */
      readonly nextHopMtu?: number;
    }
  | { readonly kind: 'ignored'; readonly why: string };

function ignored(why: string): Decoded {
  return { kind: 'ignored', why };
}

function ipv4String(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

function ipv6String(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i).toString(16));
  return canonicalAddress(groups.join(':'));
}

const V4_ERRORS: Record<number, string> = { [ICMP4_DEST_UNREACHABLE]: 'destination unreachable', [ICMP4_TIME_EXCEEDED]: 'time exceeded' };
const V6_ERRORS: Record<number, string> = {
  [ICMP6_DEST_UNREACHABLE]: 'destination unreachable',
  [ICMP6_PACKET_TOO_BIG]: 'packet too big',
  [ICMP6_TIME_EXCEEDED]: 'time exceeded',
};

/** Names an ICMP error type for a log line and the error result. */
export function icmpErrorReason(family: Family, type: number, code: number): string {
  return `${(family === 4 ? V4_ERRORS : V6_ERRORS)[type] ?? `ICMP type ${type}`} (code ${code})`;
}

/**
 * Decodes one datagram. `withIpHeader` is true for raw IPv4 sockets, which hand
 * us the IP header; ICMPv6 and datagram sockets start at the ICMP header.
 * Never throws: anything short, corrupt or foreign comes back as `ignored`.
 */
export function decode(buf: Buffer, family: Family, withIpHeader: boolean): Decoded {
  let at = 0;
  if (family === 4 && withIpHeader) {
    if (buf.length < 20) return ignored('truncated IPv4 header');
    if (buf[0]! >> 4 !== 4) return ignored('not IPv4');
    at = (buf[0]! & 0x0f) * 4;
    if (at < 20 || buf.length < at) return ignored('bad IPv4 header length');
  }
  if (buf.length - at < ICMP_HEADER_BYTES) return ignored('truncated ICMP header');
  // ICMPv6 checksums are verified by the kernel; ICMPv4 ones are ours to check.
  if (family === 4 && withIpHeader && internetChecksum(buf, at) !== 0) return ignored('bad ICMP checksum');
  const type = buf[at]!;
  const code = buf[at + 1]!;
  const replyType = family === 4 ? ICMP4_ECHO_REPLY : ICMP6_ECHO_REPLY;
  if (type === replyType) {
    if (code !== 0) return ignored('echo reply with non-zero code');
    return {
      kind: 'echo-reply',
      identifier: buf.readUInt16BE(at + 4),
      sequence: buf.readUInt16BE(at + 6),
      payload: buf.subarray(at + ICMP_HEADER_BYTES),
    };
  }
  const errorName = (family === 4 ? V4_ERRORS : V6_ERRORS)[type];
  if (errorName === undefined) return ignored(`ICMP type ${type}`);
  return decodeQuoted(buf, at + ICMP_HEADER_BYTES, family, `${errorName} (code ${code})`);
}

/** An ICMP error quotes the offending IP header and at least 8 bytes of our ICMP header. */
function decodeQuoted(buf: Buffer, at: number, family: Family, reason: string): Decoded {
  let inner: number;
  let destination: string;
  if (family === 4) {
    if (buf.length - at < 20 || buf[at]! >> 4 !== 4) return ignored('error without a quoted IPv4 header');
    inner = at + (buf[at]! & 0x0f) * 4;
    if (buf[at + 9] !== 1) return ignored('error quoting a non-ICMP packet');
    destination = ipv4String(buf, at + 16);
  } else {
    if (buf.length - at < IPV6_HEADER_BYTES || buf[at]! >> 4 !== 6) return ignored('error without a quoted IPv6 header');
    if (buf[at + 6] !== 58) return ignored('error quoting a non-ICMPv6 packet');
    inner = at + IPV6_HEADER_BYTES;
    destination = ipv6String(buf, at + 24);
  }
  if (buf.length - inner < ICMP_HEADER_BYTES) return ignored('error with a truncated quote');
  const quotedType = buf[inner]!;
  if (quotedType !== (family === 4 ? ICMP4_ECHO_REQUEST : ICMP6_ECHO_REQUEST)) return ignored('error quoting something else than an echo request');
  return {
    kind: 'error',
    reason,
    identifier: buf.readUInt16BE(inner + 4),
    sequence: buf.readUInt16BE(inner + 6),
    quotedDestination: destination,
  };
}

/** True when a reply's payload carries our cookie and the pattern of its sequence. */
export function payloadMatches(payload: Buffer, cookie: Uint8Array, sequence: number, payloadBytes: number): boolean {
  if (payload.length !== payloadBytes) return false;
  for (let i = 0; i < COOKIE_BYTES; i++) if (payload[i] !== cookie[i]) return false;
  for (let i = COOKIE_BYTES; i < payload.length; i++) {
    if (payload[i] !== ((sequence + ICMP_HEADER_BYTES + i) & 0xff)) return false;
  }
  return true;
}
