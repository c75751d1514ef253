/**
 * A minimal OTLP metrics collector for tests: OTLP/HTTP (protobuf) or OTLP/gRPC on 127.0.0.1:0.
 *
 * Every ExportMetricsServiceRequest is decoded with protobufjs from the opentelemetry-proto
 * definitions (otlp-proto.ts), independently of the exporter's own (hand-written) serializer, and
 * stored with the answer it got. Fault switches make it answer with an error (`setFailing`) or late
 * (`setSlow`). The transports are in otlp-transports.ts, the reading of points in otlp-points.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { metricNames, metricPoints, resourcesOf, type Attributes, type MetricPoint } from './otlp-points.js';
import { decodeExportRequest, METRICS_SERVICE_EXPORT_PATH, type DecodedExportRequest } from './otlp-proto.js';
import { listenGrpc, listenHttp, type ExportAnswer, type ExportHandler } from './otlp-transports.js';

export type { AttributeValue, Attributes, MetricPoint } from './otlp-points.js';
export { decodeExportRequest, METRICS_SERVICE_EXPORT_PATH, type DecodedExportRequest } from './otlp-proto.js';

export type OtlpProtocol = 'http/protobuf' | 'grpc';

/** One export request as it arrived, with what the receiver answered. */
export interface ReceivedExport {
  /** 0-based arrival order. */
  readonly index: number;
  /** Date.now() when the body was complete. */
  readonly receivedAt: number;
  readonly protocol: OtlpProtocol;
  /** HTTP request path, or the gRPC method path. */
  readonly path: string;
  /** HTTP content-type, or the gRPC content-type. */
  readonly contentType: string | undefined;
  /** HTTP status answered (200 on success); for gRPC, 200 or the HTTP status given to setFailing. */
  readonly status: number;
  readonly accepted: boolean;
  readonly request: DecodedExportRequest;
}

export interface OtlpReceiverOptions {
  readonly protocol: OtlpProtocol;
  /** HTTP only: the path export requests must use; anything else gets 404 (and is still counted). Default /v1/metrics. */
  readonly path?: string;
}

/** The receiver: what arrived, the fault switches, and the points read back from it. */
export class OtlpReceiver {
  /** Every export request that arrived, accepted or not, in arrival order. */
  readonly exports: ReceivedExport[] = [];
  /** Requests on other paths (HTTP), which got 404. */
  readonly strayPaths: string[] = [];
  /** Bodies that did not decode. */
  readonly decodeErrors: string[] = [];
  private failing: number | false = false;
  private slowMs = 0;
  private arrivals = 0;

  private constructor(
    readonly protocol: OtlpProtocol,
    readonly port: number,
    private readonly path: string,
    private readonly close: () => Promise<void>,
  ) {}

  static async start(opts: OtlpReceiverOptions): Promise<OtlpReceiver> {
    const path = opts.path ?? '/v1/metrics';
    let receiver: OtlpReceiver | undefined;
    const handle: ExportHandler = (body, info) => receiver!.handle(body, info);

    if (opts.protocol === 'grpc') {
      const listener = await listenGrpc(handle);
      receiver = new OtlpReceiver('grpc', listener.port, METRICS_SERVICE_EXPORT_PATH, listener.close);
      return receiver;
    }
    const listener = await listenHttp(path, handle, (request) => receiver!.strayPaths.push(request));
    receiver = new OtlpReceiver('http/protobuf', listener.port, path, listener.close);
    return receiver;
  }

  /** Base URL: the HTTP exporter appends /v1/metrics; the gRPC exporter uses it as is. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The full URL of the metrics endpoint (HTTP: endpoint + path). */
  get metricsUrl(): string {
    return this.protocol === 'grpc' ? this.endpoint : `${this.endpoint}${this.path}`;
  }

  /** Export requests that arrived (accepted, failed or undecodable). */
  get requests(): number {
    return this.arrivals;
  }

  /** Export requests answered with success. */
  get accepted(): ReceivedExport[] {
    return this.exports.filter((e) => e.accepted);
  }

  /**
   * Answers every export request with this HTTP status (gRPC: the matching status, 503 → UNAVAILABLE),
   * or normally again with `false`. The request is still decoded and stored, with accepted=false.
   */
  setFailing(status: number | false): void {
    if (status !== false && (!Number.isInteger(status) || status < 400 || status > 599))
      throw new Error(`setFailing wants an HTTP error status, got ${status}`);
    this.failing = status;
  }

  /** Delays every answer by this many milliseconds (0: answer at once). */
  setSlow(ms: number): void {
    this.slowMs = ms;
  }

  private async handle(body: Uint8Array, info: { path: string; contentType: string | undefined }): Promise<ExportAnswer> {
    this.arrivals++;
    const receivedAt = Date.now();
    let request: DecodedExportRequest;
    try {
      request = decodeExportRequest(body);
    } catch (err) {
      this.decodeErrors.push(String(err));
      return { ok: false, status: 400, message: `cannot decode ExportMetricsServiceRequest: ${String(err)}` };
    }
    const failing = this.failing;
    if (this.slowMs > 0) await sleep(this.slowMs);
    this.exports.push({
      index: this.exports.length,
      receivedAt,
      protocol: this.protocol,
      path: info.path,
      contentType: info.contentType,
      status: failing === false ? 200 : failing,
      accepted: failing === false,
      request,
    });
    return failing === false ? { ok: true } : { ok: false, status: failing, message: 'receiver is failing on purpose' };
  }

  /** Every data point of the named metric across `from` (default: the accepted exports), in arrival order. */
  points(name: string, from: readonly ReceivedExport[] = this.accepted): MetricPoint[] {
    return metricPoints(name, from);
  }

  /** The data points of the named metric in the last accepted export that has it (empty if none has). */
  latestPoints(name: string): MetricPoint[] {
    const accepted = this.accepted;
    for (let i = accepted.length - 1; i >= 0; i--) {
      const pts = this.points(name, [accepted[i]!]);
      if (pts.length > 0) return pts;
    }
    return [];
  }

  /** Resource attributes of every accepted export. */
  resources(): Attributes[] {
    return resourcesOf(this.accepted);
  }

  /** One line about what arrived, for failure messages. */
  summary(): string {
    const names = metricNames(this.accepted);
    return (
      `${this.protocol} receiver on ${this.port}: ${this.arrivals} requests, ${this.accepted.length} accepted, metrics [${[...names].join(', ')}]` +
      (this.strayPaths.length ? `, stray paths [${[...new Set(this.strayPaths)].join(', ')}]` : '') +
      (this.decodeErrors.length ? `, decode errors [${this.decodeErrors[0]}]` : '')
    );
  }

  /** Polls `predicate` every 20 ms until it holds; rejects after `timeoutMs` with `what` and the summary. */
  async waitFor(predicate: (receiver: OtlpReceiver) => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (predicate(this)) return;
      if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.summary()}`);
      await sleep(20);
    }
  }

  private stopped: Promise<void> | undefined;

  /** Closes the listener and every connection; safe to call twice. */
  stop(): Promise<void> {
    this.stopped ??= this.close();
    return this.stopped;
  }
}
