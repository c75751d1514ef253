/**
 * A Prober on fake sockets and a manual clock, for the prober-*.test.ts files: every result and
 * discard recorded with the time it came, and the packets those tests deliver to it.
 */
import { ICMP4_DEST_UNREACHABLE, internetChecksum } from '../../src/icmp/packet.js';
import { Prober } from '../../src/probe/prober.js';
import type { Family, Outcome, Target } from '../../src/types.js';
import { ManualClock } from './fake-clock.js';
import { FakeSocket, ipv4Header } from './fake-socket.js';

export const cookie = Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2]);
export const IDENTIFIER = 0x4242;

export interface ProberSetup {
  intervalMs?: number;
  timeoutMs?: number;
  families?: Family[];
  sweepIntervalMs?: number;
  maxProbesPerSecond?: number;
  sendBatchMs?: number;
  onSocketError?: (family: Family, err: Error) => void;
}

/** A prober with one fake socket per family (both unless `families` says otherwise), 1 s interval and 500 ms timeout by default. */
export function setup(opts: ProberSetup = {}) {
  const clock = new ManualClock();
  const sockets = new Map<Family, FakeSocket>();
  for (const f of opts.families ?? [4, 6]) sockets.set(f, new FakeSocket(f, () => clock.now()));
  const results: Array<{ key: string; outcome: Outcome; at: number }> = [];
  const discards: Array<{ key: string; reason: string }> = [];
  const prober = new Prober({
    intervalMs: opts.intervalMs ?? 1000,
    ...(opts.sweepIntervalMs === undefined ? {} : { sweepIntervalMs: opts.sweepIntervalMs }),
    ...(opts.maxProbesPerSecond === undefined ? {} : { maxProbesPerSecond: opts.maxProbesPerSecond }),
    ...(opts.onSocketError === undefined ? {} : { onSocketError: opts.onSocketError }),
    ...(opts.sendBatchMs === undefined ? {} : { sendBatchMs: opts.sendBatchMs }),
    timeoutMs: opts.timeoutMs ?? 500,
    payloadBytes: 24,
    identifier: IDENTIFIER,
    cookie,
    sockets,
    clock,
    onResult: (t, outcome) => results.push({ key: t.key, outcome, at: clock.now() }),
    onDiscard: (t, reason) => discards.push({ key: t.key, reason }),
  });
  return { clock, sockets, results, discards, prober, s4: sockets.get(4)!, s6: sockets.get(6)! };
}

/** A target named after its key. */
export const target = (key: string, address: string, family: Family = 4): Target => ({ key, name: key, address, family });

/** The sequence number of an echo request or reply. */
export function sequenceOf(packet: Buffer): number {
  return packet.readUInt16BE(6);
}

/** An ICMPv4 host unreachable (code 1) quoting `request` as sent to `quotedDestination`, checksummed, without its IP header. */
export function hostUnreachable(request: Buffer, quotedDestination: readonly number[]): Buffer {
  const quoted = ipv4Header(request.length);
  quoted.set(quotedDestination, 16);
  const icmp = Buffer.concat([Buffer.from([ICMP4_DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0]), quoted, request.subarray(0, 8)]);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  return icmp;
}

/** A send error as the kernel reports it, with its errno code. */
export function errno(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`sendto: ${message}`), { code });
}
