/** Schedule arithmetic: how often the prober can probe within its packet budget, and where in the interval each target goes. */
import type { Target } from '../types.js';

/** Swept targets, each probed once per `intervalMs`. */
export interface SweepLoad {
  readonly targets: number;
  readonly intervalMs: number;
}

/**
 * How much both schedules stretch (1: not at all) so that every probe sent, `targets` per interval
 * and the sweep, stays within `maxPerSecond` (0: no budget). Both stretch alike: the budget is
 * shared in proportion, neither schedule starves the other.
 */
export function budgetStretch(intervalMs: number, targets: number, maxPerSecond: number, sweep?: SweepLoad): number {
  if (maxPerSecond <= 0) return 1;
  const sweepPerSecond = sweep && sweep.targets > 0 && Number.isFinite(sweep.intervalMs) ? (sweep.targets * 1000) / sweep.intervalMs : 0;
  const perSecond = (targets * 1000) / intervalMs + sweepPerSecond;
  return Math.max(1, perSecond / maxPerSecond);
}

/** The interval the prober really runs at: the configured one, stretched by the packet budget (budgetStretch). */
export function effectiveIntervalMs(intervalMs: number, targets: number, maxPerSecond: number, sweep?: SweepLoad): number {
  return intervalMs * budgetStretch(intervalMs, targets, maxPerSecond, sweep);
}

const GOLDEN_RATIO_FRACTION = (Math.sqrt(5) - 1) / 2;

/**
 * The phase of the n-th target added, as a fraction of the interval. The golden-ratio
 * sequence keeps any number of targets nearly evenly spread, however many come and go:
 * no bursts at the top of the interval.
 */
export function phaseOf(n: number): number {
  return (n * GOLDEN_RATIO_FRACTION) % 1;
}

/** `continuous`: probed every interval; `sweep`: once per sweep interval. */
export type ScheduleKind = 'continuous' | 'sweep';

/** One target's place in the prober's schedule. */
export interface Slot {
  due: number;
  target: Target;
  schedule: ScheduleKind;
  /** False once the target is removed or moved to the other schedule: the heap drops it lazily. */
  active: boolean;
}
