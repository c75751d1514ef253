/**
 * A minimal OTLP metrics collector for tests: OTLP/HTTP (protobuf) or OTLP/gRPC on 127.0.0.1:0.
 *
 * Every ExportMetricsServiceRequest is decoded with protobufjs from the opentelemetry-proto
 * definitions below, independently of the exporter's own (hand-written) serializer, and stored
 * with the answer it got. Fault switches make it answer with an error (`setFailing`) or late
 * (`setSlow`).
 */
import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync, inflateSync } from 'node:zlib';
import { listenLocal } from './listen.js';

/**
 * The messages of opentelemetry-proto v1 (github.com/open-telemetry/opentelemetry-proto) that an
 * ExportMetricsServiceRequest is made of, transcribed field for field (names, numbers, types) from
 * common/v1/common.proto, resource/v1/resource.proto, metrics/v1/metrics.proto and
 * collector/metrics/v1/metrics_service.proto, comments and language options left out.
 * @opentelemetry/otlp-transformer 0.301 no longer ships generated protobuf code (it has hand-written
 * writers and only a response reader), and no package here ships the .proto files, so they live here.
 */
const OTLP_METRICS_PROTO = `
syntax = "proto3";

package opentelemetry.proto.common.v1;

message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue {
  string key = 1;
  AnyValue value = 2;
}
message InstrumentationScope {
  string name = 1;
  string version = 2;
  repeated KeyValue attributes = 3;
  uint32 dropped_attributes_count = 4;
}
message EntityRef {
  string schema_url = 1;
  string type = 2;
  repeated string id_keys = 3;
  repeated string description_keys = 4;
}

package opentelemetry.proto.resource.v1;

message Resource {
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 1;
  uint32 dropped_attributes_count = 2;
  repeated opentelemetry.proto.common.v1.EntityRef entity_refs = 3;
}

package opentelemetry.proto.metrics.v1;

message MetricsData { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics {
  reserved 1000;
  opentelemetry.proto.resource.v1.Resource resource = 1;
  repeated ScopeMetrics scope_metrics = 2;
  string schema_url = 3;
}
message ScopeMetrics {
  opentelemetry.proto.common.v1.InstrumentationScope scope = 1;
  repeated Metric metrics = 2;
  string schema_url = 3;
}
message Metric {
  reserved 4, 6, 8;
  string name = 1;
  string description = 2;
  string unit = 3;
  oneof data {
    Gauge gauge = 5;
    Sum sum = 7;
    Histogram histogram = 9;
    ExponentialHistogram exponential_histogram = 10;
    Summary summary = 11;
  }
  repeated opentelemetry.proto.common.v1.KeyValue metadata = 12;
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum {
  repeated NumberDataPoint data_points = 1;
  AggregationTemporality aggregation_temporality = 2;
  bool is_monotonic = 3;
}
message Histogram {
  repeated HistogramDataPoint data_points = 1;
  AggregationTemporality aggregation_temporality = 2;
}
message ExponentialHistogram {
  repeated ExponentialHistogramDataPoint data_points = 1;
  AggregationTemporality aggregation_temporality = 2;
}
message Summary { repeated SummaryDataPoint data_points = 1; }
enum AggregationTemporality {
  AGGREGATION_TEMPORALITY_UNSPECIFIED = 0;
  AGGREGATION_TEMPORALITY_DELTA = 1;
  AGGREGATION_TEMPORALITY_CUMULATIVE = 2;
}
enum DataPointFlags {
  DATA_POINT_FLAGS_DO_NOT_USE = 0;
  DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK = 1;
}
message NumberDataPoint {
  reserved 1;
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 7;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  oneof value {
    double as_double = 4;
    sfixed64 as_int = 6;
  }
  repeated Exemplar exemplars = 5;
  uint32 flags = 8;
}
message HistogramDataPoint {
  reserved 1;
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 9;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  optional double sum = 5;
  repeated fixed64 bucket_counts = 6;
  repeated double explicit_bounds = 7;
  repeated Exemplar exemplars = 8;
  uint32 flags = 10;
  optional double min = 11;
  optional double max = 12;
}
message ExponentialHistogramDataPoint {
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 1;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  optional double sum = 5;
  sint32 scale = 6;
  fixed64 zero_count = 7;
  Buckets positive = 8;
  Buckets negative = 9;
  message Buckets {
    sint32 offset = 1;
    repeated uint64 bucket_counts = 2;
  }
  uint32 flags = 10;
  repeated Exemplar exemplars = 11;
  optional double min = 12;
  optional double max = 13;
  double zero_threshold = 14;
}
message SummaryDataPoint {
  reserved 1;
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 7;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  double sum = 5;
  message ValueAtQuantile {
    double quantile = 1;
    double value = 2;
  }
  repeated ValueAtQuantile quantile_values = 6;
  uint32 flags = 8;
}
message Exemplar {
  reserved 1;
  repeated opentelemetry.proto.common.v1.KeyValue filtered_attributes = 7;
  fixed64 time_unix_nano = 2;
  oneof value {
    double as_double = 3;
    sfixed64 as_int = 6;
  }
  bytes span_id = 4;
  bytes trace_id = 5;
}

package opentelemetry.proto.collector.metrics.v1;

service MetricsService {
  rpc Export(ExportMetricsServiceRequest) returns (ExportMetricsServiceResponse) {}
}
message ExportMetricsServiceRequest {
  repeated opentelemetry.proto.metrics.v1.ResourceMetrics resource_metrics = 1;
}
message ExportMetricsServiceResponse {
  ExportMetricsPartialSuccess partial_success = 1;
}
message ExportMetricsPartialSuccess {
  int64 rejected_data_points = 1;
  string error_message = 2;
}
`;

