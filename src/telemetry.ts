import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  InstrumentType,
  MeterProvider,
  MetricReader,
  PeriodicExportingMetricReader,
  type CollectionResult,
  type MetricData,
  type MetricProducer,
  type PushMetricExporter,
  type ScopeMetrics,
} from '@opentelemetry/sdk-metrics';
import type { OtlpConfig } from './config.js';

/** A reader that only answers collect(): the pool pulls it when an exporter asks. */
class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

interface Destination {
  readonly provider: MeterProvider;
  readonly reader: PullReader;
  /** A second reader with base-2 exponential histograms, for OTLP when asked for. */
  readonly exponential: PullReader | undefined;
  readonly meter: Meter;
}

/** Base-2 exponential histograms for the latency histogram; everything else as usual. */
function exponentialReader(): PullReader {
  return new PullReader({
    aggregationSelector: (type) =>
      type === InstrumentType.HISTOGRAM ? { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 160 } } : { type: AggregationType.DEFAULT },
  });
}

const EMPTY_RESOURCE = resourceFromAttributes({});
/** The final OTLP flush on shutdown must not outlast the pod's grace period when the collector is down. */
const SHUTDOWN_FLUSH_MS = 2_000;

/** Concatenates the data points of same-named metrics of one scope, so exporters see one stream per instrument. */
export function mergeScopeMetrics(parts: readonly ScopeMetrics[]): ScopeMetrics[] {
  const byScope = new Map<string, { scope: ScopeMetrics['scope']; metrics: Map<string, MetricData> }>();
  for (const part of parts) {
    const scopeKey = `${part.scope.name}\u0000${part.scope.version ?? ''}\u0000${part.scope.schemaUrl ?? ''}`;
    let scope = byScope.get(scopeKey);
    if (!scope) byScope.set(scopeKey, (scope = { scope: part.scope, metrics: new Map() }));
    for (const metric of part.metrics) {
      const known = scope.metrics.get(metric.descriptor.name);
      if (known) (known.dataPoints as unknown[]).push(...metric.dataPoints);
      else scope.metrics.set(metric.descriptor.name, { ...metric, dataPoints: [...metric.dataPoints] } as MetricData);
    }
  }
  return [...byScope.values()].map(({ scope, metrics }) => ({ scope, metrics: [...metrics.values()] }));
}

/**
 * One MeterProvider per destination, pulled through a MetricProducer.
 * The OTel SDK cannot forget an attribute set; dropping a destination's whole
 * provider is how a deleted node's series leave /metrics (and memory) while
 * every other series keeps its cumulative state.
 */
export class DestinationMeters implements MetricProducer {
  private readonly destinations = new Map<string, Destination>();

  constructor(
    private readonly meterName: string,
    private readonly withExponential = false,
  ) {}

  /** The Meter that records for one destination; the same one until it is released. */
  acquire(key: string): Meter {
    let destination = this.destinations.get(key);
    if (!destination) {
      const reader = new PullReader();
      const exponential = this.withExponential ? exponentialReader() : undefined;
      const provider = new MeterProvider({ resource: EMPTY_RESOURCE, readers: exponential ? [reader, exponential] : [reader] });
      destination = { provider, reader, exponential, meter: provider.getMeter(this.meterName) };
      this.destinations.set(key, destination);
    }
    return destination.meter;
  }

  /** Forgets a destination: its series are gone from the next collection on. */
  release(key: string): void {
    const destination = this.destinations.get(key);
    if (!destination) return;
    this.destinations.delete(key);
    void destination.provider.shutdown().catch(() => {
      // Nothing to flush: a pull reader holds no pending export.
    });
  }

  get size(): number {
    return this.destinations.size;
  }

  async collect(): Promise<CollectionResult> {
    return this.collectFrom((d) => d.reader);
  }

  /** The same destinations seen through their exponential readers (falls back to the explicit one). */
  readonly exponentialProducer: MetricProducer = { collect: () => this.collectFrom((d) => d.exponential ?? d.reader) };

  private async collectFrom(pick: (d: Destination) => PullReader): Promise<CollectionResult> {
    const results = await Promise.all([...this.destinations.values()].map((d) => pick(d).collect()));
    return {
      resourceMetrics: { resource: EMPTY_RESOURCE, scopeMetrics: mergeScopeMetrics(results.flatMap((r) => r.resourceMetrics.scopeMetrics)) },
      errors: results.flatMap((r) => r.errors),
    };
  }

  async shutdown(): Promise<void> {
    const all = [...this.destinations.values()];
    this.destinations.clear();
    await Promise.allSettled(all.map((d) => d.provider.shutdown()));
  }
}

export interface TelemetryOptions {
  readonly resource: Resource;
  readonly meterName: string;
  readonly otlp?: OtlpConfig | undefined;
  /** Overrides the exporter built from `otlp` (tests). */
  readonly otlpExporter?: PushMetricExporter;
}

/** Builds the OTLP exporter the configuration asks for; both protocols are loaded only when used. */
export async function createOtlpExporter(otlp: OtlpConfig): Promise<PushMetricExporter> {
  // A request must not outlive its interval: retried old snapshots arriving after newer ones look like counter resets.
  const options = { temporalityPreference: AggregationTemporality.CUMULATIVE, timeoutMillis: Math.min(10_000, otlp.exportIntervalMs) };
  if (otlp.protocol === 'grpc') {
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-grpc');
    return new OTLPMetricExporter({ ...options, url: otlp.endpoint });
  }
  const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-proto');
  const url = otlp.signalSpecific ? otlp.endpoint : `${otlp.endpoint.replace(/\/+$/, '')}/v1/metrics`;
  return new OTLPMetricExporter({ ...options, url });
}

/** The SDK wiring: Prometheus pull (served by our own HTTP server) and optional OTLP push. */
export class Telemetry {
  readonly destinations: DestinationMeters;
  readonly prometheus: PrometheusExporter;
  /** Agent-wide instruments (not per destination) live here. */
  readonly meter: Meter;
  private readonly provider: MeterProvider;
  private closed: Promise<void> | undefined;

  private constructor(options: TelemetryOptions, otlpExporter: PushMetricExporter | undefined) {
    const exponential = options.otlp?.histogram === 'exponential';
    this.destinations = new DestinationMeters(options.meterName, exponential && otlpExporter !== undefined);
    // No otel_scope_name label: one scope only, and at 20 series per destination every byte counts.
    this.prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, metricProducers: [this.destinations] });
    const readers: MetricReader[] = [this.prometheus];
    if (otlpExporter) {
      readers.push(
        new PeriodicExportingMetricReader({
          exporter: otlpExporter,
          exportIntervalMillis: options.otlp?.exportIntervalMs ?? 60_000,
          exportTimeoutMillis: Math.min(30_000, options.otlp?.exportIntervalMs ?? 30_000),
          metricProducers: [exponential ? this.destinations.exponentialProducer : this.destinations],
        }),
      );
    }
    this.provider = new MeterProvider({ resource: options.resource, readers });
    this.meter = this.provider.getMeter(options.meterName);
  }

  static async create(options: TelemetryOptions): Promise<Telemetry> {
    const exporter = options.otlpExporter ?? (options.otlp ? await createOtlpExporter(options.otlp) : undefined);
    return new Telemetry(options, exporter);
  }

  /** Flushes OTLP once and closes every exporter; safe to call twice. */
  shutdown(): Promise<void> {
    this.closed ??= (async () => {
      await this.provider.shutdown({ timeoutMillis: SHUTDOWN_FLUSH_MS }).catch(() => {});
      await this.destinations.shutdown();
    })();
    return this.closed;
  }
}
