/**
 * Section 3, scale: one agent discovering its targets as Nodes from the fake API server, each on
 * /32 addresses of one namespace's loopback (kernel echo replies).
 *
 * - The full mesh (MENTAT_MESH=full) at 1 / 100 / 1000 / 5000 targets, minimal Node objects: probes
 *   vs expected, CPU quiet and per scrape, RSS, /metrics, CPU by thread, SIGTERM; next to idle
 *   processes loading each layer of the agent's modules (the memory floor).
 * - One agent as shipped: the DaemonSet's environment (so the default mesh, sampled at 5000 nodes,
 *   and the published node list with this agent as its publisher), 5000 kubelet-sized Nodes whose
 *   kubelets post status every 5 minutes, datagram ICMP, /metrics scraped every 15 s.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config.js';
import { KUBELET_STATUS_PERIOD_MS } from '../test/fake-apiserver/heartbeats.js';
import { makeRealisticNode } from '../test/fake-apiserver/index.js';
import { progress, REPO, type Ctx } from './context.js';
import { daemonSetEnv, SHIPPED_RUNTIME_ENV } from './daemonset.js';
import type { ScrapeResult } from './http-client.js';
import { readProc } from './proc.js';
import { formatProfile, summariseProfile, type ProfileSummary } from './profile.js';
import { mib, ok, type BudgetRow } from './report.js';
import { fmt, median, table } from './stats.js';
import { startMentat, sumOf, type Mentat } from './tools.js';
import { MeasurementWindow, readTree, type WindowReading } from './window.js';

export interface ScaleParams {
  /** Targets of the full-mesh rows; 1 target: the agent's floor (Node, the dependencies, discovery, one series). */
  scaleSizes: number[];
  scaleIntervalMs: number;
  scaleSeconds: number;
  scaleScrapes: number;
  scaleScrapeGapMs: number;
  /** Nodes (besides its own) of the agent run as shipped; 0: no such row. */
  shippedNodes: number;
  /** Its measured window; a scrape every SCRAPE_EVERY_S inside it. */
  shippedSeconds: number;
}

export function scaleParams(quick: boolean, sizes: readonly number[] | undefined, shippedNodes: number | undefined): ScaleParams {
  const p: ScaleParams = {
    scaleSizes: sizes ? [...sizes] : [1, 100, 1000, 5000],
    scaleIntervalMs: 1000,
    scaleSeconds: quick ? 10 : 40,
    scaleScrapes: quick ? 5 : 10,
    scaleScrapeGapMs: 500,
    shippedNodes: shippedNodes ?? 5000,
    shippedSeconds: quick ? 30 : 60,
  };
  for (const n of p.scaleSizes) if (!Number.isInteger(n) || n < 1 || n > 5000) throw new Error(`--sizes: ${n} is not 1..5000`);
  if (!Number.isInteger(p.shippedNodes) || p.shippedNodes < 0 || p.shippedNodes > 5000) throw new Error(`--shipped-nodes: ${p.shippedNodes} is not 0..5000`);
  return p;
}

/** Addresses the section needs on the farm's loopback. */
export function scaleAddresses(p: ScaleParams): number {
  return Math.max(...p.scaleSizes, p.shippedNodes);
}

/** Prometheus' default scrape interval, for the "cores with scrapes" figures. */
export const SCRAPE_EVERY_S = 15;

/** The full mesh's budgets by target count. */
export const SCALE_BUDGET = new Map<number, { cores: number; rssMiB: number; metricsMs: number }>([
  [1000, { cores: 0.1, rssMiB: 100, metricsMs: 250 }],
  [5000, { cores: 0.2, rssMiB: 128, metricsMs: 1000 }],
]);

/** The agent as shipped, at 5000 nodes: cores with a scrape every 15 s, and the slowest /metrics. */
export const SHIPPED_BUDGET = { cores: 0.05, metricsMs: 100 };

/** One full-mesh row. */
export interface ScaleRow {
  targets: number;
  /** Agent start to /readyz 200, ms. */
  readyMs: number;
  /** Targets with at least one probe counted one interval + 1 s after ready. */
  probedAtStart: number;
  /** Quiet window for CPU and RSS, s. */
  windowSeconds: number;
  /** Window of the probe counters (request to request), s. */
  counterSeconds: number;
  probes: number;
  expected: number;
  perTargetMin: number;
  perTargetMax: number;
  /** Targets with no probe in the window. */
  missed: number;
  timeouts: number;
  errors: number;
  cpuSeconds: number;
  /** utime part of cpuSeconds. */
  userSeconds: number;
  rssMedianKiB: number;
  rssMaxKiB: number;
  /** Two seconds after the timed scrapes. */
  rssAfterScrapesKiB: number;
  anonAfterScrapesKiB: number;
  hwmKiB: number;
  threads: number;
  scrapeMs: number[];
  scrapeBytes: number;
  series: number;
  /** CPU seconds the scrape phase cost beyond the quiet rate, per scrape. */
  cpuPerScrape: number;
  /** Timeouts while the scrapes ran (they share the main thread with nothing of the prober in dgram mode). */
  scrapeTimeouts: number;
  scrapeProbes: number;
  stopMs: number;
  stopCode: number | null;
  sockets: string[] | undefined;
  /** On-CPU seconds by thread name over the quiet window, and over the timed scrapes. */
  threadsQuiet: Array<{ thread: string; seconds: number }>;
  threadsScrapes: Array<{ thread: string; seconds: number }>;
  profiles: ProfileSummary[];
}

