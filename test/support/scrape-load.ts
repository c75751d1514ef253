/**
 * Scrape load: `clients` concurrent loops of GET `url` (keep-alive, like Prometheus) for `seconds`,
 * then one JSON line with what came back. Runs inside a namespace (cluster.spawnIn), next to the agent.
 *
 *   node scrape-load.js --url http://127.0.0.1:2112/metrics --clients 50 --seconds 30
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

export interface ScrapeLoadResult {
  requests: number;
  /** Count per HTTP status; 0 = the request failed (reset, refused, timeout). */
  statuses: Record<string, number>;
  /** The first few failure messages. */
  errors: string[];
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Responses whose body did not end with a complete exposition line. */
  truncated: number;
  seconds: number;
}

const { values } = parseArgs({
  options: { url: { type: 'string' }, clients: { type: 'string', default: '50' }, seconds: { type: 'string', default: '30' } },
});
const url = values.url!;
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const agent = new Agent({ keepAlive: true, maxSockets: clients });
const latencies: number[] = [];
const statuses: Record<string, number> = {};
const errors: string[] = [];
let truncated = 0;

function once(): Promise<void> {
  const started = performance.now();
  return new Promise((resolve) => {
    const done = (status: number, error?: string): void => {
      latencies.push(performance.now() - started);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (error && errors.length < 5) errors.push(error);
      resolve();
    };
    const req = request(url, { agent, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 200 && !body.endsWith('\n')) truncated++;
        done(res.statusCode ?? 0);
      });
      res.on('error', (e) => done(0, e.message));
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
    req.on('error', (e) => done(0, e.message));
    req.end();
  });
}

const startedAt = performance.now();
const deadline = startedAt + seconds * 1000;
await Promise.all(
  Array.from({ length: clients }, async () => {
    while (performance.now() < deadline) await once();
  }),
);
agent.destroy();
const sorted = [...latencies].sort((a, b) => a - b);
const pick = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0;
const result: ScrapeLoadResult = {
  requests: latencies.length,
  statuses,
  errors,
  meanMs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
  p50Ms: pick(0.5),
  p99Ms: pick(0.99),
  maxMs: sorted[sorted.length - 1] ?? 0,
  truncated,
  seconds: (performance.now() - startedAt) / 1000,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
