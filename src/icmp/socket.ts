import type { Family } from '../types.js';

/** What the prober needs of an ICMP socket: raw.ts (raw-socket) and dgram.ts (our addon) implement it. */
export interface IcmpSocket {
  readonly family: Family;
  readonly mode: 'raw' | 'dgram';
  /** Raw IPv4 sockets deliver the IP header in front of the ICMP message. */
  readonly withIpHeader: boolean;
  /** Whether the kernel rewrites the echo identifier (datagram sockets do), so replies cannot be matched on it. */
  readonly kernelOwnsIdentifier: boolean;
  /**
   * Sends one datagram; `done` gets the time taken right before the send syscall,
   * in the same clock as `receivedAt` below (not necessarily the prober's clock).
   */
  send(packet: Buffer, address: string, done: (error: Error | undefined, sentAt: number) => void): void;
  /** `receivedAt` is the kernel's or, failing that, the earliest user-space time; `packet` is only valid during the call. */
  onMessage(handler: (packet: Buffer, source: string, receivedAt: number) => void): void;
  /**
   * ICMP errors that the kernel hands over out of band (datagram sockets' error queue):
   * `quoted` starts at our ICMP header. Raw sockets deliver errors as ordinary messages.
   * `nextHopMtu`: what a fragmentation-needed or packet-too-big says the path takes.
   */
  onIcmpError?(
    handler: (quoted: Buffer, destination: string, reason: string, offender: string, receivedAt: number, nextHopMtu: number | undefined) => void,
  ): void;
  onError(handler: (error: Error) => void): void;
  /**
   * Reads every datagram and ICMP error already queued, synchronously, through the handlers above.
   * The prober calls it before judging a probe lost: timers run before the poll phase reads replies,
   * so after a stall expiry would otherwise come first. Absent where receive times are user-space
   * (raw): a reply read late cannot be told from a late reply there.
   */
  drain?(): void;
  /** Now in the clock of `sentAt` and `receivedAt`: with the prober's monotonic clock it tells a wall-clock step. */
  now(): number;
  /** Resolves once the native handle is released: the process must not exit before. */
  close(): Promise<void>;
}

/** The socket could not be opened for lack of privilege: the message says what to grant. */
export class IcmpPermissionError extends Error {
  override readonly name = 'IcmpPermissionError';
  /** What was refused and why, without the remedy: for a message that names both kinds of socket. */
  readonly reason: string;
  /** What to grant or set instead, if known. */
  readonly remedy: string | undefined;

  constructor(reason: string, remedy?: string, options?: ErrorOptions) {
    super(remedy ? `${reason}; ${remedy}` : reason, options);
    this.reason = reason;
    this.remedy = remedy;
  }
}

/** The socket can no longer read (its poll failed): probing through it measures nothing until a restart. */
export class SocketFailure extends Error {
  override readonly name = 'SocketFailure';
}
