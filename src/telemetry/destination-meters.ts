import type { Attributes, Meter } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  InstrumentType,
  MeterProvider,
  type CollectionResult,
  type MetricProducer,
  type MetricReaderOptions,
  type ScopeMetrics,
} from '@opentelemetry/sdk-metrics';
import { attributesKey, CumulativeStore } from './cumulative.js';
import { PullReader } from './pull-reader.js';

/** A delta reader: each collect() hands over what was recorded since the last, to be folded into a store. */
function deltaReader(cardinalityLimit: number, aggregationSelector?: MetricReaderOptions['aggregationSelector']): PullReader {
  return new PullReader({
    aggregationTemporalitySelector: () => AggregationTemporality.DELTA,
    cardinalitySelector: () => cardinalityLimit,
    ...(aggregationSelector ? { aggregationSelector } : {}),
  });
}

const DEFAULT_MAX_DESTINATIONS = 10_000;

/** Buckets per side of the base-2 exponential histogram (the SDK's default). */
const EXPONENTIAL_MAX_SIZE = 160;

/** Base-2 exponential histograms for histograms; everything else as usual. */
const exponentialSelector: MetricReaderOptions['aggregationSelector'] = (type) =>
  type === InstrumentType.HISTOGRAM
    ? { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: EXPONENTIAL_MAX_SIZE } }
    : { type: AggregationType.DEFAULT };

interface Folded {
  readonly reader: PullReader;
  readonly store: CumulativeStore;
}

const EMPTY_RESOURCE = resourceFromAttributes({});

export interface DestinationMetersOptions {
  readonly meterName: string;
  /** Destinations recorded at most (MENTAT_MAX_TARGETS); sizes the SDK's cardinality limit. */
  readonly maxDestinations?: number;
  /** Also keep base-2 exponential histograms (for OTLP). */
  readonly withExponential?: boolean;
  /** Wall clock in ms, for the end time of cumulative points. */
  readonly nowMs?: () => number;
}

/**
 * The per-destination series: one MeterProvider with delta readers, folded into cumulative stores
 * that exporters pull as a MetricProducer. The SDK cannot forget an attribute set of a cumulative
 * instrument (open-telemetry/opentelemetry-js#2997); here forgetting is deleting from the store, so a deleted node's series leave /metrics
 * (and memory) while every other series keeps counting. Memory per destination is its points only.
 */
export class DestinationMeters implements MetricProducer {
  /** Every destination records through this one Meter. */
  readonly meter: Meter;
  private readonly provider: MeterProvider;
  private readonly explicit: Folded;
  private readonly exponential: Folded | undefined;
  private readonly scope: ScopeMetrics['scope'];
  private readonly nowMs: () => number;
  /** Attribute sets forgotten since the last fold began. */
  private forgotten = new Set<string>();
  /** A fold not started yet, which new callers can share. */
  private queued: Promise<CollectionResult['errors']> | undefined;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: DestinationMetersOptions) {
    // Past its cardinality limit (2000 by default) the SDK folds series into one otel_metric_overflow
    // series. Per destination: up to three attribute sets (probes by result), twice when a node is
    // replaced between two collections.
    const limit = (options.maxDestinations ?? DEFAULT_MAX_DESTINATIONS) * 3 * 2;
    this.explicit = { reader: deltaReader(limit), store: new CumulativeStore(EXPONENTIAL_MAX_SIZE) };
    this.exponential = options.withExponential
      ? { reader: deltaReader(limit, exponentialSelector), store: new CumulativeStore(EXPONENTIAL_MAX_SIZE) }
      : undefined;
    this.provider = new MeterProvider({ resource: EMPTY_RESOURCE, readers: this.folds().map((f) => f.reader) });
    this.meter = this.provider.getMeter(options.meterName);
    this.scope = { name: options.meterName };
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** Drops these attribute sets: they are gone from the next collection on. */
  forget(attributeSets: readonly Attributes[]): void {
    if (attributeSets.length === 0) return;
    for (const attributes of attributeSets) this.forgotten.add(attributesKey(attributes));
    // Folding now keeps the SDK's delta storage and this set small even when nobody collects;
    // a failure here shows up again in the next collect, which reports it.
    this.fold().catch(() => {});
  }

  /** Series held (all metrics, explicit-bucket view). */
  get size(): number {
    return this.explicit.store.size;
  }

  collect(): Promise<CollectionResult> {
    return this.collectFrom(this.explicit);
  }

  /** The same destinations with exponential histograms (or explicit ones when not configured). */
  readonly exponentialProducer: MetricProducer = { collect: () => this.collectFrom(this.exponential ?? this.explicit) };

  async shutdown(): Promise<void> {
    await this.provider.shutdown().catch(() => {});
  }

  private folds(): Folded[] {
    return this.exponential ? [this.explicit, this.exponential] : [this.explicit];
  }

  private async collectFrom(folded: Folded): Promise<CollectionResult> {
    const errors = await this.fold();
    const scopeMetrics = [{ scope: this.scope, metrics: folded.store.snapshot(millisToHrTime(this.nowMs())) }];
    return { resourceMetrics: { resource: EMPTY_RESOURCE, scopeMetrics }, errors };
  }

  /**
   * Folds the SDK's deltas into the stores. Folds run one after another: a forget must be applied
   * after every delta that could still hold the forgotten series has been added.
   */
  private fold(): Promise<CollectionResult['errors']> {
    if (this.queued) return this.queued;
    const run = this.tail.then(() => {
      this.queued = undefined;
      return this.foldOnce();
    });
    this.queued = run;
    this.tail = run.catch(() => {});
    return run;
  }

  private async foldOnce(): Promise<CollectionResult['errors']> {
    const dropping = this.forgotten;
    this.forgotten = new Set();
    const folds = this.folds();
    const results = await Promise.all(folds.map((f) => f.reader.collect()));
    folds.forEach(({ store }, i) => {
      store.add(
        results[i]!.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics),
        dropping,
      );
      store.delete(dropping);
    });
    return results.flatMap((r) => r.errors);
  }
}
