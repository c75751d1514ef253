/**
 * The echo responder's packets, as pure functions: which ICMPv4 requests to answer, and the replies
 * for both families, whole or corrupted on purpose (echo-responder.ts sends them).
 */
import type { CorruptMode } from './echo-options.js';

/** Standard internet checksum (RFC 1071) over several buffers, as if concatenated. */
export function inetChecksum(parts: Buffer[]): number {
  let sum = 0;
  let odd: number | undefined;
  for (const b of parts) {
    let i = 0;
    if (odd !== undefined && b.length > 0) {
      sum += (odd << 8) | b[0]!;
      odd = undefined;
      i = 1;
    }
    for (; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
    if (i < b.length) odd = b[i]!;
  }
  if (odd !== undefined) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** 16 bytes of an IPv6 address (handles `::` and embedded IPv4 tails). */
export function ipv6Bytes(addr: string): Buffer {
  const a = addr.split('%')[0]!;
  let groups: string[];
  const tailV4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  let s = a;
  if (tailV4) {
    const o = tailV4[1]!.split('.').map(Number);
    s = a.slice(0, -tailV4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  if (s.includes('::')) {
    const [head, tail] = s.split('::') as [string, string];
    const h = head === '' ? [] : head.split(':');
    const t = tail === '' ? [] : tail.split(':');
    groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  } else {
    groups = s.split(':');
  }
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** An ICMPv4 echo request worth answering, copied out of the receive buffer raw-socket reuses. */
export interface V4Request {
  /** IP header length in bytes. */
  readonly ihl: number;
  /** ICMP message length in bytes (the IP total length, bounded by what arrived, less the header). */
  readonly icmpLen: number;
  readonly tos: number;
  /** The address that was pinged. */
  readonly localAddr: Buffer;
  readonly icmp: Buffer;
}

/**
 * Reads an IPv4 packet from the raw socket: `ignore` for anything but an echo request to a unicast
 * address, `bad` for an echo request that is short or fails its checksum.
 */
export function parseV4Request(buf: Buffer): V4Request | 'ignore' | 'bad' {
  if (buf.length < 20 || buf[0]! >> 4 !== 4) return 'ignore';
  const ihl = (buf[0]! & 0x0f) * 4;
  if (buf.length < ihl + 8 || buf[ihl] !== 8) return 'ignore'; // only echo requests
  const dstFirst = buf[16]!;
  if (dstFirst >= 224) return 'ignore'; // multicast/broadcast: not ours to answer
  const icmpLen = Math.min(buf.length, buf.readUInt16BE(2)) - ihl;
  if (icmpLen < 8 || inetChecksum([buf.subarray(ihl, ihl + icmpLen)]) !== 0) return 'bad';
  return { ihl, icmpLen, tos: buf[1]!, localAddr: Buffer.from(buf.subarray(16, 20)), icmp: Buffer.from(buf.subarray(ihl, ihl + icmpLen)) };
}

/**
 * The IPv4 reply to `request` (read from `buf`, which must still hold it), IP header included so the
 * source is the pinged address. Its ICMP body is written in place.
 */
export function v4Reply(buf: Buffer, request: V4Request, corrupt: CorruptMode | undefined): Buffer {
  const { ihl, icmpLen, icmp } = request;
  // 'unreachable' answers with an ICMP error quoting the request, as a router would.
  let body = corrupt === 'unreachable' ? Buffer.concat([Buffer.from([3, 13, 0, 0, 0, 0, 0, 0]), buf.subarray(0, ihl + Math.min(icmpLen, 64))]) : icmp;
  if (corrupt !== 'unreachable') {
    body[0] = 0; // echo reply
    body[1] = 0;
  }
  if (corrupt === 'truncate') body = body.subarray(0, Math.max(8, body.length >> 1));
  if (corrupt === 'identifier') body.writeUInt16BE(body.readUInt16BE(4) ^ 0xffff, 4);
  body.writeUInt16BE(0, 2);
  let sum = inetChecksum([body]);
  // XOR 0x00ff never maps a checksum onto its one's-complement twin
  // (0x0000 <-> 0xffff), so the result is always invalid.
  if (corrupt === 'checksum') sum ^= 0x00ff;
  body.writeUInt16BE(sum, 2);
  const pkt = Buffer.alloc(20 + body.length);
  pkt[0] = 0x45;
  pkt[1] = request.tos;
  pkt.writeUInt16BE(pkt.length, 2); // kernel rewrites tot_len, id and header checksum
  pkt[8] = 64; // TTL
  pkt[9] = 1; // ICMP
  request.localAddr.copy(pkt, 12); // source = the address that was pinged
  buf.copy(pkt, 16, 12, 16); // destination = the requester
  body.copy(pkt, 20);
  return pkt;
}

/** The ICMPv6 echo reply body for the request `icmp` (written in place), its checksum left at 0 for the kernel. */
export function v6ReplyBody(icmp: Buffer, corrupt: CorruptMode | undefined): Buffer {
  let body = icmp;
  body[0] = 129;
  body[1] = 0;
  body.writeUInt16BE(0, 2);
  if (corrupt === 'truncate') body = body.subarray(0, Math.max(8, body.length >> 1));
  if (corrupt === 'identifier') body.writeUInt16BE(body.readUInt16BE(4) ^ 0xffff, 4);
  return body;
}

/**
 * Writes the ICMPv6 checksum of `body` from `source` to `destination` (it covers a pseudo-header with
 * both addresses), a wrong one for --corrupt checksum. Returns `body`.
 */
export function withV6Checksum(body: Buffer, source: Buffer, destination: Buffer, corrupt: CorruptMode | undefined): Buffer {
  const pseudo = Buffer.alloc(40);
  source.copy(pseudo, 0);
  destination.copy(pseudo, 16);
  pseudo.writeUInt32BE(body.length, 32);
  pseudo[39] = 58;
  let sum = inetChecksum([pseudo, body]);
  if (corrupt === 'checksum') sum ^= 0x00ff;
  body.writeUInt16BE(sum, 2);
  return body;
}
