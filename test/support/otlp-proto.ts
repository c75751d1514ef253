/**
 * The OTLP metrics schema for the test receiver: the opentelemetry-proto messages an
 * ExportMetricsServiceRequest is made of, parsed with protobufjs, and the decoded request's shape.
 * Decoding here is independent of the exporter's own (hand-written) serializer.
 */
import protobuf from 'protobufjs';

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

/** The answer to an accepted export: an empty ExportMetricsServiceResponse. */
export const EMPTY_RESPONSE = Buffer.from(ExportResponse.encode(ExportResponse.create({})).finish());

/** The gRPC method the OTLP exporters call. */
export const METRICS_SERVICE_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';

/** The decoded request as protobufjs' plain object (camelCase fields, 64-bit integers as numbers, enums by name). */
export interface DecodedExportRequest {
  resourceMetrics: Array<{
    resource?: { attributes: KeyValue[]; droppedAttributesCount?: number };
    scopeMetrics: Array<{ scope?: { name?: string; version?: string; attributes: KeyValue[] }; metrics: DecodedMetric[]; schemaUrl?: string }>;
    schemaUrl?: string;
  }>;
}
export interface KeyValue {
  key: string;
  value?: AnyValue;
}
export interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number;
  doubleValue?: number;
  arrayValue?: { values: AnyValue[] };
  kvlistValue?: { values: KeyValue[] };
  bytesValue?: Uint8Array;
}
export interface DecodedNumberPoint {
  attributes: KeyValue[];
  startTimeUnixNano?: number;
  timeUnixNano?: number;
  asDouble?: number;
  asInt?: number;
  flags?: number;
}
export interface DecodedHistogramPoint {
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
export interface DecodedMetric {
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

const CONVERSION: protobuf.IConversionOptions = { longs: Number, enums: String, bytes: Buffer, defaults: false, arrays: true, objects: false, oneofs: true };

/** Decodes an ExportMetricsServiceRequest body; throws on a body that is not one. */
export function decodeExportRequest(body: Uint8Array): DecodedExportRequest {
  const message = ExportRequest.decode(body);
  return ExportRequest.toObject(message, CONVERSION) as DecodedExportRequest;
}
