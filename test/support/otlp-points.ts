/**
 * What the test OTLP receiver collected, read back: decoded export requests flattened into one
 * MetricPoint per data point, with its resource, scope and metric around it.
 */
import type { AnyValue, DecodedExportRequest, DecodedHistogramPoint, DecodedMetric, DecodedNumberPoint, KeyValue } from './otlp-proto.js';

export type AttributeValue = string | number | boolean | Uint8Array | null | AttributeValue[] | { [key: string]: AttributeValue };
export type Attributes = Record<string, AttributeValue>;

/** One data point of one metric, flattened with everything around it. */
export interface MetricPoint {
  readonly exportIndex: number;
  readonly resource: Attributes;
  readonly scope: { readonly name: string; readonly version: string };
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly type: NonNullable<DecodedMetric['data']> | 'unknown';
  /** e.g. AGGREGATION_TEMPORALITY_CUMULATIVE; undefined for gauges. */
  readonly temporality: string | undefined;
  readonly isMonotonic: boolean | undefined;
  readonly attributes: Attributes;
  readonly startTimeUnixNano: number;
  readonly timeUnixNano: number;
  /** Sum and gauge points. */
  readonly value?: number;
  /** Histogram points. */
  readonly count?: number;
  readonly sum?: number;
  readonly bucketCounts?: readonly number[];
  readonly explicitBounds?: readonly number[];
  readonly min?: number;
  readonly max?: number;
}

/** An export as the points are read from: its arrival index and the decoded request. */
export interface CollectedExport {
  readonly index: number;
  readonly request: DecodedExportRequest;
}

/** What every point of one metric in one export shares. */
type PointCommon = Pick<MetricPoint, 'exportIndex' | 'resource' | 'scope' | 'name' | 'unit' | 'description' | 'type'>;

const UNSPECIFIED = 'AGGREGATION_TEMPORALITY_UNSPECIFIED';

function anyValue(value: AnyValue | undefined): AttributeValue {
  if (value === undefined) return null;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return value.intValue;
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.bytesValue !== undefined) return value.bytesValue;
  if (value.arrayValue !== undefined) return value.arrayValue.values.map(anyValue);
  if (value.kvlistValue !== undefined) return attributes(value.kvlistValue.values);
  return null;
}

/** OTLP key-value list → plain object. */
export function attributes(list: readonly KeyValue[] | undefined): Attributes {
  const out: Attributes = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

function histogramPoint(common: PointCommon, temporality: string, p: DecodedHistogramPoint): MetricPoint {
  return {
    ...common,
    temporality,
    isMonotonic: undefined,
    attributes: attributes(p.attributes),
    startTimeUnixNano: p.startTimeUnixNano ?? 0,
    timeUnixNano: p.timeUnixNano ?? 0,
    count: p.count ?? 0,
    bucketCounts: p.bucketCounts,
    explicitBounds: p.explicitBounds,
    ...(p.sum !== undefined ? { sum: p.sum } : {}),
    ...(p.min !== undefined ? { min: p.min } : {}),
    ...(p.max !== undefined ? { max: p.max } : {}),
  };
}

function numberPoint(common: PointCommon, metric: DecodedMetric, p: DecodedNumberPoint): MetricPoint {
  return {
    ...common,
    temporality: metric.sum ? (metric.sum.aggregationTemporality ?? UNSPECIFIED) : undefined,
    isMonotonic: metric.sum ? (metric.sum.isMonotonic ?? false) : undefined,
    attributes: attributes(p.attributes),
    startTimeUnixNano: p.startTimeUnixNano ?? 0,
    timeUnixNano: p.timeUnixNano ?? 0,
    value: p.asDouble ?? p.asInt ?? 0,
  };
}

/** The points of one metric: histogram, sum and gauge points in full, one bare point for any other type. */
function pointsOf(common: PointCommon, metric: DecodedMetric): MetricPoint[] {
  if (metric.histogram) {
    const temporality = metric.histogram.aggregationTemporality ?? UNSPECIFIED;
    return metric.histogram.dataPoints.map((p) => histogramPoint(common, temporality, p));
  }
  const data = metric.sum ?? metric.gauge;
  if (data) return data.dataPoints.map((p) => numberPoint(common, metric, p));
  return [{ ...common, temporality: undefined, isMonotonic: undefined, attributes: {}, startTimeUnixNano: 0, timeUnixNano: 0 }];
}

/** Every data point of the named metric across `exports`, in their order. */
export function metricPoints(name: string, exports: readonly CollectedExport[]): MetricPoint[] {
  const out: MetricPoint[] = [];
  for (const exp of exports) {
    for (const rm of exp.request.resourceMetrics) {
      const resource = attributes(rm.resource?.attributes);
      for (const sm of rm.scopeMetrics) {
        const scope = { name: sm.scope?.name ?? '', version: sm.scope?.version ?? '' };
        for (const metric of sm.metrics) {
          if (metric.name !== name) continue;
          const common: PointCommon = {
            exportIndex: exp.index,
            resource,
            scope,
            name,
            unit: metric.unit ?? '',
            description: metric.description ?? '',
            type: metric.data ?? 'unknown',
          };
          out.push(...pointsOf(common, metric));
        }
      }
    }
  }
  return out;
}

/** Resource attributes of every resource in `exports`. */
export function resourcesOf(exports: readonly CollectedExport[]): Attributes[] {
  return exports.flatMap((e) => e.request.resourceMetrics.map((rm) => attributes(rm.resource?.attributes)));
}

/** The names of every metric in `exports`, each once. */
export function metricNames(exports: readonly CollectedExport[]): Set<string> {
  const names = new Set<string>();
  for (const e of exports) for (const rm of e.request.resourceMetrics) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) names.add(m.name ?? '');
  return names;
}
