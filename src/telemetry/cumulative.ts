/*
 * Running totals built from delta collections, so that a series can be forgotten.
 *
 * The OTel SDK has no way to delete an attribute set from a cumulative instrument
 * (open-telemetry/opentelemetry-js#2997, open as of sdk-metrics 3.1.0); with delta temporality it
 * keeps nothing between collections. Folding each delta into this store gives the exporters
 * cumulative series while the agent decides which ones still exist. When the SDK can delete an
 * attribute set, this store and the delta folds in destination-meters.ts can go.
 */
import type { Attributes, HrTime } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  type DataPoint,
  type ExponentialHistogram,
  type Histogram,
  type MetricData,
  type MetricDescriptor,
} from '@opentelemetry/sdk-metrics';

/** Identity of an attribute set, independent of key order. */
export function attributesKey(attributes: Attributes): string {
  return JSON.stringify(
    Object.keys(attributes)
      .sort()
      .map((key) => [key, attributes[key]]),
  );
}

type Value = number | Histogram | ExponentialHistogram;

interface Stream {
  readonly descriptor: MetricDescriptor;
  readonly dataPointType: DataPointType;
  readonly isMonotonic: boolean;
  /** Points are replaced, never mutated: a snapshot handed to an exporter stays as it was. */
  readonly points: Map<string, DataPoint<Value>>;
}

interface Stats {
  count: number;
  sum?: number;
  min?: number;
  max?: number;
}

/** Count, sum, min and max of two histograms of either kind; optional fields stay absent when unknown. */
function mergeStats(a: Stats, b: Stats): Stats {
  const merged: Stats = { count: a.count + b.count };
  if (a.sum !== undefined && b.sum !== undefined) merged.sum = a.sum + b.sum;
  const min = a.min === undefined ? b.min : b.min === undefined ? a.min : Math.min(a.min, b.min);
  if (min !== undefined) merged.min = min;
  const max = a.max === undefined ? b.max : b.max === undefined ? a.max : Math.max(a.max, b.max);
  if (max !== undefined) merged.max = max;
  return merged;
}

/** Explicit-bucket histograms of one instrument share their boundaries. */
export function mergeHistogram(a: Histogram, b: Histogram): Histogram {
  const counts = a.buckets.counts.map((count, i) => count + (b.buckets.counts[i] ?? 0));
  return { buckets: { boundaries: a.buckets.boundaries, counts }, ...mergeStats(a, b) };
}

type Side = 'positive' | 'negative';

/** Lowest and highest bucket index of one side once mapped to `scale` (coarser or equal). */
function indexRange(h: ExponentialHistogram, side: Side, scale: number): [number, number] | undefined {
  const { offset, bucketCounts } = h[side];
  if (bucketCounts.length === 0) return undefined;
  const shift = h.scale - scale;
  return [offset >> shift, (offset + bucketCounts.length - 1) >> shift];
}

function unionRange(a: ExponentialHistogram, b: ExponentialHistogram, side: Side, scale: number): [number, number] | undefined {
  const ra = indexRange(a, side, scale);
  const rb = indexRange(b, side, scale);
  if (!ra || !rb) return ra ?? rb;
  return [Math.min(ra[0], rb[0]), Math.max(ra[1], rb[1])];
}

/** The finest scale at or below `scale` at which both histograms' buckets of one side fit in maxSize. */
function fittingScale(a: ExponentialHistogram, b: ExponentialHistogram, side: Side, scale: number, maxSize: number): number {
  const range = unionRange(a, b, side, scale);
  if (!range) return scale;
  let [low, high] = range;
  while (high - low + 1 > maxSize) {
    low >>= 1;
    high >>= 1;
    scale -= 1;
  }
  return scale;
}

function mergeBuckets(a: ExponentialHistogram, b: ExponentialHistogram, side: Side, scale: number): ExponentialHistogram['positive'] {
  const range = unionRange(a, b, side, scale);
  if (!range) return { offset: 0, bucketCounts: [] };
  const [low, high] = range;
  const bucketCounts = new Array<number>(high - low + 1).fill(0);
  for (const h of [a, b]) {
    const { offset, bucketCounts: counts } = h[side];
    const shift = h.scale - scale;
    for (let i = 0; i < counts.length; i++) bucketCounts[((offset + i) >> shift) - low]! += counts[i]!;
  }
  return { offset: low, bucketCounts };
}

