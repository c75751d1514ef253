/**
 * The benchmark's HTTP hands inside a network namespace (where the benchmark
 * process cannot connect): timed scrapes that come back already summarised,
 * and a tight-loop scrape load. Driven over the Node IPC channel by NsHttp.
 *
 *   ip netns exec NS node ns-http.js
 */
import { Agent, request, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface ScrapeRequest {
  id: number;
  op: 'scrape';
  url: string;
  timeoutMs?: number;
  /** Metric names (as written in the exposition) whose samples come back parsed. */
  keep?: string[];
  /** Return the whole body too (small responses only). */
  body?: boolean;
}

export interface LoadRequest {
  id: number;
  op: 'load';
  url: string;
  clients: number;
  seconds: number;
}

export type NsHttpRequest = ScrapeRequest | LoadRequest;

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ScrapeResult {
  status: number;
  /** Request sent to last byte received. */
  ms: number;
  /** Request sent to response headers. */
  headersMs: number;
  bytes: number;
  /** Sample lines (neither comments nor blank). */
  series: number;
  samples: Sample[];
  body?: string;
}

export interface LoadResult {
  requests: number;
  errors: number;
  firstError?: string;
  bytes: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export type NsHttpReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function summarise(text: string, keep: ReadonlySet<string>): { series: number; samples: Sample[] } {
  let series = 0;
  const samples: Sample[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (end > start && text.charCodeAt(start) !== 35 /* # */) {
      series++;
      if (keep.size > 0) {
        const line = text.slice(start, end);
        const brace = line.indexOf('{');
        const space = line.indexOf(' ');
        const nameEnd = brace !== -1 && brace < space ? brace : space;
        const name = line.slice(0, nameEnd);
        if (keep.has(name)) {
          const labels: Record<string, string> = {};
          let valueText: string;
          if (nameEnd === brace) {
            const close = line.lastIndexOf('}');
            for (const m of line.slice(brace + 1, close).matchAll(LABEL)) labels[m[1]!] = m[2]!;
            valueText = line.slice(close + 2).split(' ')[0]!;
          } else {
            valueText = line.slice(space + 1).split(' ')[0]!;
          }
          samples.push({ name, labels, value: Number(valueText) });
        }
      }
    }
    start = end + 1;
  }
  return { series, samples };
}

function get(url: string, agent: Agent | false, timeoutMs: number): Promise<{ status: number; body: Buffer; headersMs: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let headersMs = 0;
    const req = request(url, { agent, timeout: timeoutMs }, (res: IncomingMessage) => {
      headersMs = performance.now() - t0;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headersMs, ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

async function scrape(r: ScrapeRequest): Promise<ScrapeResult> {
  // A fresh connection each time, as a first scrape would have.
  const res = await get(r.url, false, r.timeoutMs ?? 30_000);
  const text = res.body.toString('utf8');
  const { series, samples } = summarise(text, new Set(r.keep ?? []));
  const result: ScrapeResult = { status: res.status, ms: res.ms, headersMs: res.headersMs, bytes: res.body.length, series, samples };
  if (r.body) result.body = text;
  return result;
}

async function load(r: LoadRequest): Promise<LoadResult> {
  // Keep-alive connections, one per client, as Prometheus scrapes.
  const agent = new Agent({ keepAlive: true, maxSockets: r.clients });
  const latencies: number[] = [];
  let errors = 0;
  let bytes = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const deadline = t0 + r.seconds * 1000;
  const client = async (): Promise<void> => {
    while (performance.now() < deadline) {
      try {
        const res = await get(r.url, agent, 10_000);
        if (res.status !== 200) throw new Error(`status ${res.status}`);
        bytes += res.body.length;
        latencies.push(res.ms);
      } catch (err) {
        errors++;
        firstError ??= String((err as Error).message);
        await new Promise((res) => setTimeout(res, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: r.clients }, () => client()));
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => (latencies.length === 0 ? Number.NaN : latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!);
  const result: LoadResult = { requests: latencies.length, errors, bytes, seconds, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: latencies.at(-1) ?? Number.NaN };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

function main(): void {
  if (!process.send) throw new Error('ns-http.js needs an IPC channel');
  const send = (msg: NsHttpReply | { ready: true }): void => void process.send!(msg);
  process.on('message', (msg: NsHttpRequest) => {
    const work = msg.op === 'scrape' ? scrape(msg) : load(msg);
    work.then(
      (result) => send({ id: msg.id, ok: true, result }),
      (err: unknown) => send({ id: msg.id, ok: false, error: String((err as Error)?.message ?? err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  send({ ready: true });
}

main();
