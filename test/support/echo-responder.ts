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
 *
 * This file is the process: sockets, timers and signals. Its arguments are read in
 * echo-options.ts, its packets built in echo-packets.ts, its counters kept in echo-stats.ts.
 */
import { createRequire } from 'node:module';
import { createSocket as createUdpSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { MinHeap } from '../../src/probe/heap.js';
import { mulberry32 } from '../../bench/random.js';
import { parseResponderArgs, type CorruptMode, type ResponderArgs } from './echo-options.js';
import { ipv6Bytes, parseV4Request, v4Reply, v6ReplyBody, withV6Checksum } from './echo-packets.js';
import { emptyStats, type ResponderStats } from './echo-stats.js';

// What netns.ts re-exports for the tests that read the responder's counters.
export type { CorruptMode } from './echo-options.js';
export type { ResponderStats } from './echo-stats.js';

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

/** Replies waiting for their delay: one heap, ordered by due time (jitter reorders them), behind one timer. */
class ReplyQueue {
  private readonly heap = new MinHeap<Pending>();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private stopping = false;

  /** `extraDelayMs` is asked once per reply, when it is scheduled. */
  constructor(private readonly extraDelayMs: () => number) {}

  // Flush everything due, then re-arm one timer for the earliest pending reply.
  // setTimeout has 1 ms granularity and measures from the loop's cached clock,
  // so it can fire a little early: we re-check against performance.now() and
  // finish sub-millisecond remainders with setImmediate, so the delay is never
  // shorter than requested.
  private readonly pump = (): void => {
    this.timer = undefined;
    this.immediate = undefined;
    const now = performance.now();
    for (let p = this.heap.peek(); p !== undefined && p.due <= now; p = this.heap.peek()) {
      this.heap.pop();
      p.send();
    }
    this.arm();
  };

  private arm(): void {
    if (this.stopping || this.timer !== undefined || this.immediate !== undefined) return;
    const next = this.heap.peek();
    if (next === undefined) return;
    const wait = next.due - performance.now();
    if (wait >= 1) this.timer = setTimeout(this.pump, Math.floor(wait));
    else this.immediate = setImmediate(this.pump);
  }

  /** Runs `send` once its delay after `receivedAt` (performance.now() ms) has passed; at once without one. */
  schedule(receivedAt: number, send: () => void): void {
    const extra = this.extraDelayMs();
    if (extra <= 0) {
      send();
      return;
    }
    const due = receivedAt + extra;
    const head = this.heap.peek();
    this.heap.push({ due, send });
    // A new earliest deadline needs the timer re-armed sooner.
    if (head === undefined || due < head.due) {
      this.clearTimers();
      this.arm();
    }
  }

  /**
   * Runs the timer/heap path a few times, then `onReady`, so the first real replies are not late
   * by lazy compilation (~1-2 ms otherwise).
   */
  warmUp(onReady: () => void): void {
    let warm = 0;
    const step = (): void => {
      if (++warm < 20) {
        this.heap.push({ due: performance.now() + 0.5, send: step });
        this.arm();
      } else {
        onReady();
      }
    };
    step();
  }

  /** Stops the timer for good; returns how many replies were still waiting. */
  stop(): number {
    this.stopping = true;
    this.clearTimers();
    return this.heap.size;
  }

  private clearTimers(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }
}

/** Builds the reply to one request, spoiled as `corrupt` says; a promise where it needs the kernel's source address. */
type BuildReply = (corrupt: CorruptMode | undefined) => Promise<Buffer> | Buffer;
/** Answers one request: `sock` sends what `build` makes to `dst`. */
type HandleRequest = (receivedAt: number, build: BuildReply, sock: RawSocket, dst: string) => void;

/** Decides loss and corruption once per request; sends (and maybe duplicates) after the delay. */
function requestHandler(opts: ResponderArgs, rand: () => number, stats: ResponderStats, queue: ReplyQueue): HandleRequest {
  const afterSend = (err: Error | null): void => {
    if (err) {
      stats.sendErrors++;
      if (stats.sendErrors <= 5) process.stderr.write(`echo-responder: send failed: ${err.message}\n`);
    } else {
      stats.replies++;
    }
  };
  return (receivedAt, build, sock, dst) => {
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
        (pkt) => queue.schedule(receivedAt, () => emit(pkt)),
        (e: unknown) => {
          stats.sendErrors++;
          process.stderr.write(`echo-responder: ${(e as Error).message}\n`);
        },
      );
    } else {
      queue.schedule(receivedAt, () => emit(built));
    }
  };
}

const onSocketError =
  (family: string) =>
  (err: Error): void => {
    // raw-socket emits (not throws) recv errors; keep going rather than die.
    process.stderr.write(`echo-responder: ${family} socket error: ${err.message}\n`);
  };

/** The raw ICMPv4 socket, answering echo requests with replies whose IP header we write. */
function openV4(raw: RawSocketModule, stats: ResponderStats, handle: HandleRequest): RawSocket {
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
    const request = parseV4Request(buf);
    if (request === 'ignore') return;
    if (request === 'bad') {
      stats.badRequests++;
      return;
    }
    stats.requestsV4++;
    handle(receivedAt, (corrupt) => v4Reply(buf, request, corrupt), s4, source);
  });
  return s4;
}

/** The raw ICMPv6 socket, answering echo requests; the kernel fills in checksums unless --corrupt checksum. */
function openV6(raw: RawSocketModule, opts: ResponderArgs, stats: ResponderStats, handle: HandleRequest): RawSocket {
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
        const body = v6ReplyBody(icmp, corrupt);
        if (opts.corrupt !== 'checksum') return body;
        return v6SourceFor(source).then((src) => withV6Checksum(body, src, ipv6Bytes(source), corrupt));
      },
      s6,
      source,
    );
  });
  return s6;
}

function main(): void {
  let opts: ResponderArgs;
  try {
    opts = parseResponderArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`echo-responder: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const raw = createRequire(import.meta.url)('raw-socket') as RawSocketModule;
  const rand = mulberry32(opts.seed);
  const stats = emptyStats(opts.seed);
  const queue = new ReplyQueue(() => opts.delayMs + (opts.jitterMs > 0 ? rand() * opts.jitterMs : 0));
  const handle = requestHandler(opts, rand, stats, queue);
  const sockets: RawSocket[] = [];
  if (opts.v4) sockets.push(openV4(raw, stats, handle));
  if (opts.v6) sockets.push(openV6(raw, opts, stats, handle));

  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    stats.pending = queue.stop();
    for (const s of sockets) s.close();
    process.stdout.write(`${JSON.stringify(stats)}\n`, () => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // If whoever reads our stdout goes away, there is nobody left to report to.
  process.stdout.on('error', () => process.exit(0));
  queue.warmUp(() => process.stdout.write('ready\n'));
}

// Only run when executed directly, not when imported.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main();
}
