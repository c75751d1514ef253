import { canonicalAddress } from '../icmp/address.js';
import { decode, encodeEchoRequest, type Decoded } from '../icmp/packet.js';
import type { IcmpSocket } from '../icmp/socket.js';
import type { Clock, Family, Outcome, Target } from '../types.js';
import { MinHeap } from './heap.js';
import { InFlightTable, type InFlight } from './in-flight.js';
import { clockStepped, decodeQueuedError, matchReply, replyOutcome, type ProbeMark } from './reply-match.js';
import { budgetStretch, phaseOf, type ScheduleKind, type Slot } from './schedule.js';
import { classifySendError } from './send-errors.js';

export interface ProberOptions extends ProbeMark {
  readonly intervalMs: number;
  /** Each swept target is probed once per this long (default: never, as none are given). */
  readonly sweepIntervalMs?: number;
  /** Global packet budget, the sweep included; 0 for none. */
  readonly maxProbesPerSecond?: number;
  readonly timeoutMs: number;
  readonly sockets: ReadonlyMap<Family, IcmpSocket>;
  readonly clock: Clock;
  readonly onResult: (target: Target, outcome: Outcome) => void;
  /** A probe ended without a data point: its time could not be trusted, or it could not be sent. Count it. */
  readonly onDiscard?: (target: Target, reason: DiscardReason) => void;
  /** A socket reported an error (raw-socket does on poll and receive failures): counted, and probing goes on. */
  readonly onSocketError?: (family: Family, error: Error) => void;
  /**
   * Sends wait for the next multiple of this many milliseconds (0: none), so that the probes due
   * within it go out in one wake-up and their replies come back in about one more. Each target
   * keeps its phase; a probe leaves at most this much after it was due.
   */
  readonly sendBatchMs?: number;
}

export interface ProberStats {
  sent: number;
  matched: number;
  /** Datagrams that were not a reply to one of our probes in flight: other pings, late or duplicate replies, junk. */
  dropped: number;
  /** Errors the sockets reported outside a send. */
  socketErrors: number;
  /** Probes not sent because every sequence number was in flight or the send buffer was full. */
  unsent: number;
  /** Replies whose wall-clock RTT disagreed with the monotonic clock: a clock step, not a measurement. */
  clockSteps: number;
  /** Sends that failed with an error parked by an earlier ICMP error, and were sent again. */
  sendRetries: number;
}

/**
 * Why a probe ended without a data point: `clock_step` (see CLOCK_STEP_TOLERANCE_MS in reply-match.ts), or
 * `sequence_space` (not sent: all 65 536 sequence numbers were in flight), or `send_buffer` (not sent:
 * the socket's send buffer was full, e.g. of requests waiting for neighbours that do not resolve).
 */
export type DiscardReason = 'clock_step' | 'sequence_space' | 'send_buffer';

/**
 * Sends one echo request per target per interval, each target on its own phase,
 * and turns replies, ICMP errors and silence into one outcome per probe.
 * Knows nothing of Kubernetes or OpenTelemetry.
 */
export class Prober {
  private readonly slots = new Map<string, Slot>();
  private readonly schedule = new MinHeap<Slot>();
  private readonly inFlight = new InFlightTable();
  /** Slots added so far per schedule: their phases follow the golden-ratio sequence. */
  private readonly added: Record<ScheduleKind, number> = { continuous: 0, sweep: 0 };
  private intervalMs: number;
  private sweepIntervalMs: number;
  private timer: unknown;
  private timerDue = Infinity;
  private stopping = false;
  private drained: (() => void) | undefined;
  readonly stats: ProberStats = { sent: 0, matched: 0, dropped: 0, socketErrors: 0, unsent: 0, clockSteps: 0, sendRetries: 0 };

  constructor(private readonly options: ProberOptions) {
    if (options.timeoutMs > options.intervalMs) throw new RangeError('timeoutMs must not exceed intervalMs');
    this.intervalMs = options.intervalMs;
    this.sweepIntervalMs = options.sweepIntervalMs ?? Infinity;
    for (const socket of options.sockets.values()) {
      socket.onMessage((packet, source, receivedAt) => this.onPacket(socket, packet, source, receivedAt));
      // Without a listener an 'error' event would throw and end the process.
      socket.onError((error) => {
        this.stats.socketErrors++;
        options.onSocketError?.(socket.family, error);
      });
      socket.onIcmpError?.((quoted, destination, reason, offender, receivedAt, nextHopMtu) =>
        this.onDecoded(socket, decodeQueuedError(quoted, destination, reason, nextHopMtu), offender, receivedAt),
      );
    }
  }

