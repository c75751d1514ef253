/**
 * Node churn against a running agent: keeps `targets` nodes alive in the fake API and, every
 * `everyMs`, adds one node and deletes the oldest. Samples the agent on the way (RSS, destination
 * series on /metrics against the live node set, scrape and /healthz latency). Shared by the short
 * churn test in test/e2e/faults.test.ts and bench/soak.ts.
 */
import { performance } from 'node:perf_hooks';
import { parseExposition } from './exposition.js';
import { destinations, slope, type Agent, type FaultControl } from './fault-client.js';

export interface ChurnSample {
  /** Seconds since the churn started. */
  atS: number;
  rssMiB: number;
  /** Nodes in the fake API when the scrape started. */
  live: number;
  /** Distinct destination_node values on /metrics. */
  series: number;
  /** Live nodes added long enough ago (`settleMs`) that have no series: a node not probed. */
  missing: number;
  /** The first few missing and stale names with their age in ms, for failure messages. */
  detail: string[];
  /** Series of nodes deleted long enough ago (`settleMs`), or never known: a leak. */
  stale: number;
  scrapeMs: number;
  /** /healthz latency over the window since the previous sample (event-loop stalls show here). */
  healthzMeanMs: number;
  healthzMaxMs: number;
  healthzFailures: number;
}

export interface ChurnOptions {
  control: FaultControl;
  agent: Agent;
  /** Addresses the nodes get, in turn; more than `targets`, so a new node never shares a live node's address. */
  pool: readonly string[];
  targets: number;
  everyMs: number;
  durationMs: number;
  sampleEveryMs: number;
  /** A node added or deleted this long ago must be reflected on /metrics (default 2500 ms). */
  settleMs?: number;
  onSample?: (sample: ChurnSample) => void;
}

export interface ChurnResult {
  samples: ChurnSample[];
  /** Names live at the end. */
  live: string[];
  /** Add+delete pairs done. */
  events: number;
  /** Least-squares RSS slope over the samples, MiB per minute. */
  rssSlopeMiBPerMin: number;
}

const NAME = (i: number): string => `churn-${String(i).padStart(6, '0')}`;

/** Creates the first `targets` nodes; returns their names, oldest first. */
export async function seedChurn(control: FaultControl, pool: readonly string[], targets: number): Promise<string[]> {
  if (pool.length <= targets) throw new Error('the address pool must be larger than the live set');
  const nodes = Array.from({ length: targets }, (_, i) => ({ name: NAME(i), address: pool[i]! }));
  await control.upsertMany(nodes);
  return nodes.map((n) => n.name);
}

/** Runs the churn on the nodes `seedChurn` created. */
export async function runChurn(options: ChurnOptions, seeded: string[]): Promise<ChurnResult> {
  const { control, agent, pool, everyMs, durationMs, sampleEveryMs } = options;
  const settleMs = options.settleMs ?? 2500;
  const live = [...seeded];
  const addedAt = new Map<string, number>(seeded.map((n) => [n, 0]));
  const deletedAt = new Map<string, number>();
  let next = seeded.length;
  const samples: ChurnSample[] = [];
  const start = performance.now();
  let stop = false;
  let events = 0;

  await control.monitorStart(`http://127.0.0.1:${agent.port}/healthz`, 100);
  await control.monitorTake();

  const churn = (async () => {
    for (let k = 1; !stop; k++) {
      const due = start + k * everyMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (stop) break;
      const name = NAME(next);
      const address = pool[next % pool.length]!;
      next++;
      await control.upsert(name, address);
      addedAt.set(name, performance.now());
      live.push(name);
      const gone = live.shift()!;
      await control.delete(gone);
      deletedAt.set(gone, performance.now());
      addedAt.delete(gone);
      events++;
    }
  })();

  const sample = async (): Promise<ChurnSample> => {
    const at = performance.now();
    const liveNow = new Set(live);
    const r = await agent.get('/metrics', 20_000);
    const scrapeMs = performance.now() - at;
    if (r.status !== 200) throw new Error(`scrape failed: ${r.status}`);
    const series = destinations(parseExposition(r.body));
    // Nodes deleted or added while the scrape ran are neither missing nor stale.
    const liveAfter = new Set(live);
    let missing = 0;
    const detail: string[] = [];
    for (const name of liveNow) {
      const age = at - (addedAt.get(name) ?? 0);
      if (!series.has(name) && liveAfter.has(name) && age > settleMs) {
        missing++;
        if (detail.length < 5) detail.push(`missing ${name} added ${age.toFixed(0)} ms ago`);
      }
    }
    let stale = 0;
    for (const name of series) {
      if (liveNow.has(name) || liveAfter.has(name)) continue;
      const gone = deletedAt.get(name);
      if (gone === undefined || at - gone > settleMs) {
        stale++;
        if (detail.length < 10) detail.push(`stale ${name} deleted ${gone === undefined ? 'never' : `${(at - gone).toFixed(0)} ms ago`}`);
      }
    }
    const healthz = await control.monitorTake();
    const s: ChurnSample = {
      atS: (at - start) / 1000,
      rssMiB: agent.rssMiB(),
      live: liveNow.size,
      series: series.size,
      missing,
      detail,
      stale,
      scrapeMs,
      healthzMeanMs: healthz.meanMs,
      healthzMaxMs: healthz.maxMs,
      healthzFailures: healthz.failures,
    };
    samples.push(s);
    options.onSample?.(s);
    return s;
  };

  try {
    for (let k = 1; ; k++) {
      // Half a churn step off the churn's own ticks, so a sample rarely races an add or delete.
      if (k * sampleEveryMs > durationMs) break;
      const due = start + k * sampleEveryMs + everyMs / 2;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!agent.alive()) throw new Error(`the agent exited during the churn:\n${agent.describe()}`);
      await sample();
    }
  } finally {
    stop = true;
    await churn;
  }
  const rssSlopeMiBPerMin = slope(samples.map((s) => [s.atS / 60, s.rssMiB] as const));
  return { samples, live, events, rssSlopeMiBPerMin };
}

const COLUMNS: Array<[string, number, (s: ChurnSample) => string]> = [
  ['t (s)', 6, (s) => s.atS.toFixed(0)],
  ['RSS MiB', 8, (s) => s.rssMiB.toFixed(1)],
  ['live', 5, (s) => String(s.live)],
  ['series', 6, (s) => String(s.series)],
  ['missing', 7, (s) => String(s.missing)],
  ['stale', 5, (s) => String(s.stale)],
  ['scrape ms', 9, (s) => s.scrapeMs.toFixed(1)],
  ['healthz mean ms', 14, (s) => s.healthzMeanMs.toFixed(1)],
  ['healthz max ms', 14, (s) => s.healthzMaxMs.toFixed(1)],
];

/** The header of the sample table. */
export function churnHeader(): string {
  return COLUMNS.map(([h, w]) => h.padStart(w)).join('  ');
}

/** One sample as a table row. */
export function churnRow(sample: ChurnSample): string {
  return COLUMNS.map(([, w, f]) => f(sample).padStart(w)).join('  ');
}

/** The samples as an aligned text table. */
export function churnTable(samples: readonly ChurnSample[]): string {
  return [churnHeader(), ...samples.map(churnRow)].join('\n');
}
