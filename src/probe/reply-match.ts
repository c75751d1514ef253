/** Which probe in flight a datagram or an ICMP error answers, and what the answer says. */
import { canonicalAddress } from '../icmp/address.js';
import { payloadMatches, type Decoded } from '../icmp/packet.js';
import type { IcmpSocket } from '../icmp/socket.js';
import type { Outcome } from '../types.js';
import type { InFlight } from './in-flight.js';

/**
 * How far the send-to-read interval may differ between the socket's clock (CLOCK_REALTIME: kernel
 * timestamps) and the monotonic clock before the RTT is thrown away: NTP slews by at most 0.5 ms
 * per second, so more is a step, which would record a 0 s or an inflated RTT.
 */
export const CLOCK_STEP_TOLERANCE_MS = 1;

/** What every probe of this prober carries, and so every reply to it must. */
export interface ProbeMark {
  /** Random per agent: replies to other processes' pings carry another one. */
  readonly identifier: number;
  /** Random per agent: 8 bytes every reply must carry back. */
  readonly cookie: Uint8Array;
  readonly payloadBytes: number;
}

/**
 * An ICMP error from a socket's error queue, decoded as if it had come as a datagram: `quoted` starts
 * at the header of the echo request it is about. Too short to quote one, it is ignored.
 */
export function decodeQueuedError(quoted: Buffer, destination: string, reason: string, nextHopMtu: number | undefined): Decoded {
  if (quoted.length < 8) return { kind: 'ignored', why: 'quoted request shorter than an ICMP header' };
  return {
    kind: 'error',
    reason,
    identifier: quoted.readUInt16BE(4),
    sequence: quoted.readUInt16BE(6),
    quotedDestination: destination,
    ...(nextHopMtu === undefined ? {} : { nextHopMtu }),
  };
}

/** `dropped`: answers none of our probes in flight; `error`: an ICMP error about `probe`; `reply`: its echo reply. */
export type Match =
  | { readonly kind: 'dropped' }
  | { readonly kind: 'error'; readonly probe: InFlight; readonly outcome: Outcome }
  | { readonly kind: 'reply'; readonly probe: InFlight; readonly sentAt: number };

/**
 * Matches what `socket` received from `source` to a probe in flight: on identifier (unless the
 * kernel owns it), sequence and family; an error also on the destination it quotes, a reply on its
 * source, the cookie and the payload. Anything else is dropped, never blamed on a probe.
 */
export function matchReply(
  decoded: Decoded,
  source: string,
  socket: Pick<IcmpSocket, 'family' | 'kernelOwnsIdentifier'>,
  inFlight: (sequence: number) => InFlight | undefined,
  mark: ProbeMark,
): Match {
  if (decoded.kind === 'ignored') return { kind: 'dropped' };
  const probe = inFlight(decoded.sequence);
  const ours = socket.kernelOwnsIdentifier || decoded.identifier === mark.identifier;
  if (!probe || !ours || probe.slot.target.family !== socket.family) return { kind: 'dropped' };
  if (decoded.kind === 'error') {
    if (canonicalAddress(decoded.quotedDestination) !== probe.address) return { kind: 'dropped' };
    const mtu = decoded.nextHopMtu === undefined ? {} : { nextHopMtu: decoded.nextHopMtu };
    return { kind: 'error', probe, outcome: { kind: 'error', reason: `${decoded.reason} from ${source}`, ...mtu } };
  }
  if (
    probe.sentAt === undefined ||
    canonicalAddress(source) !== probe.address ||
    !payloadMatches(decoded.payload, mark.cookie, probe.sequence, mark.payloadBytes)
  ) {
    return { kind: 'dropped' };
  }
  return { kind: 'reply', probe, sentAt: probe.sentAt };
}

/**
 * Whether the socket's clock stepped while `probe` was out. The kernel's stamp lies between the send
 * and now. Each end is bracketed by two monotonic readings, so a process descheduled between them
 * (CPU throttling) widens the bounds but never reads as a step.
 */
export function clockStepped(probe: InFlight, sentAt: number, socketNow: () => number, monotonicNow: () => number): boolean {
  const readBefore = monotonicNow();
  const spanMs = socketNow() - sentAt;
  const readAfter = monotonicNow();
  const shortest = readBefore - probe.sentAfterMonotonic;
  const longest = readAfter - probe.sentBeforeMonotonic;
  return spanMs < shortest - CLOCK_STEP_TOLERANCE_MS || spanMs > longest + CLOCK_STEP_TOLERANCE_MS;
}

/** The outcome of a reply received at `receivedAt` to a probe sent at `sentAt` (the socket's clock). */
export function replyOutcome(sentAt: number, receivedAt: number, timeoutMs: number): Outcome {
  const rttMs = receivedAt - sentAt;
  // A reply that arrived after the deadline is loss, even if its timer has not run yet.
  return rttMs > timeoutMs ? { kind: 'timeout' } : { kind: 'success', rttSeconds: Math.max(0, rttMs) / 1000 };
}