/** The agent as shipped, at `nodes` kubelet-sized Nodes besides its own. */
export interface ShippedRow {
  nodes: number;
  /** The settings it ran with (the DaemonSet's environment; the kubeconfig and port left out). */
  env: Record<string, string>;
  readyMs: number;
  /** What it did for the node list: publisher (watching Nodes and publishing them), follower, direct. */
  role: string;
  /** From mentat_targets at the end of the window. */
  targets: Record<string, number>;
  /** Nodes probed every interval (probed + suspect + outlier), and the interval and sweep it ran with. */
  everyInterval: number;
  /** The mesh its settings give at this size: MENTAT_MESH, and what auto makes of it. */
  mesh: string;
  intervalMs: number;
  sweepIntervalMs: number;
  windowSeconds: number;
  /** Between the scrapes that bracket the window (request to request), s. */
  counterSeconds: number;
  probes: number;
  expectedProbes: number;
  timeouts: number;
  sweepProbes: number;
  expectedSweepProbes: number;
  cpuSeconds: number;
  userSeconds: number;
  /** Scrapes inside the CPU window (one every SCRAPE_EVERY_S). */
  scrapesInWindow: number;
  scrapeMs: number[];
  scrapeBytes: number;
  series: number;
  rssMedianKiB: number;
  rssMaxKiB: number;
  anonKiB: number;
  hwmKiB: number;
  /** Node status updates the fake kubelets made during the run, and their period. */
  heartbeats: number;
  heartbeatPeriodMs: number;
  stopMs: number;
  stopCode: number | null;
  sockets: string[] | undefined;
  threads: Array<{ thread: string; seconds: number }>;
}

export interface ScaleResult {
  intervalMs: number;
  rows: ScaleRow[];
  /** The agents as shipped: the publisher, then a follower. */
  shipped: ShippedRow[];
  notes: string[];
  /** Processes that only load part of what the agent loads, then idle: what each layer costs. */
  layers: Array<{ label: string; rssKiB: number; anonKiB: number }>;
}

const AGENT_BUT_KUBE =
  "await import('pino'); await import('./dist/src/agent.js'); await import('./dist/src/probe/local-engine.js'); await import('./dist/src/icmp/open.js');";
/** Each layer loads everything the one before it does; the code runs as an ES module in the repository. */
const LAYERS: ReadonlyArray<readonly [label: string, code: string]> = [
  ['a bare Node', ''],
  ['node:http', "await import('node:http');"],
  [
    '+ the OTel SDK and Prometheus exporter',
    "await import('node:http'); await import('@opentelemetry/sdk-metrics'); await import('@opentelemetry/exporter-prometheus');",
  ],
  ['all the agent loads but the Kubernetes client', AGENT_BUT_KUBE],
  [
    'all the agent loads',
    `${AGENT_BUT_KUBE} await (await import('./dist/src/kube/client.js')).loadKubeClient(); await import('./dist/src/kube/node-watch.js');`,
  ],
];

/** RSS of each layer after 3 s idle, with the shipped NODE_OPTIONS and MALLOC_ARENA_MAX; a layer that exits is noted, not measured. */
async function layerMemory(notes: string[]): Promise<ScaleResult['layers']> {
  const out: ScaleResult['layers'] = [];
  for (const [label, code] of LAYERS) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `${code} setTimeout(() => {}, 60_000);`], {
      cwd: REPO,
      env: { ...SHIPPED_RUNTIME_ENV },
      stdio: 'ignore',
    });
    try {
      await sleep(3000);
      const p = child.pid === undefined ? undefined : readProc(child.pid);
      if (p && child.exitCode === null) out.push({ label, rssKiB: p.rssKiB, anonKiB: p.anonKiB });
      else
        notes.push(
          `memory floor: the process for "${label}" exited (${child.exitCode ?? child.signalCode}) before it was measured; run its imports by hand to see why.`,
        );
    } finally {
      child.kill('SIGKILL');
    }
  }
  return out;
}

interface ProbeCounts {
  all: number;
  timeout: number;
  error: number;
}

function perDestination(s: ScrapeResult): Map<string, ProbeCounts> {
  const m = new Map<string, ProbeCounts>();
  for (const x of s.samples) {
    if (x.name !== 'node_latency_probes_total') continue;
    const d = x.labels['destination_node']!;
    let e = m.get(d);
    if (!e) m.set(d, (e = { all: 0, timeout: 0, error: 0 }));
    e.all += x.value;
    if (x.labels['result'] === 'timeout') e.timeout += x.value;
    if (x.labels['result'] === 'error') e.error += x.value;
  }
  return m;
}

