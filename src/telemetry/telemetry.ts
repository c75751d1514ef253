import type { Meter } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { AggregationTemporality, MeterProvider, PeriodicExportingMetricReader, type MetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { OtlpConfig } from '../config.js';
import { DestinationMeters } from './destination-meters.js';
import { PullReader } from './pull-reader.js';

/** The final OTLP flush on shutdown must not outlast the pod's grace period when the collector is down. */
const SHUTDOWN_FLUSH_MS = 2_000;

export interface TelemetryOptions {
  readonly resource: Resource;
  readonly meterName: string;
  readonly maxDestinations?: number;
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
  /** Pulled per scrape: serveMetrics (exposition.ts) collects it and serializes the result itself. */
  readonly prometheus: MetricReader;
  /** Agent-wide instruments (not per destination) live here. */
  readonly meter: Meter;
  private readonly provider: MeterProvider;
  private closed: Promise<void> | undefined;

  private constructor(options: TelemetryOptions, otlpExporter: PushMetricExporter | undefined) {
    const exponential = options.otlp?.histogram === 'exponential';
    this.destinations = new DestinationMeters({
      meterName: options.meterName,
      withExponential: exponential && otlpExporter !== undefined,
      ...(options.maxDestinations !== undefined ? { maxDestinations: options.maxDestinations } : {}),
    });
    // Cumulative, as Prometheus expects; the exporter package is used only for its serializer.
    this.prometheus = new PullReader({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE, metricProducers: [this.destinations] });
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
