/*
 * /metrics in pieces. The OTel Prometheus exporter serializes a whole collection into one string
 * tree before sending it: at 5000 destinations that is about 840k string fragments (~25 MiB)
 * alive at once. Here each metric's data points go through the exporter's own serializer a slice
 * at a time and are written out as they are made, so a scrape holds one slice.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { CollectionResult, MetricData, ResourceMetrics, ScopeMetrics } from '@opentelemetry/sdk-metrics';

/** Data points per serialized piece: about 80 KiB of text for the latency histogram. */
export const SLICE_POINTS = 64;

/** The exporter-prometheus version whose PrometheusSerializer arguments are named below; test/telemetry/exposition-fence.test.ts holds it. */
export const SERIALIZER_FENCED_VERSION = '0.301.0';

/** PrometheusSerializer's positional arguments (as of SERIALIZER_FENCED_VERSION), named once. */
export function serializer(options: {
  prefix?: string;
  appendTimestamp: boolean;
  withResourceConstantLabels?: RegExp;
  withoutTargetInfo: boolean;
  withoutScopeInfo: boolean;
}): PrometheusSerializer {
  return new PrometheusSerializer(
    options.prefix,
    options.appendTimestamp,
    options.withResourceConstantLabels,
    options.withoutTargetInfo,
    options.withoutScopeInfo,
  );
}

// No otel_scope_name label: one scope only, and at 18 series per destination every byte counts.
const WITH_TARGET_INFO = serializer({ appendTimestamp: false, withoutTargetInfo: false, withoutScopeInfo: true });
const WITHOUT_TARGET_INFO = serializer({ appendTimestamp: false, withoutTargetInfo: true, withoutScopeInfo: true });

/** HELP, UNIT and TYPE lines at the start of a piece; sample lines never start with '#'. */
const LEADING_COMMENTS = /^(?:#[^\n]*\n)+/;

/**
 * The text exposition of a collection, piece by piece. Pieces of one metric family are adjacent and
 * only the family's first carries its HELP/UNIT/TYPE; target_info comes with the first piece.
 */
export function* exposition(resourceMetrics: ResourceMetrics, slicePoints = SLICE_POINTS): Generator<string> {
  // Same-named metrics of different scopes form one family: group them so the family stays contiguous.
  const families = new Map<string, { scope: ScopeMetrics['scope']; metric: MetricData }[]>();
  for (const { scope, metrics } of resourceMetrics.scopeMetrics) {
    for (const metric of metrics) {
      if (metric.dataPoints.length === 0) continue;
      const family = families.get(metric.descriptor.name);
      if (family) family.push({ scope, metric });
      else families.set(metric.descriptor.name, [{ scope, metric }]);
    }
  }
  if (families.size === 0) {
    yield WITH_TARGET_INFO.serialize(resourceMetrics);
    return;
  }
  let first = true;
  for (const members of families.values()) {
    let familyStarted = false;
    for (const { scope, metric } of members) {
      for (let start = 0; start < metric.dataPoints.length; start += slicePoints) {
        const dataPoints = metric.dataPoints.slice(start, start + slicePoints);
        const piece: ResourceMetrics = { resource: resourceMetrics.resource, scopeMetrics: [{ scope, metrics: [{ ...metric, dataPoints } as MetricData] }] };
        const text = (first ? WITH_TARGET_INFO : WITHOUT_TARGET_INFO).serialize(piece);
        yield familyStarted ? text.replace(LEADING_COMMENTS, '') : text;
        first = false;
        familyStarted = true;
      }
    }
  }
}

/** Resolves when the response can take more, or is gone. */
function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** A scrape whose client takes nothing for this long is dropped. */
export const STALL_TIMEOUT_MS = 10_000;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Serves one scrape: collects, then streams the exposition with backpressure, giving the event
 * loop a turn between pieces so a large scrape does not stall health checks or other scrapes.
 */
export async function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  collect: () => Promise<CollectionResult>,
  onCollectionErrors: (errors: unknown[]) => void,
  stallTimeoutMs = STALL_TIMEOUT_MS,
): Promise<void> {
  // A client that stops reading would otherwise hold its snapshot (MiBs at 5000 destinations) for good.
  res.setTimeout(stallTimeoutMs, () => res.destroy());
  let result: CollectionResult;
  try {
    result = await collect();
  } catch (err) {
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`# failed to collect metrics: ${(err as Error).message}\n`);
    return;
  }
  if (result.errors.length > 0) onCollectionErrors(result.errors);
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  for (const piece of exposition(result.resourceMetrics)) {
    if (res.destroyed) return;
    if (res.write(piece)) await nextTurn();
    else await writable(res);
  }
  res.end();
}