/** Probes counted between two scrapes: totals, and the least and most of one destination (destinations with none: missed). */
function probeDelta(before: Map<string, ProbeCounts>, after: Map<string, ProbeCounts>) {
  const delta = { probes: 0, timeouts: 0, errors: 0, perMin: Infinity, perMax: 0, missed: 0 };
  for (const [dest, now] of after) {
    const then = before.get(dest) ?? { all: 0, timeout: 0, error: 0 };
    const n = now.all - then.all;
    delta.probes += n;
    delta.timeouts += now.timeout - then.timeout;
    delta.errors += now.error - then.error;
    delta.perMin = Math.min(delta.perMin, n);
    delta.perMax = Math.max(delta.perMax, n);
    if (n === 0) delta.missed++;
  }
  return { ...delta, perMin: delta.perMin === Infinity ? 0 : delta.perMin };
}

const nodeName = (i: number): string => `scale-${String(i).padStart(5, '0')}`;

/** Runs the section; every agent it started is stopped before it returns. */
export async function scale(ctx: Ctx, params: ScaleParams): Promise<ScaleResult> {
  const notes: string[] = [];
  const layers = await layerMemory(notes);
  const { rows, upserted } = await fullMesh(ctx, params);
  const shippedRows = params.shippedNodes > 0 ? await shipped(ctx, params, upserted) : [];
  return { intervalMs: params.scaleIntervalMs, rows, shipped: shippedRows, notes, layers };
}

/** The full-mesh rows, smallest first; Nodes accumulate in the fake API server. Returns how many there are. */
/** One interval and a margin after ready, then a quiet window: no scrapes inside it, RSS sampled every second. */
async function quietWindow(m: Mentat, params: ScaleParams, size: number) {
  // Every target must have been probed once by now. No polling: at 5000 targets each /metrics is a
  // 10 MB exposition that would itself move CPU and RSS.
  await sleep(params.scaleIntervalMs + 1000);
  const tS0 = Date.now();
  const d0 = perDestination(await m.scrape(['node_latency_probes_total']));
  let probedAtStart = 0;
  for (const v of d0.values()) if (v.all > 0) probedAtStart++;
  const window = MeasurementWindow.start(m.pid);
  while (window.elapsedMs() < params.scaleSeconds * 1000) {
    await sleep(Math.min(1000, params.scaleSeconds * 1000 - window.elapsedMs()));
    window.sample();
  }
  const quiet = window.stop();
  const tS1 = Date.now();
  const d1 = perDestination(await m.scrape(['node_latency_probes_total']));
  const counts = probeDelta(d0, d1);
  // The counters are read when each request arrives: their window runs from request to request.
  const counterSeconds = (tS1 - tS0) / 1000;
  return { quiet, probedAtStart, counterSeconds, ...counts, missed: counts.missed + Math.max(0, size - d1.size) };
}

/** Timed scrapes, full exposition, with a gap; CPU and timeouts measured around them. */
async function timedScrapes(m: Mentat, http: Ctx['http'], params: ScaleParams) {
  const window = MeasurementWindow.start(m.pid);
  const t0s = perDestination(await m.scrape(['node_latency_probes_total']));
  const scrapeMs: number[] = [];
  let last: ScrapeResult | undefined;
  for (let k = 0; k < params.scaleScrapes; k++) {
    last = await http.scrape(m.url, { timeoutMs: 60_000 });
    if (last.status !== 200) throw new Error(`scrape ${k} answered ${last.status}`);
    scrapeMs.push(last.ms);
    await sleep(params.scaleScrapeGapMs);
  }
  const t1s = perDestination(await m.scrape(['node_latency_probes_total']));
  const scrapes = window.stop();
  // What the scrapes left behind, once their garbage had a moment to be collected.
  await sleep(2000);
  const { probes, timeouts } = probeDelta(t0s, t1s);
  return { scrapes, scrapeMs, last, afterScrapes: readTree(m.pid), scrapeProbes: probes, scrapeTimeouts: timeouts };
}

