import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import type { Outcome, Target } from '../types.js';

/** Where the per-destination series are recorded, and how they are dropped (see DestinationMeters). */
export interface SeriesSink {
  readonly meter: Meter;
  /** These attribute sets are gone from the next collection on. */
  forget(attributeSets: readonly Attributes[]): void;
}

export const LATENCY_METRIC = 'node_latency';
export const PROBES_METRIC = 'node_latency_probes';

interface Series {
  readonly attributes: Attributes;
  readonly success: Attributes;
  readonly timeout: Attributes;
  readonly error: Attributes;
}

export interface LatencyMetricsOptions {
  readonly sink: SeriesSink;
  readonly originNode: string;
  readonly bucketsSeconds: readonly number[];
  /** Adds ip_family, for when a node is probed on both of its addresses. */
  readonly withIpFamily: boolean;
  /** Adds origin_zone and destination_zone. */
  readonly withZones?: boolean;
}

const UNKNOWN_ZONE = 'unknown';

/** Turns probe outcomes into node_latency and node_latency_probes, one set of series per target. */
export class LatencyMetrics {
  private readonly series = new Map<string, Series>();
  private originZone = UNKNOWN_ZONE;
  private readonly latency: Histogram;
  private readonly probes: Counter;

  constructor(private readonly options: LatencyMetricsOptions) {
    this.latency = options.sink.meter.createHistogram(LATENCY_METRIC, {
      description: 'Round-trip time of ICMP echo from origin_node to destination_node',
      unit: 's',
      advice: { explicitBucketBoundaries: [...options.bucketsSeconds] },
    });
    this.probes = options.sink.meter.createCounter(PROBES_METRIC, {
      description: 'ICMP echo probes sent, by result: success, timeout (loss) or error (ICMP error or send failure)',
    });
  }

  /** The own node's zone; a change re-labels every series (they restart from zero). */
  setOriginZone(zone: string | undefined): void {
    const next = zone ?? UNKNOWN_ZONE;
    if (!this.options.withZones || next === this.originZone) return;
    this.originZone = next;
    this.retain(new Set());
  }

  record(target: Target, outcome: Outcome): void {
    let series = this.series.get(target.key);
    // A node whose zone label changed gets new series rather than mislabelled ones.
    if (series && this.options.withZones && series.attributes['destination_zone'] !== (target.zone ?? UNKNOWN_ZONE)) {
      this.drop(target.key, series);
      series = undefined;
    }
    series ??= this.open(target);
    if (outcome.kind === 'success') {
      this.latency.record(outcome.rttSeconds, series.attributes);
      this.probes.add(1, series.success);
    } else {
      this.probes.add(1, outcome.kind === 'timeout' ? series.timeout : series.error);
    }
  }

  /** Drops the series of every target not in `live`. */
  retain(live: ReadonlySet<string>): void {
    for (const [key, series] of this.series) if (!live.has(key)) this.drop(key, series);
  }

  get seriesCount(): number {
    return this.series.size;
  }

  private drop(key: string, series: Series): void {
    this.series.delete(key);
    this.options.sink.forget([series.attributes, series.success, series.timeout, series.error]);
  }

  private open(target: Target): Series {
    const attributes: Attributes = { origin_node: this.options.originNode, destination_node: target.name };
    if (this.options.withIpFamily) attributes['ip_family'] = target.family === 4 ? 'ipv4' : 'ipv6';
    if (this.options.withZones) {
      attributes['origin_zone'] = this.originZone;
      attributes['destination_zone'] = target.zone ?? UNKNOWN_ZONE;
    }
    const series: Series = {
      attributes,
      success: { ...attributes, result: 'success' },
      timeout: { ...attributes, result: 'timeout' },
      error: { ...attributes, result: 'error' },
    };
    // Zero-valued from the start, so `timeout / all` has every term before the first loss.
    this.probes.add(0, series.success);
    this.probes.add(0, series.timeout);
    this.probes.add(0, series.error);
    this.series.set(target.key, series);
    return series;
  }
}
