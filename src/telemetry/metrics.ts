import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import { SELF_STATES, TARGET_STATES, type AgentStats, type NetworkPath, type Outcome, type Target } from '../types.js';

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
      description: 'Round-trip time of ICMP echo from origin_node to destination_node, on the node or the pod network (path)',
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
    // path on every series, so that `path="node"` and `path="pod"` select without a regex.
    const attributes: Attributes = { origin_node: this.options.originNode, destination_node: target.name, path: target.path ?? 'node' };
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

export const SWEEP_LATENCY_METRIC = 'node_latency_sweep';
export const SWEEP_PROBES_METRIC = 'node_latency_sweep_probes';

/**
 * The sweep's results, by destination zone only: every pair is probed, but a series per pair would
 * be the O(N²) this avoids. A bad pair gets node_latency series of its own (an outlier) instead.
 */
export class SweepMetrics {
  private readonly latency: Histogram;
  private readonly probes: Counter;
  private originZone = UNKNOWN_ZONE;
  private readonly seen = new Set<string>();

  constructor(
    meter: Meter,
    private readonly originNode: string,
    bucketsSeconds: readonly number[],
  ) {
    this.latency = meter.createHistogram(SWEEP_LATENCY_METRIC, {
      description:
        'Round-trip time of the sweep: ICMP echo from origin_node to every other node of destination_zone, one probe per node per MENTAT_SWEEP_INTERVAL',
      unit: 's',
      advice: { explicitBucketBoundaries: [...bucketsSeconds] },
    });
    this.probes = meter.createCounter(SWEEP_PROBES_METRIC, {
      description: 'Sweep probes sent, by destination_zone, path (node or pod network) and result: success, timeout (loss) or error',
    });
  }

  setOriginZone(zone: string | undefined): void {
    this.originZone = zone ?? UNKNOWN_ZONE;
  }

  record(destinationZone: string | undefined, path: NetworkPath, outcome: Outcome): void {
    const zone = destinationZone ?? UNKNOWN_ZONE;
    const attributes: Attributes = { origin_node: this.originNode, origin_zone: this.originZone, destination_zone: zone, path };
    const key = `${this.originZone}\u0000${zone}\u0000${path}`;
    if (!this.seen.has(key)) {
      // Zero-valued from the start, so loss ratios have every term.
      this.seen.add(key);
      for (const result of ['success', 'timeout', 'error']) this.probes.add(0, { ...attributes, result });
    }
    if (outcome.kind === 'success') this.latency.record(outcome.rttSeconds, attributes);
    this.probes.add(1, { ...attributes, result: outcome.kind });
  }
}

/** The agent's own gauges: one series per state, a fixed handful per agent whatever the cluster size. */
export function registerAgentGauges(meter: Meter, originNode: string, stats: () => AgentStats): void {
  meter
    .createObservableGauge('mentat_targets', {
      description:
        'Nodes this agent knows, by state: probed (every interval), swept (once per sweep interval), suspect and outlier (found by the sweep, probed every interval), leaving (being removed: not probed), over_cap (left out by MENTAT_MAX_TARGETS)',
    })
    .addCallback((result) => {
      const { targets } = stats();
      for (const state of TARGET_STATES) result.observe(targets[state], { origin_node: originNode, state });
    });
  meter
    .createObservableGauge('mentat_probe_interval_seconds', { description: 'The interval each probed node gets, after the MENTAT_MAX_PPS budget', unit: 's' })
    .addCallback((result) => result.observe(stats().intervalSeconds, { origin_node: originNode }));
  meter
    .createObservableGauge('mentat_node_state', {
      description:
        "This agent's own node: 1 for its state (active, joining: younger than MENTAT_NODE_WARMUP, cordoned, leaving), 0 for the others. The alerts stay quiet about nodes that are not active.",
    })
    .addCallback((result) => {
      const { nodeState } = stats();
      for (const state of SELF_STATES) result.observe(state === nodeState ? 1 : 0, { origin_node: originNode, state });
    });
}

/** mentat_icmp_socket_errors_total: errors a socket reported outside any probe (the socket stays open). */
/** Counts probes that ended without a data point (e.g. a wall-clock step during the probe), by reason. */
export function discardCounter(meter: Meter, originNode: string): (reason: string, count: number) => void {
  const counter = meter.createCounter('mentat_probes_discarded', {
    description:
      'Probes that ended without a data point, by reason: clock_step (the wall clock stepped during the probe, so its RTT was wrong), sequence_space (not sent: 65536 probes were in flight), send_buffer (not sent: the socket buffer was full)',
  });
  for (const reason of ['clock_step', 'sequence_space', 'send_buffer']) counter.add(0, { origin_node: originNode, reason });
  return (reason, count) => counter.add(count, { origin_node: originNode, reason });
}

export function socketErrorCounter(meter: Meter, originNode: string): () => void {
  const counter = meter.createCounter('mentat_icmp_socket_errors', {
    description: 'Errors an ICMP socket reported outside any probe (poll or receive failures); probing goes on',
  });
  const attributes = { origin_node: originNode };
  counter.add(0, attributes);
  return () => counter.add(1, attributes);
}