/** One file per thread; each summarised over the quiet window and the scrapes. */
async function windowProfiles(profileDir: string | undefined, windows: ReadonlyArray<[label: string, WindowReading]>): Promise<ProfileSummary[]> {
  const profiles: ProfileSummary[] = [];
  if (!profileDir) return profiles;
  await sleep(500);
  for (const f of readdirSync(profileDir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort()) {
    for (const [label, w] of windows) profiles.push(summariseProfile(join(profileDir, f), 12, { label, fromUs: w.fromUs, toUs: w.toUs }));
  }
  return profiles;
}

/** One size: a fresh agent, the quiet window, the timed scrapes. */
async function fullMeshRow(ctx: Ctx, params: ScaleParams, size: number, port: number): Promise<ScaleRow> {
  const { cluster, control, http, src } = ctx;
  const profileDir = ctx.profileDir && join(ctx.profileDir, `scale-${size}`);
  const t0 = Date.now();
  // The full mesh whatever the size: these rows measure what probing every node costs (auto samples above 100).
  const env = { KUBECONFIG: control.kubeconfig, MENTAT_PROBE_INTERVAL: `${params.scaleIntervalMs}ms`, MENTAT_MESH: 'full' };
  const m = startMentat(cluster, src.ns, control, http, `scale-${size}`, port, env, profileDir);
  let stopped: { code: number | null; ms: number } | undefined;
  try {
    await m.ready(60_000);
    const readyMs = Date.now() - t0;
    const { quiet, probedAtStart, counterSeconds, probes, timeouts, errors, perMin, perMax, missed } = await quietWindow(m, params, size);
    const { scrapes, scrapeMs, last, afterScrapes, scrapeProbes, scrapeTimeouts } = await timedScrapes(m, http, params);
    const quietRate = quiet.cpuSeconds / quiet.wallSeconds;
    // Two summarised scrapes bracket the timed ones: count them too.
    const cpuPerScrape = (scrapes.cpuSeconds - quietRate * scrapes.wallSeconds) / (params.scaleScrapes + 2);
    stopped = await m.stop();
    const profiles = await windowProfiles(profileDir, [
      ['quiet window', quiet],
      [`${params.scaleScrapes} timed scrapes`, scrapes],
    ]);
    return {
      targets: size,
      readyMs,
      probedAtStart,
      windowSeconds: quiet.wallSeconds,
      counterSeconds,
      probes,
      expected: Math.round((size * counterSeconds * 1000) / params.scaleIntervalMs),
      perTargetMin: perMin,
      perTargetMax: perMax,
      missed,
      timeouts,
      errors,
      cpuSeconds: quiet.cpuSeconds,
      userSeconds: quiet.userSeconds,
      rssMedianKiB: median(quiet.rssKiB),
      rssMaxKiB: Math.max(...quiet.rssKiB),
      rssAfterScrapesKiB: afterScrapes.rssKiB,
      anonAfterScrapesKiB: afterScrapes.anonKiB,
      hwmKiB: afterScrapes.hwmKiB,
      threads: quiet.end.threads,
      scrapeMs,
      scrapeBytes: last?.bytes ?? 0,
      series: last?.series ?? 0,
      cpuPerScrape,
      scrapeTimeouts,
      scrapeProbes,
      stopMs: stopped.ms,
      stopCode: stopped.code,
      sockets: m.sockets(),
      threadsQuiet: quiet.threads,
      threadsScrapes: scrapes.threads,
      profiles,
    };
  } finally {
    if (!stopped) await m.stop();
  }
}

async function fullMesh(ctx: Ctx, params: ScaleParams): Promise<{ rows: ScaleRow[]; upserted: number }> {
  const rows: ScaleRow[] = [];
  let upserted = 0;
  const sizes = [...params.scaleSizes].sort((a, b) => a - b);
  for (const [i, size] of sizes.entries()) {
    // Nodes accumulate in the fake API server; each size gets a fresh agent.
    const adds: Promise<unknown>[] = [];
    for (; upserted < size; upserted++) adds.push(ctx.control.call({ op: 'upsert', name: nodeName(upserted), address: ctx.farmAddresses[upserted]! }));
    await Promise.all(adds);
    progress(`scale: full mesh, ${size} targets from the fake API server, window ${params.scaleSeconds} s, then ${params.scaleScrapes} timed scrapes`);
    rows.push(await fullMeshRow(ctx, params, size, 2320 + i));
  }
  return { rows, upserted };
}

export function scaleReport(r: ScaleResult, params: ScaleParams): string {
  const out: string[] = ['## 3. Scale (mentat)', '', '### The full mesh', ''];
  out.push(
    `Targets are /32 addresses on one namespace's loopback (kernel echo replies), published as Nodes by the fake API server ` +
      `(minimal Node objects; paged list, then watch) and discovered by the agent; one probe per target every ${r.intervalMs} ms, ` +
      `with MENTAT_MESH=full (every node probed every interval, what these rows have always measured; since the bounded mesh, ` +
      `auto samples above 100 nodes: see the shipped row below), default settings otherwise. ` +
      `Probes, timeouts, CPU and RSS are taken over a quiet window without scrapes (RSS sampled each second); then /metrics is scraped ` +
      `${params.scaleScrapes} times, ${params.scaleScrapeGapMs} ms apart, each on a fresh connection from inside the namespace. ` +
      `"quiet" RSS follows a single scrape; "after scrapes" is 2 s after the timed scrapes; the RSS budget is checked against the larger. ` +
      `System time includes the kernel's work for the whole veth path, the target's echo replies included (see the caveat in section 2). ` +
      `"cores with a scrape every ${SCRAPE_EVERY_S} s" adds the measured CPU of one scrape per ${SCRAPE_EVERY_S} s to the quiet rate. ` +
      `Probe counters are read by the scrapes that bracket the quiet window, so their window is a little longer than it.`,
    '',
  );
  const b = (size: number) => SCALE_BUDGET.get(size);
  out.push(
    table(
      [
        'full mesh, targets',
        'ready ms',
        'probed 1 interval after ready',
        'probes / expected',
        'per target min–max',
        'missed targets',
        'timeout ratio',
        'cores quiet (of which user)',
        `cores with a scrape every ${SCRAPE_EVERY_S} s`,
        'cores budget',
        'RSS MiB quiet (median / max)',
        'RSS MiB after scrapes (of which anonymous)',
        'VmHWM MiB',
        'RSS budget',
      ],
      r.rows.map((x) => {
        const cores = x.cpuSeconds / x.windowSeconds;
        const scraped = cores + x.cpuPerScrape / SCRAPE_EVERY_S;
        const budget = b(x.targets);
        const steady = Math.max(x.rssMaxKiB, x.rssAfterScrapesKiB) / 1024;
        return [
          String(x.targets),
          fmt(x.readyMs),
          `${x.probedAtStart} of ${x.targets}`,
          `${x.probes} / ${x.expected} (${fmt((x.probes / x.expected) * 100, 1)}%)`,
          `${x.perTargetMin}–${x.perTargetMax} (${fmt(x.counterSeconds, 1)} s)`,
          String(x.missed),
          fmt(x.probes > 0 ? x.timeouts / x.probes : Number.NaN, 4),
          `${fmt(cores, 3)} (${fmt(x.userSeconds / x.windowSeconds, 3)})`,
          fmt(scraped, 3),
          budget ? `≤ ${budget.cores}: quiet ${ok(cores <= budget.cores)}, scraped ${ok(scraped <= budget.cores)}` : '–',
          `${mib(x.rssMedianKiB)} / ${mib(x.rssMaxKiB)}`,
          `${mib(x.rssAfterScrapesKiB)} (${mib(x.anonAfterScrapesKiB)})`,
          mib(x.hwmKiB),
          budget ? `≤ ${budget.rssMiB}: ${ok(steady <= budget.rssMiB)}` : '–',
        ];
      }),
    ),
    '',
  );
  out.push(
    table(
      [
        'full mesh, targets',
        '/metrics median ms',
        '/metrics max ms',
        '/metrics budget',
        'size',
        'series',
        'CPU s per scrape',
        'timeouts during scrapes',
        'SIGTERM → exit',
        'sockets',
      ],
      r.rows.map((x) => {
        const budget = b(x.targets);
        const max = Math.max(...x.scrapeMs);
        return [
          String(x.targets),
          fmt(median(x.scrapeMs), 1),
          fmt(max, 1),
          budget ? `≤ ${budget.metricsMs}: ${ok(max <= budget.metricsMs)}` : '–',
          `${fmt(x.scrapeBytes / 1024 / 1024, 2)} MiB`,
          String(x.series),
          fmt(x.cpuPerScrape, 3),
          `${x.scrapeTimeouts} of ${x.scrapeProbes}`,
          `${x.stopMs} ms, code ${x.stopCode}`,
          (x.sockets ?? ['?']).join(', '),
        ];
      }),
    ),
    '',
  );
  const floor = floorText(r);
  if (floor)
    out.push(
      `Floor (idle processes with the shipped runtime settings, each loading what the one before it did and more, then the agent itself): ${floor}.`,
      '',
    );
  const threads = (list: Array<{ thread: string; seconds: number }>, seconds: number): string =>
    list.map((t) => `${t.thread} ${fmt(t.seconds / seconds, 4)}`).join(', ');
  out.push(
    `CPU by thread (cores; MainThread: probes (dgram), discovery, metrics, HTTP; V8Worker: GC and compiler helpers):`,
    '',
    table(
      ['full mesh, targets', 'quiet window', `during the ${params.scaleScrapes} timed scrapes (CPU s per scrape, probing included)`],
      r.rows.map((x) => [
        String(x.targets),
        threads(x.threadsQuiet, x.windowSeconds),
        x.threadsScrapes.map((t) => `${t.thread} ${fmt(t.seconds / (params.scaleScrapes + 2), 3)}`).join(', '),
      ]),
    ),
    '',
  );
  if (r.shipped.length > 0) out.push(shippedReport(r.shipped));
  for (const n of r.notes) out.push(`Note: ${n}`, '');
  const withProfiles = r.rows.filter((x) => x.profiles.length > 0);
  if (withProfiles.length > 0) {
    out.push(
      '### CPU profiles (--profile)',
      '',
      'The profiler itself costs CPU: with --profile the cores columns read high. V8 samples on wall time, so a thread that waits for a core (2 cores, busy scrapes) shows time in whatever function it was in. One profile per thread.',
      '',
      '```',
    );
    for (const x of withProfiles) for (const p of x.profiles) out.push(`${x.targets} targets: ${formatProfile(p)}`);
    out.push('```', '');
  }
  return out.join('\n');
}

/** What memory does not depend on the targets: the layers the agent loads, and the agent with one target. */
function floorText(r: ScaleResult, short = false): string | undefined {
  const one = r.rows.find((x) => x.targets === 1);
  const parts = (short ? r.layers.slice(0, 1) : r.layers).map((l) => `${l.label} ${mib(l.rssKiB)} MiB RSS (anonymous ${mib(l.anonKiB)})`);
  if (one) parts.push(`the agent running, 1 target ${mib(Math.max(one.rssMaxKiB, one.rssAfterScrapesKiB))} MiB (anonymous ${mib(one.anonAfterScrapesKiB)})`);
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** The agents' own nodes in the shipped rows: the publisher's (startMentat's default NODE_NAME), then a follower's. */
const PUBLISHER = 'node0';

/**
 * Agents with the DaemonSet's settings over `params.shippedNodes` kubelet-sized Nodes: the first
 * takes the node-list lease (the publisher: it watches Nodes); a second one then follows the list
 * it publishes, as every other agent of a cluster does. Each is measured while both run.
 */
async function shipped(ctx: Ctx, params: ScaleParams, upserted: number): Promise<ShippedRow[]> {
  const { control, src } = ctx;
  const n = params.shippedNodes;
  progress(
    `scale: as shipped, ${n} kubelet-sized nodes posting status every ${KUBELET_STATUS_PERIOD_MS / 60_000} min: the publisher, then a follower, ${params.shippedSeconds} s each with a scrape every ${SCRAPE_EVERY_S} s`,
  );
  // Kubelet-sized objects under the same names and addresses as the full-mesh rows' minimal ones, and the publisher's own Node.
  for (let i = 0; i < n; i += 250) {
    await control.upsertRaw(...Array.from({ length: Math.min(250, n - i) }, (_, k) => makeRealisticNode(nodeName(i + k), ctx.farmAddresses[i + k]!, i + k)));
  }
  if (upserted > n) await control.delete(...Array.from({ length: upserted - n }, (_, k) => nodeName(n + k)));
  await control.upsertRaw(makeRealisticNode(PUBLISHER, src.ipv4, n));
  await control.heartbeatsStart(KUBELET_STATUS_PERIOD_MS);
  const running: Mentat[] = [];
  let heartbeats: number | undefined;
  try {
    const measured = [await shippedAgent(ctx, params, PUBLISHER, 2330, running)];
    // The follower's own Node is one of the others (its address is on the farm, not its own: nothing is skipped).
    measured.push(await shippedAgent(ctx, params, nodeName(0), 2331, running));
    // The follower first: the publisher's SIGTERM gives the lease up, which the follower would act on.
    const stops: Array<{ code: number | null; ms: number }> = [];
    for (let i = running.length - 1; i >= 0; i--) stops[i] = await running[i]!.stop();
    running.length = 0;
    heartbeats = await control.heartbeatsStop();
    const beats = heartbeats;
    return measured.map((row, i) => ({
      ...row,
      nodes: n,
      heartbeats: beats,
      heartbeatPeriodMs: KUBELET_STATUS_PERIOD_MS,
      stopMs: stops[i]!.ms,
      stopCode: stops[i]!.code,
    }));
  } finally {
    for (const m of running) await m.stop();
    if (heartbeats === undefined) await control.heartbeatsStop();
  }
}

type MeasuredAgent = Omit<ShippedRow, 'nodes' | 'heartbeats' | 'heartbeatPeriodMs' | 'stopMs' | 'stopCode'>;

/** Starts one agent as shipped (left running, in `running`) and measures it over a window with a scrape every 15 s. */
async function shippedAgent(ctx: Ctx, params: ScaleParams, self: string, port: number, running: Mentat[]): Promise<MeasuredAgent> {
  const { cluster, control, http } = ctx;
  const settings = daemonSetEnv({ NODE_NAME: self, POD_NAME: `mentat-${self}`, POD_NAMESPACE: 'mentat' });
  // The kubeconfig stands in for the service account; the port is the bench's (the DaemonSet's is 2112).
  const env = { ...settings, KUBECONFIG: control.kubeconfig, MENTAT_METRICS_PORT: String(port) };
  const config = loadConfig({ env, argv: [], hostname: self }).config;
  const t0 = Date.now();
  const m = startMentat(cluster, ctx.src.ns, control, http, `shipped-${self}`, port, env);
  running.push(m);
  await m.ready(120_000);
  const readyMs = Date.now() - t0;
  // The first publication, and the sweep under way.
  await sleep(5000);
  const keep = ['node_latency_probes_total', 'node_latency_sweep_probes_total', 'mentat_targets'];
  const count = Math.max(1, Math.round(params.shippedSeconds / SCRAPE_EVERY_S));
  const scrapeMs: number[] = [];
  const window = MeasurementWindow.start(m.pid);
  let first: { s: ScrapeResult; at: number } | undefined;
  let last: { s: ScrapeResult; at: number } | undefined;
  let reading: WindowReading | undefined;
  // Scrapes at 0, 15, 30 ... s; the CPU window ends just before the last one, so it holds one scrape per 15 s.
  for (let k = 0; k <= count; k++) {
    const dueMs = k * SCRAPE_EVERY_S * 1000;
    while (window.elapsedMs() < dueMs) {
      await sleep(Math.min(1000, dueMs - window.elapsedMs()));
      window.sample();
    }
    if (k === count) reading = window.stop();
    const at = Date.now();
    const s = await http.scrape(m.url, { keep, timeoutMs: 60_000 });
    if (s.status !== 200) throw new Error(`shipped: scrape ${k} of ${self} answered ${s.status}`);
    scrapeMs.push(s.ms);
    first ??= { s, at };
    last = { s, at };
  }
  await sleep(2000);
  const after = readTree(m.pid);
  const lines = m.agent.lines();
  const role = lines.some((l) => String(l['msg']).startsWith('took the node-list lease'))
    ? 'publisher (holds the lease, watches Nodes, writes the list)'
    : lines.some((l) => String(l['msg']).includes('watching Nodes directly'))
      ? 'fallback (watches Nodes itself)'
      : 'follower (watches the lease, reads the list)';
  const targets: Record<string, number> = {};
  for (const x of last!.s.samples) if (x.name === 'mentat_targets' && x.labels['state']) targets[x.labels['state']] = x.value;
  const everyInterval = (targets['probed'] ?? 0) + (targets['suspect'] ?? 0) + (targets['outlier'] ?? 0);
  const counterSeconds = (last!.at - first!.at) / 1000;
  const delta = (name: string, labels: Record<string, string> = {}) => sumOf(last!.s.samples, name, labels) - sumOf(first!.s.samples, name, labels);
  const nodes = targets['known'] ?? 0;
  return {
    env: Object.fromEntries(Object.entries(settings).filter(([k]) => k !== 'MENTAT_METRICS_PORT')),
    readyMs,
    role,
    targets,
    everyInterval,
    mesh:
      config.mesh.mode !== 'auto'
        ? config.mesh.mode
        : `auto: ${nodes + 1 > config.mesh.fullMax ? `sampled above ${config.mesh.fullMax} nodes, ${config.mesh.peers} peers` : 'full'}`,
    intervalMs: config.probeIntervalMs,
    sweepIntervalMs: config.mesh.sweepIntervalMs,
    windowSeconds: reading!.wallSeconds,
    counterSeconds,
    probes: delta('node_latency_probes_total'),
    expectedProbes: Math.round((everyInterval * counterSeconds * 1000) / config.probeIntervalMs),
    timeouts: delta('node_latency_probes_total', { result: 'timeout' }),
    sweepProbes: delta('node_latency_sweep_probes_total'),
    expectedSweepProbes: config.mesh.sweepIntervalMs > 0 ? Math.round(((targets['swept'] ?? 0) * counterSeconds * 1000) / config.mesh.sweepIntervalMs) : 0,
    cpuSeconds: reading!.cpuSeconds,
    userSeconds: reading!.userSeconds,
    scrapesInWindow: count,
    scrapeMs,
    scrapeBytes: last!.s.bytes,
    series: last!.s.series,
    rssMedianKiB: median(reading!.rssKiB),
    rssMaxKiB: Math.max(...reading!.rssKiB, after.rssKiB),
    anonKiB: after.anonKiB,
    hwmKiB: after.hwmKiB,
    sockets: m.sockets(),
    threads: reading!.threads,
  };
}

function shippedReport(list: readonly ShippedRow[]): string {
  const x = list[0]!;
  const shown = ['MENTAT_DISCOVERY', 'MENTAT_ICMP_MODE', 'MENTAT_MAX_TARGETS', 'NODE_OPTIONS', 'MALLOC_ARENA_MAX', 'POD_NAMESPACE'].filter(
    (k) => x.env[k] !== undefined,
  );
  const cores = (r: ShippedRow) => r.cpuSeconds / r.windowSeconds;
  const role = (r: ShippedRow) => r.role.split(' ')[0]!;
  return [
    `### Agents as shipped, ${x.nodes} kubelet-sized nodes`,
    '',
    `The agent container's environment from deploy/base/daemonset.yaml (${shown.map((k) => `${k}=${x.env[k]}`).join(', ')}; ` +
      `nothing about the mesh, so the default, MENTAT_MESH=${x.mesh} at ${x.nodes + 1} nodes; one probe per peer every ${x.intervalMs / 1000} s, every other node swept once per ${x.sweepIntervalMs / 60_000} min). ` +
      `The fake API server holds ${x.nodes} Node objects the size kubelets report (about 10 KB of JSON each) and the publisher's own; ` +
      `each kubelet rewrites its node's status once per ${x.heartbeatPeriodMs / 60_000} min (${x.heartbeats} updates while the agents ran). ` +
      `The first agent takes the node-list lease: it is the publisher, the one agent of a cluster that still watches Nodes. A second agent then starts and follows the list, ` +
      `as every other agent of a cluster does; it is measured while the publisher keeps running (2 cores: each waits for the other now and then). ` +
      `Each window holds ${x.scrapesInWindow} full scrapes of /metrics, one every ${SCRAPE_EVERY_S} s, so "cores" is the rate with scrapes. ` +
      `Probes every interval are counted on node_latency_probes_total against mentat_targets (probed + suspect + outlier); sweep probes on node_latency_sweep_probes_total against swept / ${x.sweepIntervalMs / 60_000} min.`,
    '',
    table(
      [
        'agent',
        'ready ms',
        'probed every interval / swept / over_cap',
        'probes / expected',
        'sweep probes / expected',
        'timeout ratio',
        `cores, a scrape every ${SCRAPE_EVERY_S} s (of which user)`,
        'cores budget',
      ],
      list.map((r) => [
        r.role,
        fmt(r.readyMs),
        `${r.everyInterval} / ${r.targets['swept'] ?? 0} / ${r.targets['over_cap'] ?? 0}`,
        `${r.probes} / ${r.expectedProbes} (${fmt(r.counterSeconds, 1)} s)`,
        `${r.sweepProbes} / ${r.expectedSweepProbes}`,
        fmt(r.probes > 0 ? r.timeouts / r.probes : Number.NaN, 4),
        `${fmt(cores(r), 3)} (${fmt(r.userSeconds / r.windowSeconds, 3)})`,
        `≤ ${SHIPPED_BUDGET.cores}: ${ok(cores(r) <= SHIPPED_BUDGET.cores)}`,
      ]),
    ),
    '',
    table(
      [
        'agent',
        '/metrics median / max ms',
        '/metrics budget',
        'series',
        'size',
        'RSS MiB median / max',
        'anonymous MiB',
        'VmHWM MiB',
        'SIGTERM → exit',
        'sockets',
      ],
      list.map((r) => {
        const max = Math.max(...r.scrapeMs);
        return [
          role(r),
          `${fmt(median(r.scrapeMs), 1)} / ${fmt(max, 1)}`,
          `≤ ${SHIPPED_BUDGET.metricsMs}: ${ok(max <= SHIPPED_BUDGET.metricsMs)}`,
          String(r.series),
          `${fmt(r.scrapeBytes / 1024, 1)} KiB`,
          `${mib(r.rssMedianKiB)} / ${mib(r.rssMaxKiB)}`,
          mib(r.anonKiB),
          mib(r.hwmKiB),
          `${r.stopMs} ms, code ${r.stopCode}`,
          (r.sockets ?? ['?']).join(', '),
        ];
      }),
    ),
    '',
    `CPU by thread (cores): ${list.map((r) => `${role(r)}: ${r.threads.map((t) => `${t.thread} ${fmt(t.seconds / r.windowSeconds, 4)}`).join(', ')}`).join('; ')}. ` +
      `The memory a pod sees (the cgroup, the node binary's pages included) is what bench/pod-memory.sh measures: see bench/README.md.`,
    '',
  ].join('\n');
}

/** The budget lines: the full mesh at 1000 and 5000 targets, and the agent as shipped. */
export function scaleBudgets(r: ScaleResult): BudgetRow[] {
  const rows: BudgetRow[] = [];
  const floor = floorText(r, true);
  for (const x of r.rows) {
    const b = SCALE_BUDGET.get(x.targets);
    if (!b) continue;
    const cores = x.cpuSeconds / x.windowSeconds;
    const scraped = cores + x.cpuPerScrape / SCRAPE_EVERY_S;
    const rss = Math.max(x.rssMaxKiB, x.rssAfterScrapesKiB) / 1024;
    const max = Math.max(...x.scrapeMs);
    const what = `full mesh, ${x.targets} targets`;
    rows.push([
      `${what}: ≤ ${b.cores} core`,
      `${fmt(cores, 3)} quiet, ${fmt(scraped, 3)} with a scrape every ${SCRAPE_EVERY_S} s`,
      `${ok(cores <= b.cores)} / ${ok(scraped <= b.cores)}`,
    ]);
    rows.push([
      `${what}: ≤ ${b.rssMiB} MiB`,
      `${fmt(rss, 0)} MiB RSS (quiet ${fmt(x.rssMaxKiB / 1024, 0)}, after scrapes ${fmt(x.rssAfterScrapesKiB / 1024, 0)}, peak ${fmt(x.hwmKiB / 1024, 0)}; anonymous ${fmt(x.anonAfterScrapesKiB / 1024, 0)}, the rest is the node binary mapped from disk${floor ? `; floor: ${floor}` : ''})`,
      ok(rss <= b.rssMiB),
    ]);
    rows.push([
      `${what}: /metrics ≤ ${b.metricsMs} ms`,
      `max ${fmt(max)} ms, median ${fmt(median(x.scrapeMs))} ms (${fmt(x.scrapeBytes / 1024 / 1024, 1)} MiB, ${x.series} series)`,
      ok(max <= b.metricsMs),
    ]);
    rows.push([
      `${what}: every target probed every interval`,
      `${x.probes} of ${x.expected} expected, ${x.missed} targets missed, timeout ratio ${fmt(x.probes > 0 ? x.timeouts / x.probes : Number.NaN, 4)}`,
      ok(x.missed === 0 && x.probes >= 0.98 * x.expected),
    ]);
  }
  for (const x of r.shipped) {
    const cores = x.cpuSeconds / x.windowSeconds;
    const max = Math.max(...x.scrapeMs);
    const what = `as shipped, ${x.nodes} kubelet-sized nodes, the ${x.role.split(' ')[0]}`;
    rows.push([
      `${what}: ≤ ${SHIPPED_BUDGET.cores} core with a scrape every ${SCRAPE_EVERY_S} s`,
      `${fmt(cores, 3)} (RSS ${mib(x.rssMaxKiB)} MiB max)`,
      ok(cores <= SHIPPED_BUDGET.cores),
    ]);
    rows.push([
      `${what}: /metrics ≤ ${SHIPPED_BUDGET.metricsMs} ms`,
      `max ${fmt(max)} ms, median ${fmt(median(x.scrapeMs))} ms (${fmt(x.scrapeBytes / 1024, 0)} KiB, ${x.series} series)`,
      ok(max <= SHIPPED_BUDGET.metricsMs),
    ]);
    rows.push([
      `${what}: probes as planned (≥ 98% every interval, ≥ 90% of the sweep)`,
      `${x.probes} of ${x.expectedProbes} every interval (${x.everyInterval} nodes), ${x.sweepProbes} of ${x.expectedSweepProbes} sweep probes, timeout ratio ${fmt(x.probes > 0 ? x.timeouts / x.probes : Number.NaN, 4)}`,
      ok(x.probes >= 0.98 * x.expectedProbes && x.sweepProbes >= 0.9 * x.expectedSweepProbes),
    ]);
  }
  return rows;
}
