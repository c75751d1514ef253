/** Small statistics for the benchmark: exact quantiles of samples, and Prometheus-style histogram quantiles. */

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

/** Quantile of samples with linear interpolation between closest ranks (numpy's default). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** One cumulative histogram bucket: count of observations <= le. */
export interface Bucket {
  readonly le: number;
  readonly count: number;
}

/**
 * What PromQL's histogram_quantile returns for cumulative buckets: the rank is
 * located in its bucket and interpolated linearly between the bucket's bounds
 * (the first bucket starts at 0; a rank in +Inf returns the last finite bound).
 */
export function histogramQuantile(buckets: readonly Bucket[], q: number): number {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  if (sorted.length === 0) return Number.NaN;
  const total = sorted.at(-1)!.count;
  if (total <= 0) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.count - prevCount;
      if (inBucket <= 0) return b.le;
      return prevLe + (b.le - prevLe) * ((rank - prevCount) / inBucket);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/** Sample variance. */
export function variance(values: readonly number[]): number {
  if (values.length < 2) return Number.NaN;
  const m = mean(values);
  let s = 0;
  for (const v of values) s += (v - m) ** 2;
  return s / (values.length - 1);
}

/**
 * Variance estimated from cumulative buckets, each observation at its bucket's
 * midpoint (the +Inf bucket at the last finite bound): good enough to size a
 * confidence interval.
 */
export function histogramVariance(buckets: readonly Bucket[]): number {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  let prevLe = 0;
  let prevCount = 0;
  let n = 0;
  let s = 0;
  let s2 = 0;
  for (const b of sorted) {
    const k = b.count - prevCount;
    const x = b.le === Infinity ? prevLe : (prevLe + b.le) / 2;
    n += k;
    s += k * x;
    s2 += k * x * x;
    if (b.le !== Infinity) prevLe = b.le;
    prevCount = b.count;
  }
  if (n < 2) return Number.NaN;
  return (s2 - (s * s) / n) / (n - 1);
}

/** Bucket-by-bucket difference of two cumulative histograms (after minus before). */
export function bucketDelta(before: readonly Bucket[], after: readonly Bucket[]): Bucket[] {
  const prior = new Map(before.map((b) => [b.le, b.count]));
  return after.map((b) => ({ le: b.le, count: b.count - (prior.get(b.le) ?? 0) }));
}

/** Puts samples into cumulative buckets with the given bounds (plus +Inf). */
export function toBuckets(values: readonly number[], bounds: readonly number[]): Bucket[] {
  const les = [...bounds, Infinity];
  return les.map((le) => ({ le, count: values.filter((v) => v <= le).length }));
}

/** Fixed decimals, or an en dash for "no value". */
export function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toFixed(digits);
}

/** Signed fixed decimals (+12, -3). */
export function fmtSigned(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  const s = value.toFixed(digits);
  return value > 0 && !s.startsWith('+') ? `+${s}` : s;
}

/** A Markdown table; cells are escaped for pipes. */
export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string>>): string {
  const esc = (s: string): string => s.replaceAll('|', '\\|');
  const lines = [`| ${headers.map(esc).join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.map(esc).join(' | ')} |`);
  return lines.join('\n');
}
