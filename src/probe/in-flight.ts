import type { Slot } from './schedule.js';

/** Echo sequence numbers are 16 bits: at most this many probes in flight, each told apart by its own. */
export const SEQUENCE_SPACE = 0x10000;

/** A probe sent (or being sent) and waiting for its reply, error or timeout. */
export interface InFlight {
  readonly slot: Slot;
  readonly address: string;
  readonly sequence: number;
  /** Monotonic; moved later when the socket's clock says the probe was sent later than planned. */
  deadline: number;
  /** In the socket's clock; undefined until the send syscall has happened. */
  sentAt: number | undefined;
  /** The prober's monotonic clock right before and right after the send: `sentAt` happened between them. */
  sentAfterMonotonic: number;
  sentBeforeMonotonic: number;
  done: boolean;
}

/** The probes in flight, by sequence number for replies and in deadline order for timeouts. */
export class InFlightTable {
  private readonly bySequence = new Map<number, InFlight>();
  /** In send order; with one timeout for all, that is deadline order. */
  private readonly expiries: InFlight[] = [];
  private expiryHead = 0;
  private nextSequence = 0;

  get size(): number {
    return this.bySequence.size;
  }

  get(sequence: number): InFlight | undefined {
    return this.bySequence.get(sequence);
  }

  /** The next sequence number not in flight, round robin; undefined when every one is. */
  allocateSequence(): number | undefined {
    if (this.bySequence.size >= SEQUENCE_SPACE) return undefined;
    // Bounded: at least one of the 65 536 is free.
    for (;;) {
      const sequence = this.nextSequence;
      this.nextSequence = (this.nextSequence + 1) & 0xffff;
      if (!this.bySequence.has(sequence)) return sequence;
    }
  }

  add(probe: InFlight): void {
    this.bySequence.set(probe.sequence, probe);
    this.expiries.push(probe);
  }

  /** The probe has ended (with an outcome or without): its number comes free and it will not expire. */
  end(probe: InFlight): void {
    probe.done = true;
    this.bySequence.delete(probe.sequence);
  }

  /** Ends every probe whose target was removed. */
  endInactive(): void {
    for (const probe of this.bySequence.values()) if (!probe.slot.active) this.end(probe);
  }

  /** The probe in flight with the earliest deadline. */
  firstPendingExpiry(): InFlight | undefined {
    while (this.expiryHead < this.expiries.length && this.expiries[this.expiryHead]!.done) this.expiryHead++;
    if (this.expiryHead > 1024 && this.expiryHead * 2 > this.expiries.length) {
      this.expiries.splice(0, this.expiryHead);
      this.expiryHead = 0;
    }
    return this.expiries[this.expiryHead];
  }
}
