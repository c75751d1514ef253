/** The delta-to-cumulative store, checked against the OTel SDK's own cumulative aggregation. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Attributes } from '@opentelemetry/api';
import {
  AggregationTemporality,
  AggregationType,
  DataPointType,
  InstrumentType,
  MeterProvider,
  MetricReader,
  type DataPoint,
  type ExponentialHistogram,
  type Histogram,
  type MetricData,
  type MetricReaderOptions,
} from '@opentelemetry/sdk-metrics';
import { attributesKey, CumulativeStore, mergeExponential } from '../../src/telemetry/cumulative.js';

class Reader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/**
 * Deterministic values over 1 to 7 orders of magnitude, the span changing from batch to batch:
 * deltas end at different scales, so merging has to map one onto another.
 */
function* values(seed: number, batches: number, perBatch: number): Generator<number> {
  let state = seed;
  for (let b = 0; b < batches; b++) {
    const decades = 1 + ((b * 3) % 7);
    for (let i = 0; i < perBatch; i++) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      yield i % 97 === 0 ? 0 : 10 ** (-4 + decades * (state / 2 ** 31) - decades / 2);
    }
  }
}

/** Records the same values through a cumulative reader (the oracle) and a delta reader folded into the store. */
async function compare(options: { exponential: boolean; maxSize: number; batches: number; perBatch: number; seed: number }) {
  const selector: MetricReaderOptions['aggregationSelector'] = (type) =>
    type === InstrumentType.HISTOGRAM && options.exponential
      ? { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: options.maxSize } }
      : { type: AggregationType.DEFAULT };
  const cumulative = new Reader({ aggregationSelector: selector });
  const delta = new Reader({ aggregationSelector: selector, aggregationTemporalitySelector: () => AggregationTemporality.DELTA });
  const provider = new MeterProvider({ readers: [cumulative, delta] });
  const meter = provider.getMeter('t');
  const histogram = meter.createHistogram('h', { advice: { explicitBucketBoundaries: [1e-5, 1e-4, 1e-3, 0.01, 0.1, 1] } });
  const counter = meter.createCounter('c');
  const store = new CumulativeStore(options.maxSize);
  const attrs: Attributes[] = [{ d: 'a' }, { d: 'b', z: 'x' }];
  const generator = values(options.seed, options.batches, options.perBatch);
  for (let batch = 0; batch < options.batches; batch++) {
    for (let i = 0; i < options.perBatch; i++) {
      const value = generator.next().value as number;
      const a = attrs[i % 2]!;
      histogram.record(value, a);
      counter.add(1, a);
    }
    const { resourceMetrics } = await delta.collect();
    store.add(
      resourceMetrics.scopeMetrics.flatMap((s) => s.metrics),
      new Set(),
    );
  }
  const { resourceMetrics } = await cumulative.collect();
  const expected = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
  await provider.shutdown();
  return { expected, actual: store.snapshot([0, 0]) };
}

const byName = (metrics: MetricData[], name: string): MetricData => metrics.find((m) => m.descriptor.name === name)!;
const pointOf = <T>(metric: MetricData, attributes: Attributes): DataPoint<T> =>
  (metric.dataPoints as DataPoint<T>[]).find((p) => attributesKey(p.attributes) === attributesKey(attributes))!;

for (const maxSize of [160, 8]) {
  test(`exponential histograms folded from 20 deltas equal the SDK's cumulative ones (maxSize ${maxSize})`, async () => {
    const { expected, actual } = await compare({ exponential: true, maxSize, batches: 20, perBatch: 150, seed: maxSize });
    for (const attributes of [{ d: 'a' }, { d: 'b', z: 'x' }]) {
      const want = pointOf<ExponentialHistogram>(byName(expected, 'h'), attributes).value;
      const got = pointOf<ExponentialHistogram>(byName(actual, 'h'), attributes).value;
      assert.ok(want.scale < 20, 'the values forced the SDK to downscale');
      assert.equal(got.scale, want.scale);
      assert.deepEqual(got.positive, want.positive);
      assert.equal(got.negative.bucketCounts.length, 0);
      assert.deepEqual([got.count, got.zeroCount, got.min, got.max], [want.count, want.zeroCount, want.min, want.max]);
      assert.ok(Math.abs(got.sum! - want.sum!) <= 1e-9 * want.sum!);
      assert.equal(pointOf<number>(byName(actual, 'c'), attributes).value, pointOf<number>(byName(expected, 'c'), attributes).value);
    }
    assert.equal(byName(actual, 'h').aggregationTemporality, AggregationTemporality.CUMULATIVE);
    assert.equal(byName(actual, 'h').dataPointType, DataPointType.EXPONENTIAL_HISTOGRAM);
  });
}

