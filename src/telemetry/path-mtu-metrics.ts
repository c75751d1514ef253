/** Path-MTU probes as series: a counter per pair, path and result, and the MTU a router reported. */
import type { Attributes, Counter, Gauge } from '@opentelemetry/api';
import type { MtuResult } from '../probe/path-mtu.js';
import type { Target } from '../types.js';
import type { SeriesSink } from './metrics.js';

interface PairSeries {
  readonly attributes: Attributes;
  /** The results seen for the pair so far: a series is created by its first count. */
  readonly byResult: Partial<Record<MtuResult, Attributes>>;
  /** Whether a fragmentation-needed or packet-too-big set the gauge: its series is then forgotten too. */
  reported: boolean;
}

export class PathMtuMetrics {
  private readonly series = new Map<string, PairSeries>();
  private readonly probes: Counter;
  private readonly reportedMtu: Gauge;

  /** Both instruments record through the sink, whose series can be forgotten (an observable gauge's cannot: opentelemetry-js#2997). */
  constructor(
    private readonly sink: SeriesSink,
    private readonly originNode: string,
  ) {
    this.probes = sink.meter.createCounter('mentat_path_mtu_probes', {
      description:
        'Full-size probes with do-not-fragment set, by result: ok, lost (no answer: a path-MTU black hole when small probes are answered), too_big (a router answered fragmentation needed / packet too big), error',
    });
    this.reportedMtu = sink.meter.createGauge('mentat_path_mtu_bytes', {
      description: 'The path MTU the last ICMP fragmentation needed / packet too big reported for the pair and path (absent until one arrives)',
      unit: 'By',
    });
  }

  record(target: Target, result: MtuResult, reportedMtu?: number): void {
    let series = this.series.get(target.key);
    if (!series) {
      const attributes: Attributes = { origin_node: this.originNode, destination_node: target.name, path: target.path ?? 'node' };
      series = { attributes, byResult: {}, reported: false };
      this.series.set(target.key, series);
    }
    // Series are created by their first count, not from zero as node_latency_probes_total's: a
    // healthy pair then costs one series (result="ok"), not four, which keeps two paths at 5000
    // nodes within 600 series per agent (bench, cluster cost). A rule reads a missing "lost" as no loss.
    const attributes = (series.byResult[result] ??= { ...series.attributes, result });
    this.probes.add(1, attributes);
    if (reportedMtu !== undefined) {
      series.reported = true;
      this.reportedMtu.record(reportedMtu, series.attributes);
    }
  }

  /** Drops the series of every target not in `live`. */
  retain(live: ReadonlySet<string>): void {
    for (const [key, series] of this.series) {
      if (live.has(key)) continue;
      this.series.delete(key);
      this.sink.forget([...Object.values(series.byResult), ...(series.reported ? [series.attributes] : [])]);
    }
  }
}
