/**
 * User-space ICMP/ICMPv6 echo responder with injectable delay, jitter, loss,
 * duplication and corruption. This kernel has no netem, so e2e tests switch
 * off the kernel's echo replies in a namespace (icmp_echo_ignore_all) and run
 * this program there instead.
 *
 *   node dist/test/support/echo-responder.js --delay-ms 20 --jitter-ms 5 \
 *        --loss 0.3 --seed 42 [--duplicate] [--corrupt checksum|truncate|identifier]
 *        [--corrupt-ratio 1] [--family both|4|6] [--drop-from ADDR,...]
 *
 * Prints `ready` on stdout once both raw sockets are open, and a one-line JSON
 * summary (ResponderStats) on SIGTERM/SIGINT, then exits 0.
 */
import { createRequire } from 'node:module';
import { createSocket as createUdpSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { MinHeap } from '../../src/probe/heap.js';
import { mulberry32 } from '../../bench/random.js';

export type CorruptMode = 'checksum' | 'truncate' | 'identifier' | 'unreachable';

export interface ResponderStats {
  /** Well-formed echo requests seen (both families). */
  requests: number;
  requestsV4: number;
  requestsV6: number;
  /** Requests dropped on purpose (--loss). */
  dropped: number;
  /** Reply packets handed to the kernel successfully (duplicates included). */
  replies: number;
  /** Extra copies sent because of --duplicate. */
  duplicates: number;
  /** Replies sent corrupted. */
  corrupted: number;
  sendErrors: number;
  /** ICMPv4 echo requests ignored because of a bad checksum or short packet. */
  badRequests: number;
  /** Replies still waiting for their delay when the responder stopped. */
  pending: number;
  seed: number;
}

// ---- raw-socket has no type declarations; describe the part we use. ----
interface RawSocket {
  on(event: 'message', cb: (buf: Buffer, source: string) => void): RawSocket;
  on(event: 'error', cb: (err: Error) => void): RawSocket;
  on(event: 'close', cb: () => void): RawSocket;
  send(buf: Buffer, offset: number, length: number, address: string, after: (err: Error | null, bytes: number) => void): RawSocket;
  setOption(level: number, option: number, value: number): void;
  close(): RawSocket;
  // Internals of raw-socket 1.8.x used by sendNow(); checked at run time.
  wrap?: { send(buf: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): void };
  requests?: unknown[];
}
interface RawSocketModule {
  createSocket(opts: { addressFamily: number; protocol: number; bufferSize?: number }): RawSocket;
  createChecksum(...parts: Array<Buffer | { buffer: Buffer; offset: number; length: number }>): number;
  AddressFamily: { IPv4: number; IPv6: number };
  Protocol: { ICMP: number; ICMPv6: number };
  SocketLevel: { SOL_SOCKET: number; IPPROTO_IP: number; IPPROTO_IPV6: number };
  SocketOption: { SO_RCVBUF: number; SO_SNDBUF: number; IP_HDRINCL: number };
}

// Linux constants raw-socket does not export.
const SOL_RAW = 255;
const IPV6_CHECKSUM = 7;

/**
 * raw-socket's send() queues the packet and sends it on the next "writable"
 * poll event, which adds 0.2-3 ms of event-loop latency to every reply. The
 * underlying non-blocking sendto() is synchronous, so call it directly and
 * fall back to the queue when it fails (e.g. EAGAIN) or packets are already
 * queued (keeps ordering).
 */
function sendNow(sock: RawSocket, pkt: Buffer, dst: string, cb: (err: Error | null) => void): void {
  if (sock.wrap && Array.isArray(sock.requests) && sock.requests.length === 0) {
    try {
      sock.wrap.send(pkt, 0, pkt.length, dst, () => cb(null));
      return;
    } catch {
      /* fall through to the queued path, which reports persistent errors */
    }
  }
  sock.send(pkt, 0, pkt.length, dst, (err) => cb(err));
}

/** A pending reply; the agent's own heap orders them by due time (jitter reorders them). */
interface Pending {
  due: number;
  send: () => void;
}

interface Options {
  delayMs: number;
  jitterMs: number;
  loss: number;
  seed: number;
  duplicate: boolean;
  corrupt: CorruptMode | undefined;
  corruptRatio: number;
  v4: boolean;
  v6: boolean;
  /** Requests from these sources are never answered: one lossy pair, every other pair fine. */
  dropFrom: ReadonlySet<string>;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      'delay-ms': { type: 'string', default: '0' },
      'jitter-ms': { type: 'string', default: '0' },
      loss: { type: 'string', default: '0' },
      seed: { type: 'string' },
      duplicate: { type: 'boolean', default: false },
      corrupt: { type: 'string' },
      'corrupt-ratio': { type: 'string', default: '1' },
      family: { type: 'string', default: 'both' },
      'drop-from': { type: 'string', default: '' },
    },
    strict: true,
  });
  const num = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}]`);
    return n;
  };
  const corrupt = values.corrupt;
  if (corrupt !== undefined && corrupt !== 'checksum' && corrupt !== 'truncate' && corrupt !== 'identifier' && corrupt !== 'unreachable') {
    throw new Error('--corrupt must be checksum, truncate, identifier or unreachable');
  }
  const family = values.family;
  if (family !== 'both' && family !== '4' && family !== '6') throw new Error('--family must be both, 4 or 6');
  return {
    delayMs: num('delay-ms', values['delay-ms'], 0, 600_000),
    jitterMs: num('jitter-ms', values['jitter-ms'], 0, 600_000),
    loss: num('loss', values.loss, 0, 1),
    seed: values.seed === undefined ? randomInt(0, 2 ** 32) : num('seed', values.seed, 0, 2 ** 32 - 1),
    duplicate: values.duplicate,
    corrupt,
    corruptRatio: num('corrupt-ratio', values['corrupt-ratio'], 0, 1),
    v4: family !== '6',
    v6: family !== '4',
    dropFrom: new Set(
      values['drop-from']
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a !== ''),
    ),
  };
}

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

/**
 * The IPv6 source the kernel would pick for a reply to `dst`: a connected UDP
 * socket reports it. Only needed for --corrupt checksum, where we must compute
 * the real ICMPv6 checksum (it covers a pseudo-header with both addresses) in
 * order to send a wrong one. Cached per destination.
 */
const v6SourceCache = new Map<string, Promise<Buffer>>();
function v6SourceFor(dst: string): Promise<Buffer> {
  let p = v6SourceCache.get(dst);
  if (!p) {
    p = new Promise<Buffer>((resolve, reject) => {
      const s = createUdpSocket('udp6');
      s.on('error', (e) => {
        s.close();
        reject(e);
      });
      s.connect(9, dst, () => {
        const local = s.address().address;
        s.close();
        resolve(ipv6Bytes(local));
      });
    });
    v6SourceCache.set(dst, p);
  }
  return p;
}

function main(): void {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`echo-responder: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const raw = createRequire(import.meta.url)('raw-socket') as RawSocketModule;
  const rand = mulberry32(opts.seed);
  const stats: ResponderStats = {
    requests: 0,
    requestsV4: 0,
    requestsV6: 0,
    dropped: 0,
    replies: 0,
    duplicates: 0,
    corrupted: 0,
    sendErrors: 0,
    badRequests: 0,
    pending: 0,
    seed: opts.seed,
  };
  const heap = new MinHeap<Pending>();
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  let stopping = false;

  // Flush everything due, then re-arm one timer for the earliest pending reply.
  // setTimeout has 1 ms granularity and measures from the loop's cached clock,
  // so it can fire a little early: we re-check against performance.now() and
  // finish sub-millisecond remainders with setImmediate, so the delay is never
  // shorter than requested.
  const pump = (): void => {
    timer = undefined;
    immediate = undefined;
    const now = performance.now();
    for (let p = heap.peek(); p !== undefined && p.due <= now; p = heap.peek()) {
      heap.pop();
      p.send();
    }
    arm();
  };
  const arm = (): void => {
    if (stopping || timer !== undefined || immediate !== undefined) return;
    const next = heap.peek();
    if (next === undefined) return;
    const wait = next.due - performance.now();
    if (wait >= 1) timer = setTimeout(pump, Math.floor(wait));
    else immediate = setImmediate(pump);
  };
  const schedule = (receivedAt: number, send: () => void): void => {
    const extra = opts.delayMs + (opts.jitterMs > 0 ? rand() * opts.jitterMs : 0);
    if (extra <= 0) {
      send();
      return;
    }
    const due = receivedAt + extra;
    const head = heap.peek();
    heap.push({ due, send });
    // A new earliest deadline needs the timer re-armed sooner.
    if (head === undefined || due < head.due) {
      if (timer !== undefined) clearTimeout(timer);
      if (immediate !== undefined) clearImmediate(immediate);
      timer = undefined;
      immediate = undefined;
      arm();
    }
  };

  const afterSend = (err: Error | null): void => {
    if (err) {
      stats.sendErrors++;
      if (stats.sendErrors <= 5) process.stderr.write(`echo-responder: send failed: ${err.message}\n`);
    } else {
      stats.replies++;
    }
  };
  /** Decide loss/corruption once per request; send (and maybe duplicate) after the delay. */
  const handle = (receivedAt: number, build: (corrupt: CorruptMode | undefined) => Promise<Buffer> | Buffer, sock: RawSocket, dst: string): void => {
    stats.requests++;
    if (opts.dropFrom.has(dst) || (opts.loss > 0 && rand() < opts.loss)) {
      stats.dropped++;
      return;
    }
    const corrupt = opts.corrupt !== undefined && (opts.corruptRatio >= 1 || rand() < opts.corruptRatio) ? opts.corrupt : undefined;
    const emit = (pkt: Buffer): void => {
      if (corrupt) stats.corrupted++;
      sendNow(sock, pkt, dst, afterSend);
      if (opts.duplicate) {
        stats.duplicates++;
        sendNow(sock, pkt, dst, afterSend);
      }
    };
    // Build now: raw-socket reuses its receive buffer for the next packet.
    const built = build(corrupt);
    if (built instanceof Promise) {
      built.then(
        (pkt) => schedule(receivedAt, () => emit(pkt)),
        (e: unknown) => {
          stats.sendErrors++;
          process.stderr.write(`echo-responder: ${(e as Error).message}\n`);
        },
      );
    } else {
      schedule(receivedAt, () => emit(built));
    }
  };

  const sockets: RawSocket[] = [];
  const onSocketError =
    (family: string) =>
    (err: Error): void => {
      // raw-socket emits (not throws) recv errors; keep going rather than die.
      process.stderr.write(`echo-responder: ${family} socket error: ${err.message}\n`);
    };

  if (opts.v4) {
    const s4 = raw.createSocket({ addressFamily: raw.AddressFamily.IPv4, protocol: raw.Protocol.ICMP, bufferSize: 65536 });
    // We write the IP header ourselves so the reply's source is exactly the
    // address that was pinged (e.g. one of thousands of /32s on lo), not
    // whatever the kernel would pick by routing.
    s4.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
    s4.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, 4 << 20);
    s4.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_SNDBUF, 4 << 20);
    s4.on('error', onSocketError('ipv4'));
    s4.on('message', (buf, source) => {
      const receivedAt = performance.now();
      if (buf.length < 20 || buf[0]! >> 4 !== 4) return;
      const ihl = (buf[0]! & 0x0f) * 4;
      if (buf.length < ihl + 8 || buf[ihl] !== 8) return; // only echo requests
      const dstFirst = buf[16]!;
      if (dstFirst >= 224) return; // multicast/broadcast: not ours to answer
      const icmpLen = Math.min(buf.length, buf.readUInt16BE(2)) - ihl;
      if (icmpLen < 8 || inetChecksum([buf.subarray(ihl, ihl + icmpLen)]) !== 0) {
        stats.badRequests++;
        return;
      }
      stats.requestsV4++;
      const tos = buf[1]!;
      const localAddr = Buffer.from(buf.subarray(16, 20));
      const icmp = Buffer.from(buf.subarray(ihl, ihl + icmpLen));
      handle(
        receivedAt,
        (corrupt) => {
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
          pkt[1] = tos;
          pkt.writeUInt16BE(pkt.length, 2); // kernel rewrites tot_len, id and header checksum
          pkt[8] = 64; // TTL
          pkt[9] = 1; // ICMP
          localAddr.copy(pkt, 12); // source = the address that was pinged
          buf.copy(pkt, 16, 12, 16); // destination = the requester
          body.copy(pkt, 20);
          return pkt;
        },
        s4,
        source,
      );
    });
    sockets.push(s4);
  }

  if (opts.v6) {
    const s6 = raw.createSocket({ addressFamily: raw.AddressFamily.IPv6, protocol: raw.Protocol.ICMPv6, bufferSize: 65536 });
    s6.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, 4 << 20);
    s6.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_SNDBUF, 4 << 20);
    // The kernel fills in ICMPv6 checksums on this socket. To send a bad one we
    // must compute it ourselves, which means turning that off (Linux allows it
    // only at the SOL_RAW level for ICMPv6 sockets).
    if (opts.corrupt === 'checksum') s6.setOption(SOL_RAW, IPV6_CHECKSUM, 0xffffffff);
    s6.on('error', onSocketError('ipv6'));
    // No IPv6 header is delivered, so the reply source is kernel-chosen. With
    // one global address per interface (our topology) that is the pinged one.
    s6.on('message', (buf, source) => {
      const receivedAt = performance.now();
      if (buf.length < 8 || buf[0] !== 128) return; // only echo requests (NDP/MLD arrive here too)
      stats.requestsV6++;
      const icmp = Buffer.from(buf);
      handle(
        receivedAt,
        (corrupt) => {
          let body = icmp;
          body[0] = 129;
          body[1] = 0;
          body.writeUInt16BE(0, 2);
          if (corrupt === 'truncate') body = body.subarray(0, Math.max(8, body.length >> 1));
          if (corrupt === 'identifier') body.writeUInt16BE(body.readUInt16BE(4) ^ 0xffff, 4);
          if (opts.corrupt !== 'checksum') return body;
          const finalBody = body;
          return v6SourceFor(source).then((src) => {
            const pseudo = Buffer.alloc(40);
            src.copy(pseudo, 0);
            ipv6Bytes(source).copy(pseudo, 16);
            pseudo.writeUInt32BE(finalBody.length, 32);
            pseudo[39] = 58;
            let sum = inetChecksum([pseudo, finalBody]);
            if (corrupt === 'checksum') sum ^= 0x00ff;
            finalBody.writeUInt16BE(sum, 2);
            return finalBody;
          });
        },
        s6,
        source,
      );
    });
    sockets.push(s6);
  }

  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    if (timer !== undefined) clearTimeout(timer);
    if (immediate !== undefined) clearImmediate(immediate);
    stats.pending = heap.size;
    for (const s of sockets) s.close();
    process.stdout.write(`${JSON.stringify(stats)}\n`, () => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // If whoever reads our stdout goes away, there is nobody left to report to.
  process.stdout.on('error', () => process.exit(0));

  // Run the timer/heap path a few times before announcing readiness so the
  // first real replies are not late by lazy compilation (~1-2 ms otherwise).
  let warm = 0;
  const warmUp = (): void => {
    if (++warm < 20) {
      heap.push({ due: performance.now() + 0.5, send: warmUp });
      arm();
    } else {
      process.stdout.write('ready\n');
    }
  };
  warmUp();
}

// Only run when executed directly (tests import the types from this module).
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main();
}
