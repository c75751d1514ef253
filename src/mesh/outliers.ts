/*
 * Pairs the sweep finds bad. One swept probe is too little to name a pair: a lost or slow sweep
 * probe makes its destination a suspect, probed every interval for a few probes without series of
 * its own; if enough of those are lost or slow it becomes an outlier, with node_latency series
 * naming both ends, until it has looked normal for the hold time. The number of suspects and
 * outliers is capped, so one bad node seen by every sweep cannot grow an agent's series past
 * MENTAT_OUTLIERS_MAX.
 */
import type { Outcome } from '../types.js';

export interface OutlierSettings {
  /** Outliers (with series) at most; as many suspects again may be checked meanwhile. */
  readonly max: number;
  readonly holdMs: number;
  /** Slower than the zone pair's baseline by this much is bad. */
  readonly latencyExcessSeconds: number;
}

/** Probes a suspect gets, and how many of them must be bad to make it an outlier. */
export const CONFIRM_PROBES = 5;
export const CONFIRM_BAD = 2;

type Entry = { kind: 'suspect'; probes: number; bad: number } | { kind: 'outlier'; lastBadAt: number };

/** Where a destination stands in the outlier lifecycle. */
export type OutlierState = 'suspect' | 'outlier' | undefined;

export class OutlierTracker {
  private readonly entries = new Map<string, Entry>();
  /** Suspects not taken because the cap was reached, since start. */
  refused = 0;

  constructor(
    private readonly settings: OutlierSettings,
    private readonly now: () => number,
  ) {}

  stateOf(node: string): OutlierState {
    return this.entries.get(node)?.kind;
  }

  /** Destinations probed every interval for the tracker's sake. */
  get tracked(): string[] {
    return [...this.entries.keys()];
  }

  get outliers(): string[] {
    return [...this.entries].filter(([, e]) => e.kind === 'outlier').map(([name]) => name);
  }

  /** A bad outcome: lost, an error, or slower than the baseline (when there is one) by the excess. */
  isBad(outcome: Outcome, baselineSeconds: number | undefined): boolean {
    if (outcome.kind !== 'success') return true;
    return baselineSeconds !== undefined && outcome.rttSeconds > baselineSeconds + this.settings.latencyExcessSeconds;
  }

  /**
   * A swept probe's outcome. Returns true when the destination became a suspect (it is to be
   * probed every interval from now on).
   */
  onSweep(node: string, outcome: Outcome, baselineSeconds: number | undefined): boolean {
    if (this.settings.max === 0 || this.entries.has(node) || !this.isBad(outcome, baselineSeconds)) return false;
    if (this.entries.size >= 2 * this.settings.max) {
      this.refused++;
      return false;
    }
    this.entries.set(node, { kind: 'suspect', probes: 0, bad: 0 });
    return true;
  }

  /** An outcome of a suspect or an outlier. Returns true when its state changed. */
  onProbe(node: string, outcome: Outcome, baselineSeconds: number | undefined): boolean {
    const entry = this.entries.get(node);
    if (!entry) return false;
    const bad = this.isBad(outcome, baselineSeconds);
    if (entry.kind === 'outlier') {
      if (bad) entry.lastBadAt = this.now();
      return false;
    }
    entry.probes++;
    if (bad) entry.bad++;
    if (entry.bad >= CONFIRM_BAD && this.outliers.length < this.settings.max) {
      this.entries.set(node, { kind: 'outlier', lastBadAt: this.now() });
      return true;
    }
    if (entry.probes >= CONFIRM_PROBES) {
      if (entry.bad >= CONFIRM_BAD) this.refused++;
      this.entries.delete(node);
      return true;
    }
    return false;
  }

  /** Ends outliers that have looked normal for the hold time. Returns true when any ended. */
  expire(): boolean {
    const now = this.now();
    let changed = false;
    for (const [node, entry] of this.entries) {
      if (entry.kind === 'outlier' && now - entry.lastBadAt >= this.settings.holdMs) {
        this.entries.delete(node);
        changed = true;
      }
    }
    return changed;
  }

  /** Drops destinations that are no longer swept (gone, leaving, or probed as peers now). */
  retain(swept: ReadonlySet<string>): boolean {
    let changed = false;
    for (const node of this.entries.keys()) {
      if (swept.has(node)) continue;
      this.entries.delete(node);
      changed = true;
    }
    return changed;
  }
}

/** Recent round-trip times per zone pair: the baseline an outlier is measured against. */
export class Baselines {
  private readonly samples = new Map<string, { values: number[]; next: number }>();

  constructor(private readonly size = 63) {}

  add(zone: string, rttSeconds: number): void {
    let ring = this.samples.get(zone);
    if (!ring) this.samples.set(zone, (ring = { values: [], next: 0 }));
    if (ring.values.length < this.size) ring.values.push(rttSeconds);
    else ring.values[ring.next] = rttSeconds;
    ring.next = (ring.next + 1) % this.size;
  }

  /** The median of the recent samples; undefined until there are a few. */
  median(zone: string): number | undefined {
    const values = this.samples.get(zone)?.values;
    if (!values || values.length < 5) return undefined;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[sorted.length >> 1];
  }
}
