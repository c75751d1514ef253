/** Types every part of the agent shares: what is probed, what a probe gives, and time. */

export type Family = 4 | 6;

/** One address to probe. `key` is its identity: a changed address under the same key is followed. */
export interface Target {
  readonly key: string;
  readonly name: string;
  readonly address: string;
  readonly family: Family;
  /** topology.kubernetes.io/zone of the node, when known. */
  readonly zone?: string;
}

/** A timeout is data (loss), not an exception. */
export type Outcome =
  | { readonly kind: 'success'; readonly rttSeconds: number }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'error'; readonly reason: string };

/** Time and timers, injected so that scheduling is tested without waiting. */
export interface Clock {
  /** Monotonic milliseconds, fractional. */
  now(): number;
  setTimer(fn: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

/** The real clock: performance.now and the event loop's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