/**
 * Base-2 exponential histograms: both are brought to the coarser scale, and coarser still while
 * either side would need more than maxSize buckets. This mirrors the downscaling of
 * @opentelemetry/sdk-metrics 3.1.0 (ExponentialHistogramAccumulation.merge); the oracle test in
 * test/telemetry/cumulative.test.ts compares the two and fails when a new SDK merges differently.
 */
export function mergeExponential(a: ExponentialHistogram, b: ExponentialHistogram, maxSize: number): ExponentialHistogram {
  let scale = Math.min(a.scale, b.scale);
  scale = Math.min(fittingScale(a, b, 'positive', scale, maxSize), fittingScale(a, b, 'negative', scale, maxSize));
  return {
    ...mergeStats(a, b),
    scale,
    zeroCount: a.zeroCount + b.zeroCount,
    positive: mergeBuckets(a, b, 'positive', scale),
    negative: mergeBuckets(a, b, 'negative', scale),
  };
}

/** Cumulative series of one scope, fed with delta collections. */
export class CumulativeStore {
  private readonly streams = new Map<string, Stream>();

  /** @param maxExponentialSize the exponential aggregation's maxSize (buckets per side). */
  constructor(private readonly maxExponentialSize: number) {}

  /** Adds delta metrics to the totals, except the attribute sets in `skip`. */
  add(metrics: readonly MetricData[], skip: ReadonlySet<string>): void {
    for (const metric of metrics) {
      let stream = this.streams.get(metric.descriptor.name);
      if (!stream) {
        const isMonotonic = metric.dataPointType === DataPointType.SUM ? metric.isMonotonic : false;
        stream = { descriptor: metric.descriptor, dataPointType: metric.dataPointType, isMonotonic, points: new Map() };
        this.streams.set(metric.descriptor.name, stream);
      }
      for (const point of metric.dataPoints as readonly DataPoint<Value>[]) {
        const key = attributesKey(point.attributes);
        if (skip.has(key)) continue;
        const known = stream.points.get(key);
        stream.points.set(key, known ? { ...known, endTime: point.endTime, value: this.merge(stream.dataPointType, known.value, point.value) } : point);
      }
    }
  }

  /** Forgets attribute sets in every stream. */
  delete(keys: Iterable<string>): void {
    for (const key of keys) for (const stream of this.streams.values()) stream.points.delete(key);
  }

  /** Number of series held, over all metrics. */
  get size(): number {
    let size = 0;
    for (const stream of this.streams.values()) size += stream.points.size;
    return size;
  }

  /** Cumulative metric data as of `endTime`; empty metrics are left out. */
  snapshot(endTime: HrTime): MetricData[] {
    const metrics: MetricData[] = [];
    for (const stream of this.streams.values()) {
      if (stream.points.size === 0) continue;
      const dataPoints = [...stream.points.values()].map((point) => ({ ...point, endTime }));
      const common = { descriptor: stream.descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE };
      switch (stream.dataPointType) {
        case DataPointType.SUM:
          metrics.push({ ...common, dataPointType: DataPointType.SUM, isMonotonic: stream.isMonotonic, dataPoints: dataPoints as DataPoint<number>[] });
          break;
        case DataPointType.GAUGE:
          metrics.push({ ...common, dataPointType: DataPointType.GAUGE, dataPoints: dataPoints as DataPoint<number>[] });
          break;
        case DataPointType.HISTOGRAM:
          metrics.push({ ...common, dataPointType: DataPointType.HISTOGRAM, dataPoints: dataPoints as DataPoint<Histogram>[] });
          break;
        case DataPointType.EXPONENTIAL_HISTOGRAM:
          metrics.push({ ...common, dataPointType: DataPointType.EXPONENTIAL_HISTOGRAM, dataPoints: dataPoints as DataPoint<ExponentialHistogram>[] });
          break;
      }
    }
    return metrics;
  }

  private merge(type: DataPointType, known: Value, delta: Value): Value {
    switch (type) {
      case DataPointType.SUM:
        return (known as number) + (delta as number);
      case DataPointType.GAUGE:
        return delta;
      case DataPointType.HISTOGRAM:
        return mergeHistogram(known as Histogram, delta as Histogram);
      case DataPointType.EXPONENTIAL_HISTOGRAM:
        return mergeExponential(known as ExponentialHistogram, delta as ExponentialHistogram, this.maxExponentialSize);
    }
  }
}
