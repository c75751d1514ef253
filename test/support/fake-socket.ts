import { ICMP4_ECHO_REPLY, ICMP6_ECHO_REPLY, internetChecksum } from '../../src/icmp/packet.js';
import type { Family } from '../../src/types.js';
import type { IcmpSocket } from '../../src/icmp/socket.js';

export interface Sent {
  readonly packet: Buffer;
  readonly address: string;
  readonly sentAt: number;
}

/** An IcmpSocket that records what is sent and lets a test deliver any datagram. */
export class FakeSocket implements IcmpSocket {
  readonly mode = 'raw' as const;
  readonly withIpHeader: boolean;
  readonly kernelOwnsIdentifier = false;
  readonly sent: Sent[] = [];
  /** Every send fails with this, while set. */
  sendError: Error | undefined;
  /** The next sends fail with these, one each, before `sendError` applies: a parked asynchronous error. */
  readonly sendErrors: Error[] = [];
  /** When set, every request sent is answered: the "kernel" receives the reply this long after the send. */
  echoAfterMs: number | undefined;
  /** How far the socket's wall clock is from the test clock: a step moves it. */
  wallOffsetMs = 0;
  /** Runs right before the send "syscall". */
  beforeSyscall: (() => void) | undefined;
  /** Runs between the send "syscall" and its completion callback. */
  afterSyscall: (() => void) | undefined;
  closed = false;
  drains = 0;
  private handler: ((packet: Buffer, source: string, receivedAt: number) => void) | undefined;
  /** Received by the "kernel", stamped, not yet read by the process. */
  private readonly queued: Array<{ packet: Buffer; source: string; receivedAt: number }> = [];

  constructor(
    readonly family: Family,
    private readonly clockNow: () => number,
  ) {
    this.withIpHeader = family === 4;
  }

  now(): number {
    return this.clockNow() + this.wallOffsetMs;
  }

  send(packet: Buffer, address: string, done: (error: Error | undefined, sentAt: number) => void): void {
    // The process may stop between its last clock reading and the syscall.
    this.beforeSyscall?.();
    const error = this.sendErrors.shift() ?? this.sendError;
    // As sendto with a parked error: it fails and nothing goes out.
    if (!error) {
      this.sent.push({ packet: Buffer.from(packet), address, sentAt: this.now() });
      if (this.echoAfterMs !== undefined)
        this.queued.push({ packet: FakeSocket.replyTo(packet, this.family), source: address, receivedAt: this.now() + this.echoAfterMs });
    }
    const sentAt = this.now();
    // The process may be descheduled between the stamp and its return to JS.
    this.afterSyscall?.();
    done(error, sentAt);
  }

  /** The kernel receives a datagram now and stamps it; the process reads it at the next drain (or deliverQueued). */
  queue(packet: Buffer, source: string): void {
    this.queued.push({ packet: Buffer.from(packet), source, receivedAt: this.now() });
  }

  drain(): void {
    this.drains++;
    this.deliverQueued();
  }

  /** The poll phase reading what the kernel has received by now, in the order it arrived. */
  deliverQueued(): void {
    const now = this.now();
    const ready = this.queued.filter((q) => q.receivedAt <= now).sort((a, b) => a.receivedAt - b.receivedAt);
    this.queued.splice(0, this.queued.length, ...this.queued.filter((q) => q.receivedAt > now));
    for (const { packet, source, receivedAt } of ready) this.handler?.(packet, source, receivedAt);
  }

  onMessage(handler: (packet: Buffer, source: string, receivedAt: number) => void): void {
    this.handler = handler;
  }

  private errorHandler: ((error: Error) => void) | undefined;
  private icmpErrorHandler: Parameters<NonNullable<IcmpSocket['onIcmpError']>>[0] | undefined;

  onIcmpError(handler: Parameters<NonNullable<IcmpSocket['onIcmpError']>>[0]): void {
    this.icmpErrorHandler = handler;
  }

  /** An ICMP error quoting `request`, as a datagram socket's error queue hands it over (with the MTU of a fragmentation needed). */
  deliverIcmpError(request: Buffer, destination: string, reason: string, offender: string, nextHopMtu?: number): void {
    this.icmpErrorHandler?.(request, destination, reason, offender, this.now(), nextHopMtu);
  }

  onError(handler: (error: Error) => void): void {
    this.errorHandler = handler;
  }

  /** An 'error' event, as raw-socket emits one when poll or a receive fails. */
  emitError(error: Error): void {
    if (!this.errorHandler) throw error; // like an EventEmitter without an 'error' listener
    this.errorHandler(error);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** Delivers a raw datagram as the kernel would hand it over. */
  deliver(packet: Buffer, source: string): void {
    this.handler?.(packet, source, this.now());
  }

  /** Builds the echo reply a well-behaved host would send to `request`, with an IPv4 header for raw IPv4. */
  static replyTo(request: Buffer, family: Family, change?: (icmp: Buffer) => void): Buffer {
    const icmp = Buffer.from(request);
    icmp[0] = family === 4 ? ICMP4_ECHO_REPLY : ICMP6_ECHO_REPLY;
    icmp.writeUInt16BE(0, 2);
    change?.(icmp);
    if (family === 4) {
      icmp.writeUInt16BE(internetChecksum(icmp), 2);
      return Buffer.concat([ipv4Header(icmp.length), icmp]);
    }
    return icmp;
  }
}

/** A minimal IPv4 header (no options) as a raw socket delivers it. */
export function ipv4Header(payloadLength: number, protocol = 1): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payloadLength, 2);
  h[8] = 64;
  h[9] = protocol;
  return h;
}
