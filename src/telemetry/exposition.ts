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
 * Limits how many scrapes produce text at once. Scrapes whose clients keep up go first; one whose
 * client made it wait (a trickling reader) gives its slot up while it waits and queues behind them.
 */
export class SerializeGate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly waitingSlow: Array<() => void> = [];

  constructor(private readonly slots: number) {
    if (!(slots >= 1)) throw new RangeError('a SerializeGate needs at least one slot');
  }

  acquire(slow = false): Promise<void> {
    if (this.active < this.slots) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => (slow ? this.waitingSlow : this.waiting).push(resolve));
  }

  release(): void {
    const next = this.waiting.shift() ?? this.waitingSlow.shift();
    // The slot passes straight to the next waiter: `active` stays as it is.
    if (next) next();
    else this.active--;
  }
}

/** A client that makes a scrape wait this long for drain is slow: its slot goes to others meanwhile. */
export const SLOW_DRAIN_MS = 50;

/** Resolves true when the response can take more (or is gone), false if not within `ms`. */
function writableWithin(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      res.off('drain', onReady);
      res.off('close', onReady);
      resolve(ok);
    };
    const onReady = (): void => done(true);
    const timer = setTimeout(() => done(false), ms);
    res.on('drain', onReady);
    res.on('close', onReady);
  });
}

/**
 * Serves one scrape: collects, then streams the exposition with backpressure, giving the event
 * loop a turn between pieces so a large scrape does not stall health checks or other scrapes.
 * With a gate, the scrape produces text only while holding one of its slots.
 */
export async function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  collect: () => Promise<CollectionResult>,
  onCollectionErrors: (errors: unknown[]) => void,
  stallTimeoutMs = STALL_TIMEOUT_MS,
  gate?: SerializeGate,
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
  const pieces = exposition(result.resourceMetrics);
  if (!gate) {
    for (const piece of pieces) {
      if (res.destroyed) return;
      if (res.write(piece)) await nextTurn();
      else await writable(res);
    }
    res.end();
    return;
  }
  await gate.acquire();
  try {
    for (let next = pieces.next(); !next.done; next = pieces.next()) {
      if (res.destroyed) return;
      if (!res.write(next.value) && !(await writableWithin(res, SLOW_DRAIN_MS))) {
        // A trickling reader waits for its drain without a slot, then queues behind scrapes that keep up.
        gate.release();
        await writable(res);
        await gate.acquire(true);
      }
      // A turn of the loop after every piece, even when drain came at once (within the same tick):
      // timers (the prober's) must not wait for a whole exposition.
      await nextTurn();
    }
    res.end();
  } finally {
    gate.release();
  }
}

export interface MetricsEndpointOptions {
  readonly collect: () => Promise<CollectionResult>;
  readonly onCollectionErrors: (errors: unknown[]) => void;
  /** Scrapes producing text at once (default 2); the others wait their turn. */
  readonly maxSerializing?: number;
  readonly stallTimeoutMs?: number;
  /** A collection this recent serves later scrapes too (default 1 s; the scrape interval is 5 s or more). */
  readonly reuseMs?: number;
  /** Monotonic milliseconds; performance.now by default. */
  readonly now?: () => number;
}

/**
 * /metrics for many clients at once: scrapes that arrive while a collection runs (or within a second
 * of its start) share it, and at
 * most `maxSerializing` of them produce text at a time, so a crowd of scrapers costs one collection
 * and two scrapes' worth of CPU, not one each.
 */
export class MetricsEndpoint {
  private collecting: Promise<CollectionResult> | undefined;
  private collectedAt = -Infinity;
  private readonly gate: SerializeGate;

  constructor(private readonly options: MetricsEndpointOptions) {
    this.gate = new SerializeGate(options.maxSerializing ?? 2);
  }

  serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return serveMetrics(req, res, () => this.sharedCollection(), this.options.onCollectionErrors, this.options.stallTimeoutMs, this.gate);
  }

  private sharedCollection(): Promise<CollectionResult> {
    const now = (this.options.now ?? performance.now.bind(performance))();
    if (this.collecting && now - this.collectedAt <= (this.options.reuseMs ?? 1000)) return this.collecting;
    const collecting = this.options.collect();
    // A failed collection is not kept for others.
    collecting.catch(() => {
      if (this.collecting === collecting) this.collecting = undefined;
    });
    this.collecting = collecting;
    this.collectedAt = now;
    return collecting;
  }
}