/**
 * protobufjs takes one `package` per parse, so the text is parsed package by package into one root
 * (later packages resolve the types of earlier ones by their full names).
 */
function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  const sections = OTLP_METRICS_PROTO.split(/^(?=package )/m).slice(1);
  for (const section of sections) protobuf.parse(`syntax = "proto3";\n${section}`, root, { keepCase: false });
  root.resolveAll();
  return root;
}

const root = loadRoot();
const ExportRequest = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest');
const ExportResponse = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse');
const EMPTY_RESPONSE = Buffer.from(ExportResponse.encode(ExportResponse.create({})).finish());

/** The gRPC method the OTLP exporters call. */
export const METRICS_SERVICE_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';

export type OtlpProtocol = 'http/protobuf' | 'grpc';

export type AttributeValue = string | number | boolean | Uint8Array | null | AttributeValue[] | { [key: string]: AttributeValue };
export type Attributes = Record<string, AttributeValue>;

/** The decoded request as protobufjs' plain object (camelCase fields, 64-bit integers as numbers, enums by name). */
export interface DecodedExportRequest {
  resourceMetrics: Array<{
    resource?: { attributes: KeyValue[]; droppedAttributesCount?: number };
    scopeMetrics: Array<{ scope?: { name?: string; version?: string; attributes: KeyValue[] }; metrics: DecodedMetric[]; schemaUrl?: string }>;
    schemaUrl?: string;
  }>;
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number;
  doubleValue?: number;
  arrayValue?: { values: AnyValue[] };
  kvlistValue?: { values: KeyValue[] };
  bytesValue?: Uint8Array;
}
interface DecodedNumberPoint {
  attributes: KeyValue[];
  startTimeUnixNano?: number;
  timeUnixNano?: number;
  asDouble?: number;
  asInt?: number;
  flags?: number;
}
interface DecodedHistogramPoint {
  attributes: KeyValue[];
  startTimeUnixNano?: number;
  timeUnixNano?: number;
  count?: number;
  sum?: number;
  bucketCounts: number[];
  explicitBounds: number[];
  min?: number;
  max?: number;
  flags?: number;
}
interface DecodedMetric {
  name?: string;
  description?: string;
  unit?: string;
  /** Which member of the `data` oneof is set. */
  data?: 'gauge' | 'sum' | 'histogram' | 'exponentialHistogram' | 'summary';
  gauge?: { dataPoints: DecodedNumberPoint[] };
  sum?: { dataPoints: DecodedNumberPoint[]; aggregationTemporality?: string; isMonotonic?: boolean };
  histogram?: { dataPoints: DecodedHistogramPoint[]; aggregationTemporality?: string };
  exponentialHistogram?: { dataPoints: unknown[]; aggregationTemporality?: string };
  summary?: { dataPoints: unknown[] };
}

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

export interface OtlpReceiverOptions {
  readonly protocol: OtlpProtocol;
  /** HTTP only: the path export requests must use; anything else gets 404 (and is still counted). Default /v1/metrics. */
  readonly path?: string;
}

const CONVERSION: protobuf.IConversionOptions = { longs: Number, enums: String, bytes: Buffer, defaults: false, arrays: true, objects: false, oneofs: true };

export function decodeExportRequest(body: Uint8Array): DecodedExportRequest {
  const message = ExportRequest.decode(body);
  return ExportRequest.toObject(message, CONVERSION) as DecodedExportRequest;
}

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