  /**
   * Replaces the set of targets: `targets` are probed every interval, `sweep` once per sweep
   * interval. New ones start within their interval, removed ones stop at once; a target that moves
   * between the two starts over on its new schedule.
   */
  setTargets(targets: Iterable<Target>, sweep: Iterable<Target> = []): void {
    if (this.stopping) return;
    const now = this.options.clock.now();
    const next = new Map<string, { target: Target; schedule: ScheduleKind }>();
    for (const target of sweep) next.set(target.key, { target, schedule: 'sweep' });
    for (const target of targets) next.set(target.key, { target, schedule: 'continuous' });
    let continuous = 0;
    for (const { schedule } of next.values()) if (schedule === 'continuous') continuous++;
    // Decide the intervals first, so new targets' phases spread over the intervals they will run at.
    const sweepIntervalMs = this.options.sweepIntervalMs ?? Infinity;
    const stretch = budgetStretch(this.options.intervalMs, continuous, this.options.maxProbesPerSecond ?? 0, {
      targets: next.size - continuous,
      intervalMs: sweepIntervalMs,
    });
    this.intervalMs = this.options.intervalMs * stretch;
    this.sweepIntervalMs = sweepIntervalMs * stretch;
    for (const [key, slot] of this.slots) {
      if (next.get(key)?.schedule === slot.schedule) continue;
      slot.active = false;
      this.slots.delete(key);
    }
    for (const [key, { target, schedule }] of next) {
      const slot = this.slots.get(key);
      if (slot) {
        slot.target = target;
        continue;
      }
      const fresh: Slot = { due: now + phaseOf(this.added[schedule]++) * this.periodOf(schedule), target, schedule, active: true };
      this.slots.set(key, fresh);
      this.schedule.push(fresh);
    }
    // A removed target's probes in flight end silently: its series are going away.
    this.inFlight.endInactive();
    this.arm();
  }

  get targetCount(): number {
    return this.slots.size;
  }

  /** The interval after the packet budget: longer than configured when there are too many targets. */
  get currentIntervalMs(): number {
    return this.intervalMs;
  }

  /** Stops sending; resolves once every probe in flight has a reply or has timed out. */
  stop(): Promise<void> {
    this.stopping = true;
    for (const slot of this.slots.values()) slot.active = false;
    this.slots.clear();
    if (this.inFlight.size === 0) {
      this.disarm();
      return Promise.resolve();
    }
    this.arm();
    return new Promise((resolve) => {
      this.drained = resolve;
    });
  }

  private periodOf(schedule: ScheduleKind): number {
    return schedule === 'continuous' ? this.intervalMs : this.sweepIntervalMs;
  }

