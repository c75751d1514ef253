/** Section 3, scale: the full-mesh rows, one fresh agent per size, each over a quiet window and then timed scrapes. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { progress, type Ctx } from '../context.js';
import type { ScrapeResult } from '../http-client.js';
import { summariseProfile, type ProfileSummary } from '../profile.js';
import { median } from '../stats.js';
import { startMentat, type Mentat } from '../tools.js';
import { MeasurementWindow, settledReading, type WindowReading } from '../window.js';
import type { ScaleParams, ScaleRow } from './params.js';

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

/** The name of the `i`th target's Node (the shipped rows reuse them). */
export const nodeName = (i: number): string => `scale-${String(i).padStart(5, '0')}`;

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
  await window.sampleUntil(params.scaleSeconds * 1000);
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
  // What the scrapes left behind.
  const afterScrapes = await settledReading(m.pid);
  const { probes, timeouts } = probeDelta(t0s, t1s);
  return { scrapes, scrapeMs, last, afterScrapes, scrapeProbes: probes, scrapeTimeouts: timeouts };
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

/** The full-mesh rows, smallest first; Nodes accumulate in the fake API server. Returns how many there are. */
export async function fullMesh(ctx: Ctx, params: ScaleParams): Promise<{ rows: ScaleRow[]; upserted: number }> {
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