test("explicit-bucket histograms and counters folded from deltas equal the SDK's cumulative ones", async () => {
  const { expected, actual } = await compare({ exponential: false, maxSize: 160, batches: 10, perBatch: 100, seed: 7 });
  for (const attributes of [{ d: 'a' }, { d: 'b', z: 'x' }]) {
    const want = pointOf<Histogram>(byName(expected, 'h'), attributes).value;
    const got = pointOf<Histogram>(byName(actual, 'h'), attributes).value;
    assert.deepEqual(got.buckets, want.buckets);
    assert.deepEqual([got.count, got.min, got.max], [want.count, want.min, want.max]);
    assert.ok(Math.abs(got.sum! - want.sum!) <= 1e-9 * want.sum!);
    assert.equal(pointOf<number>(byName(actual, 'c'), attributes).value, 500);
  }
  const sum = byName(actual, 'c');
  assert.ok(sum.dataPointType === DataPointType.SUM && sum.isMonotonic);
});

test('merging exponential histograms of different scales maps the finer one onto the coarser', () => {
  // scale 1: bucket index i covers (2^(i/2), 2^((i+1)/2)]; scale 0: (2^i, 2^(i+1)].
  const fine: ExponentialHistogram = {
    count: 3,
    sum: 6,
    scale: 1,
    zeroCount: 0,
    positive: { offset: 2, bucketCounts: [1, 1, 1] },
    negative: { offset: 0, bucketCounts: [] },
  };
  const coarse: ExponentialHistogram = {
    count: 1,
    sum: 3,
    scale: 0,
    zeroCount: 1,
    positive: { offset: 1, bucketCounts: [1] },
    negative: { offset: 0, bucketCounts: [] },
  };
  const merged = mergeExponential(fine, coarse, 160);
  assert.equal(merged.scale, 0);
  // fine indexes 2,3,4 at scale 0 are 1,1,2; plus coarse index 1.
  assert.deepEqual(merged.positive, { offset: 1, bucketCounts: [3, 1] });
  assert.deepEqual([merged.count, merged.zeroCount, merged.sum], [4, 1, 9]);
  // Two buckets do not fit in one: one scale coarser.
  assert.deepEqual(mergeExponential(fine, coarse, 1).positive, { offset: 0, bucketCounts: [4] });
});

test('the store forgets, skips, and never changes a snapshot it handed out', () => {
  const store = new CumulativeStore(160);
  const sum = (value: number, d: string): MetricData => ({
    descriptor: { name: 'c', description: '', unit: '', type: InstrumentType.COUNTER, valueType: 1 } as MetricData['descriptor'],
    aggregationTemporality: AggregationTemporality.DELTA,
    dataPointType: DataPointType.SUM,
    isMonotonic: true,
    dataPoints: [{ attributes: { d }, startTime: [1, 0], endTime: [2, 0], value }],
  });
  store.add([sum(2, 'a'), sum(5, 'b')], new Set());
  const before = store.snapshot([3, 0]);
  store.add([sum(1, 'a')], new Set());
  store.add([sum(100, 'b')], new Set([attributesKey({ d: 'b' })]));
  assert.equal((before[0]!.dataPoints as DataPoint<number>[]).find((p) => p.attributes['d'] === 'a')!.value, 2, 'the earlier snapshot is unchanged');
  const after = store.snapshot([4, 0])[0]!.dataPoints as DataPoint<number>[];
  assert.deepEqual(
    after.map((p) => [p.attributes['d'], p.value, p.startTime, p.endTime]),
    [
      ['a', 3, [1, 0], [4, 0]],
      ['b', 5, [1, 0], [4, 0]],
    ],
    'b skipped; cumulative points keep their first start time',
  );
  store.delete([attributesKey({ d: 'a' })]);
  assert.equal(store.size, 1);
  store.delete([attributesKey({ d: 'b' })]);
  assert.deepEqual(store.snapshot([5, 0]), [], 'a metric without series is left out');
  assert.equal(attributesKey({ x: 1, y: 'a' }), attributesKey({ y: 'a', x: 1 }));
});