  private disarm(): void {
    if (this.timer !== undefined) this.options.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  /** Keeps exactly one timer, for the earliest of the next send and the next expiry. */
  private arm(): void {
    let due = Infinity;
    while (this.schedule.size > 0 && !this.schedule.peek()!.active) this.schedule.pop();
    if (!this.stopping && this.schedule.size > 0) due = this.schedule.peek()!.due;
    const batchMs = this.options.sendBatchMs ?? 0;
    if (batchMs > 0 && due !== Infinity) due = Math.ceil(due / batchMs) * batchMs;
    const expiry = this.inFlight.firstPendingExpiry();
    if (expiry) due = Math.min(due, expiry.deadline);
    if (due === this.timerDue) return;
    this.disarm();
    if (due === Infinity) return;
    this.timerDue = due;
    this.timer = this.options.clock.setTimer(() => this.tick(), Math.max(0, due - this.options.clock.now()));
  }

  private tick(): void {
    this.timer = undefined;
    this.timerDue = Infinity;
    const now = this.options.clock.now();
    const expiring = this.inFlight.firstPendingExpiry();
    // Read what the kernel already holds before calling anything lost: after a stall, replies stamped
    // in time are waiting in the socket, and the poll phase that would read them runs after timers.
    if (expiring && expiring.deadline <= now) this.drainSockets();
    for (let probe = this.inFlight.firstPendingExpiry(); probe && probe.deadline <= now; probe = this.inFlight.firstPendingExpiry()) {
      const remainingMs = this.remainingMs(probe);
      if (remainingMs > 0) {
        // Sent later than its deadline assumed (the process stopped between the clock reading and
        // sendto): it waits its whole timeout. Probes behind it were sent after it, so none is due yet.
        probe.deadline = now + remainingMs;
        break;
      }
      this.finish(probe, { kind: 'timeout' });
    }
    while (!this.stopping && this.schedule.size > 0 && this.schedule.peek()!.due <= now) {
      const slot = this.schedule.pop()!;
      if (!slot.active) continue;
      this.send(slot);
      // Keep the phase: the next probe is one interval after this one was due, not after it ran.
      const period = this.periodOf(slot.schedule);
      slot.due += period;
      if (slot.due <= now) slot.due = now + period;
      this.schedule.push(slot);
    }
    if (this.stopping && this.inFlight.size === 0) {
      this.drained?.();
      this.drained = undefined;
    }
    this.arm();
  }

  /** What is left of a probe's timeout by the clock its send was stamped in (0 if it never went out). */
  private remainingMs(probe: InFlight): number {
    if (probe.sentAt === undefined) return 0;
    const socket = this.options.sockets.get(probe.slot.target.family);
    return socket ? probe.sentAt + this.options.timeoutMs - socket.now() : 0;
  }

  private drainSockets(): void {
    for (const socket of this.options.sockets.values()) socket.drain?.();
  }

  private send(slot: Slot): void {
    const { target } = slot;
    const socket = this.options.sockets.get(target.family);
    if (!socket) {
      this.options.onResult(target, { kind: 'error', reason: `no IPv${target.family} ICMP socket is open` });
      return;
    }
    const sequence = this.inFlight.allocateSequence();
    if (sequence === undefined) {
      // Sending anyway would reuse the number of a probe in flight and misattribute its reply.
      this.stats.unsent++;
      this.options.onDiscard?.(target, 'sequence_space');
      return;
    }
    const probe: InFlight = {
      slot,
      address: canonicalAddress(target.address),
      sequence,
      // The tick's `now` may be stale by the time this send happens: read the clock again.
      deadline: this.options.clock.now() + this.options.timeoutMs,
      sentAt: undefined,
      sentAfterMonotonic: 0,
      sentBeforeMonotonic: 0,
      done: false,
    };
    this.inFlight.add(probe);
    this.stats.sent++;
    const packet = encodeEchoRequest({
      family: target.family,
      identifier: this.options.identifier,
      sequence,
      cookie: this.options.cookie,
      payloadBytes: this.options.payloadBytes,
    });
    this.transmit(socket, probe, packet, 1);
  }

  private transmit(socket: IcmpSocket, probe: InFlight, packet: Buffer, attempt: number): void {
    probe.sentBeforeMonotonic = this.options.clock.now();
    socket.send(packet, probe.slot.target.address, (error, sentAt) => {
      if (probe.done) return;
      if (!error) {
        probe.sentAt = sentAt;
        probe.sentAfterMonotonic = this.options.clock.now();
        return;
      }
      const kind = classifySendError(error, attempt);
      if (kind === 'retry') {
        // Probably another destination's ICMP error, handed to this send: nothing went out, so send again.
        this.stats.sendRetries++;
        this.transmit(socket, probe, packet, attempt + 1);
        return;
      }
      if (kind === 'buffer_full') {
        this.stats.unsent++;
        this.discard(probe, 'send_buffer');
        return;
      }
      this.finish(probe, { kind: 'error', reason: `send failed: ${error.message}` });
    });
  }

  private discard(probe: InFlight, reason: DiscardReason): void {
    this.inFlight.end(probe);
    if (probe.slot.active || this.stopping) this.options.onDiscard?.(probe.slot.target, reason);
  }

  private finish(probe: InFlight, outcome: Outcome): void {
    this.inFlight.end(probe);
    if (probe.slot.active || this.stopping) this.options.onResult(probe.slot.target, outcome);
  }

  private onPacket(socket: IcmpSocket, packet: Buffer, source: string, receivedAt: number): void {
    this.onDecoded(socket, decode(packet, socket.family, socket.withIpHeader), source, receivedAt);
  }

  private onDecoded(socket: IcmpSocket, decoded: Decoded, source: string, receivedAt: number): void {
    const match = matchReply(decoded, source, socket, (sequence) => this.inFlight.get(sequence), this.options);
    if (match.kind === 'dropped') {
      this.stats.dropped++;
      return;
    }
    this.stats.matched++;
    if (match.kind === 'error') {
      this.finish(match.probe, match.outcome);
      return;
    }
    if (
      clockStepped(
        match.probe,
        match.sentAt,
        () => socket.now(),
        () => this.options.clock.now(),
      )
    ) {
      this.stats.clockSteps++;
      this.discard(match.probe, 'clock_step');
      return;
    }
    this.finish(match.probe, replyOutcome(match.sentAt, receivedAt, this.options.timeoutMs));
  }
}
