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

/** What the churn loop changes and the sampler reads: the live names, oldest first, and when each came or went. */
interface ChurnState {
  readonly start: number;
  readonly live: string[];
  readonly addedAt: Map<string, number>;
  readonly deletedAt: Map<string, number>;
  next: number;
  events: number;
  stop: boolean;
}

/** Every `everyMs` from the start, adds the next node and deletes the oldest, until `state.stop`. */
async function churnLoop(state: ChurnState, { control, pool, everyMs }: ChurnOptions): Promise<void> {
  for (let k = 1; !state.stop; k++) {
    const due = state.start + k * everyMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (state.stop) break;
    const name = NAME(state.next);
    const address = pool[state.next % pool.length]!;
    state.next++;
    await control.upsert(name, address);
    state.addedAt.set(name, performance.now());
    state.live.push(name);
    const gone = state.live.shift()!;
    await control.delete(gone);
    state.deletedAt.set(gone, performance.now());
    state.addedAt.delete(gone);
    state.events++;
  }
}

/**
 * Live nodes older than `settleMs` without series (missing) and series of nodes gone longer than
 * that, or never known (stale), for a scrape started at `at`; nodes that came or went while it ran
 * (in one of `liveNow`, `liveAfter` only) are neither.
 */
function compareSeries(
  state: ChurnState,
  series: ReadonlySet<string>,
  liveNow: ReadonlySet<string>,
  liveAfter: ReadonlySet<string>,
  at: number,
  settleMs: number,
): { missing: number; stale: number; detail: string[] } {
  let missing = 0;
  const detail: string[] = [];
  for (const name of liveNow) {
    const age = at - (state.addedAt.get(name) ?? 0);
    if (!series.has(name) && liveAfter.has(name) && age > settleMs) {
      missing++;
      if (detail.length < 5) detail.push(`missing ${name} added ${age.toFixed(0)} ms ago`);
    }
  }
  let stale = 0;
  for (const name of series) {
    if (liveNow.has(name) || liveAfter.has(name)) continue;
    const gone = state.deletedAt.get(name);
    if (gone === undefined || at - gone > settleMs) {
      stale++;
      if (detail.length < 10) detail.push(`stale ${name} deleted ${gone === undefined ? 'never' : `${(at - gone).toFixed(0)} ms ago`}`);
    }
  }
  return { missing, stale, detail };
}

/** One scrape of the agent against the live set, with the /healthz latency since the last sample. */
async function takeSample(state: ChurnState, { control, agent }: ChurnOptions, settleMs: number): Promise<ChurnSample> {
  const at = performance.now();
  const liveNow = new Set(state.live);
  const r = await agent.get('/metrics', 20_000);
  const scrapeMs = performance.now() - at;
  if (r.status !== 200) throw new Error(`scrape failed: ${r.status}`);
  const series = destinations(parseExposition(r.body));
  // Nodes deleted or added while the scrape ran are neither missing nor stale.
  const { missing, stale, detail } = compareSeries(state, series, liveNow, new Set(state.live), at, settleMs);
  const healthz = await control.monitorTake();
  return {
    atS: (at - state.start) / 1000,
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
}

/** Runs the churn on the nodes `seedChurn` created. */
export async function runChurn(options: ChurnOptions, seeded: string[]): Promise<ChurnResult> {
  const { control, agent, everyMs, durationMs, sampleEveryMs } = options;
  const settleMs = options.settleMs ?? 2500;
  const state: ChurnState = {
    start: performance.now(),
    live: [...seeded],
    addedAt: new Map<string, number>(seeded.map((n) => [n, 0])),
    deletedAt: new Map<string, number>(),
    next: seeded.length,
    events: 0,
    stop: false,
  };
  const samples: ChurnSample[] = [];

  await control.monitorStart(`http://127.0.0.1:${agent.port}/healthz`, 100);
  await control.monitorTake();

  const churn = churnLoop(state, options);
  try {
    for (let k = 1; ; k++) {
      // Half a churn step off the churn's own ticks, so a sample rarely races an add or delete.
      if (k * sampleEveryMs > durationMs) break;
      const due = state.start + k * sampleEveryMs + everyMs / 2;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!agent.alive()) throw new Error(`the agent exited during the churn:\n${agent.describe()}`);
      const s = await takeSample(state, options, settleMs);
      samples.push(s);
      options.onSample?.(s);
    }
  } finally {
    state.stop = true;
    await churn;
  }
  const rssSlopeMiBPerMin = slope(samples.map((s) => [s.atS / 60, s.rssMiB] as const));
  return { samples, live: state.live, events: state.events, rssSlopeMiBPerMin };
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