function attributes(list: readonly KeyValue[] | undefined): Attributes {
  const out: Attributes = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

/** HTTP status → the gRPC status a collector would use for it. */
function grpcStatusFor(httpStatus: number): grpc.status {
  switch (httpStatus) {
    case 400:
      return grpc.status.INVALID_ARGUMENT;
    case 401:
      return grpc.status.UNAUTHENTICATED;
    case 403:
      return grpc.status.PERMISSION_DENIED;
    case 404:
      return grpc.status.UNIMPLEMENTED;
    case 429:
      return grpc.status.RESOURCE_EXHAUSTED;
    case 500:
      return grpc.status.INTERNAL;
    default:
      return grpc.status.UNAVAILABLE;
  }
}

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
    const handle = (body: Uint8Array, info: { path: string; contentType: string | undefined }) => receiver!.handle(body, info);

    if (opts.protocol === 'grpc') {
      const server = new grpc.Server();
      const definition: grpc.ServiceDefinition = {
        Export: {
          path: METRICS_SERVICE_EXPORT_PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      };
      server.addService(definition, {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const contentType = call.metadata.get('content-type')[0]?.toString();
          handle(call.request, { path: METRICS_SERVICE_EXPORT_PATH, contentType }).then(
            (answer) => {
              if (answer.ok) callback(null, EMPTY_RESPONSE);
              else callback({ code: grpcStatusFor(answer.status), details: answer.message });
            },
            (err: unknown) => callback({ code: grpc.status.INTERNAL, details: String(err) }),
          );
        },
      });
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
      );
      const close = () =>
        new Promise<void>((resolve) => {
          server.forceShutdown();
          resolve();
        });
      receiver = new OtlpReceiver('grpc', port, METRICS_SERVICE_EXPORT_PATH, close);
      return receiver;
    }

    const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', () => res.destroy());
      req.on('end', () => {
        const reqPath = (req.url ?? '/').split('?')[0]!;
        if (req.method !== 'POST' || reqPath !== path) {
          receiver!.strayPaths.push(`${req.method} ${reqPath}`);
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
          return;
        }
        let body: Buffer = Buffer.concat(chunks);
        try {
          const encoding = req.headers['content-encoding'];
          if (encoding === 'gzip') body = gunzipSync(body);
          else if (encoding === 'deflate') body = inflateSync(body);
        } catch (err) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad body encoding: ${String(err)}\n`);
          return;
        }
        handle(body, { path: reqPath, contentType: req.headers['content-type'] }).then(
          (answer) => {
            if (res.destroyed) return;
            if (answer.ok) res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': EMPTY_RESPONSE.length }).end(EMPTY_RESPONSE);
            else res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(`${answer.message}\n`);
          },
          (err: unknown) => {
            if (!res.destroyed) res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`);
          },
        );
      });
    });
    const port = await listenLocal(server);
    const close = () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    receiver = new OtlpReceiver('http/protobuf', port, path, close);
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

  private async handle(
    body: Uint8Array,
    info: { path: string; contentType: string | undefined },
  ): Promise<{ ok: true } | { ok: false; status: number; message: string }> {
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
    const out: MetricPoint[] = [];
    for (const exp of from) {
      for (const rm of exp.request.resourceMetrics) {
        const resource = attributes(rm.resource?.attributes);
        for (const sm of rm.scopeMetrics) {
          const scope = { name: sm.scope?.name ?? '', version: sm.scope?.version ?? '' };
          for (const metric of sm.metrics) {
            if (metric.name !== name) continue;
            const common = {
              exportIndex: exp.index,
              resource,
              scope,
              name,
              unit: metric.unit ?? '',
              description: metric.description ?? '',
              type: metric.data ?? ('unknown' as const),
            };
            if (metric.histogram) {
              for (const p of metric.histogram.dataPoints) {
                out.push({
                  ...common,
                  temporality: metric.histogram.aggregationTemporality ?? 'AGGREGATION_TEMPORALITY_UNSPECIFIED',
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
                });
              }
            } else if (metric.sum || metric.gauge) {
              const data = (metric.sum ?? metric.gauge)!;
              for (const p of data.dataPoints) {
                out.push({
                  ...common,
                  temporality: metric.sum ? (metric.sum.aggregationTemporality ?? 'AGGREGATION_TEMPORALITY_UNSPECIFIED') : undefined,
                  isMonotonic: metric.sum ? (metric.sum.isMonotonic ?? false) : undefined,
                  attributes: attributes(p.attributes),
                  startTimeUnixNano: p.startTimeUnixNano ?? 0,
                  timeUnixNano: p.timeUnixNano ?? 0,
                  value: p.asDouble ?? p.asInt ?? 0,
                });
              }
            } else {
              out.push({ ...common, temporality: undefined, isMonotonic: undefined, attributes: {}, startTimeUnixNano: 0, timeUnixNano: 0 });
            }
          }
        }
      }
    }
    return out;
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
    return this.accepted.flatMap((e) => e.request.resourceMetrics.map((rm) => attributes(rm.resource?.attributes)));
  }

  /** One line about what arrived, for failure messages. */
  summary(): string {
    const names = new Set<string>();
    for (const e of this.accepted)
      for (const rm of e.request.resourceMetrics) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) names.add(m.name ?? '');
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
