/**
 * Section 1, accuracy (the run; report.ts writes it up): mentat (datagram and raw), iputils ping and smokeping_prober probe the same
 * user-space responders (5 ms and 0 ms) in the same window; then each mentat again while 8 clients
 * scrape its /metrics in a tight loop. The reference is ping's mean over the same window.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startResponder, type ClusterNode, type Responder } from '../../test/support/netns.js';
import { progress, type Ctx } from '../context.js';
import type { LoadResult, ScrapeResult } from '../http-client.js';
import { bucketDelta, histogramQuantile, histogramVariance, mean, quantile, variance } from '../stats.js';
import {
  have,
  histogramOf,
  runPing,
  SMOKEPING_BIN,
  startMentat,
  startSmokeping,
  sumOf,
  type HistogramSnapshot,
  type Mentat,
  type PingRun,
  type Smokeping,
} from '../tools.js';

/** The section's parameters. */
export interface AccuracyParams {
  /** Probe interval of every tool (ping needs root below 200 ms). */
  accIntervalMs: number;
  /**
   * Every other tool's interval, detuned from ping's 100 ms by 1-3 %: with equal intervals two tools
   * keep one relative phase for the whole window, and the one whose probe reaches the responder second
   * always waits for the first (a steady bias of tens of µs, seen as +18 µs between two identical pings).
   * Detuned, the phases sweep through each other several times per minute and the queueing averages out.
   */
  accDetunedMs: { dgram: number; raw: number; smokeping: number; ping2: number };
  accIdleSeconds: number;
  accLoadSeconds: number;
  accDelaysMs: number[];
  loadClients: number;
}

/** The section's parameters, shorter windows with --quick. */
export function accuracyParams(quick: boolean): AccuracyParams {
  return {
    accIntervalMs: 100,
    accDetunedMs: { dgram: 101, raw: 99, smokeping: 103, ping2: 97 },
    accIdleSeconds: quick ? 15 : 60,
    accLoadSeconds: quick ? 10 : 30,
    accDelaysMs: [5, 0],
    loadClients: 8,
  };
}

/** One tool's figures for one target over one window. */
export interface ToolWindow {
  tool: string;
  target: string;
  injectedMs: number;
  /** Probes sent in the window (where the tool says). */
  sent: number | undefined;
  replies: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  /** How p50/p99 were obtained. */
  quantiles: 'exact' | 'histogram';
  /** Variance of one RTT, ms² (from samples, or estimated from buckets). */
  varianceMs2: number;
  lost: number | undefined;
}

/** One window: idle, or one mentat under scrape load. */
export interface AccuracyPhase {
  name: string;
  seconds: number;
  rows: ToolWindow[];
  /** mean − ping mean per (tool, target), µs. */
  load?: LoadResult & { mode: string };
}

/** The section: its phases and what the tools ran with. */
export interface AccuracyResult {
  intervalMs: number;
  bucketsSeconds: number[];
  sockets: Record<string, string[] | undefined>;
  phases: AccuracyPhase[];
  notes: string[];
}

/** Fine buckets around each injected delay, so that histogram quantiles resolve 20 µs (at most 64 bounds). */
export function benchBuckets(delaysMs: readonly number[]): number[] {
  const set = new Set<number>();
  const add = (s: number): void => void set.add(Number(s.toFixed(7)));
  for (const d of delaysMs) {
    const base = d / 1000;
    if (base > 0) add(base - 0.00002);
    for (let k = 1; k <= 20; k++) add(base + k * 0.00002);
    for (const extra of [0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003]) add(base + extra);
  }
  for (const tail of [0.01, 0.02, 0.05, 0.1]) add(tail);
  const out = [...set].sort((a, b) => a - b);
  if (out.length > 64) throw new Error(`too many buckets: ${out.length}`);
  return out;
}

function mentatWindow(tool: string, target: { name: string; injectedMs: number }, before: ScrapeResult, after: ScrapeResult): ToolWindow {
  const sel = { destination_node: target.name };
  const h0 = histogramOf(before.samples, 'node_latency', sel);
  const h1 = histogramOf(after.samples, 'node_latency', sel);
  const probes = (s: ScrapeResult, result?: string): number => sumOf(s.samples, 'node_latency_probes_total', result ? { ...sel, result } : sel);
  return histogramWindow(
    tool,
    target,
    h0,
    h1,
    probes(after) - probes(before),
    probes(after, 'timeout') - probes(before, 'timeout') + probes(after, 'error') - probes(before, 'error'),
  );
}

function smokepingWindow(target: { name: string; address: string; injectedMs: number }, before: ScrapeResult, after: ScrapeResult): ToolWindow {
  const sel = { ip: target.address };
  const h0 = histogramOf(before.samples, 'smokeping_response_duration_seconds', sel);
  const h1 = histogramOf(after.samples, 'smokeping_response_duration_seconds', sel);
  const sent = sumOf(after.samples, 'smokeping_requests_total', sel) - sumOf(before.samples, 'smokeping_requests_total', sel);
  const replies = h1.count - h0.count;
  // The counters are read a moment apart: a probe in flight can make replies exceed sent by one.
  return histogramWindow('smokeping_prober', target, h0, h1, sent, Math.max(0, sent - replies));
}

function histogramWindow(
  tool: string,
  target: { name: string; injectedMs: number },
  h0: HistogramSnapshot,
  h1: HistogramSnapshot,
  sent: number | undefined,
  lost: number | undefined,
): ToolWindow {
  const replies = h1.count - h0.count;
  const delta = bucketDelta(h0.buckets, h1.buckets);
  return {
    tool,
    target: target.name,
    injectedMs: target.injectedMs,
    sent,
    replies,
    meanMs: replies > 0 ? ((h1.sum - h0.sum) / replies) * 1000 : Number.NaN,
    p50Ms: histogramQuantile(delta, 0.5) * 1000,
    p99Ms: histogramQuantile(delta, 0.99) * 1000,
    quantiles: 'histogram',
    varianceMs2: histogramVariance(delta) * 1e6,
    lost,
  };
}

function pingWindow(target: { name: string; injectedMs: number }, run: PingRun): ToolWindow {
  return {
    tool: 'ping (iputils)',
    target: target.name,
    injectedMs: target.injectedMs,
    sent: run.transmitted,
    replies: run.received,
    meanMs: Number.isFinite(run.avgMs) ? run.avgMs : mean(run.rttsMs),
    p50Ms: quantile(run.rttsMs, 0.5),
    p99Ms: quantile(run.rttsMs, 0.99),
    quantiles: 'exact',
    varianceMs2: variance(run.rttsMs),
    lost: run.transmitted - run.received,
  };
}

/** A responder: one user-space echo responder's address, name and injected delay. */
interface Target {
  name: string;
  address: string;
  injectedMs: number;
  node: ClusterNode;
}

/** The probers of the idle window: mentat in both ICMP modes, and smokeping_prober where installed. */
interface Tools {
  dgram: Mentat;
  raw: Mentat;
  smokeping: Smokeping | undefined;
}

/** Starts a responder per target, each at real-time priority; pushed to `responders` as they start. */
async function startResponders(ctx: Ctx, targets: readonly Target[], responders: Responder[], notes: string[]): Promise<void> {
  for (const t of targets) {
    const responder = await startResponder(ctx.cluster, t.node.ns, { delayMs: t.injectedMs });
    responders.push(responder);
    // The responder is the network here, not the system under test: real-time priority keeps its
    // delay steady when the scrape load saturates both cores, so the tools' differences show.
    const rt = spawnSync('chrt', ['-a', '-f', '-p', '20', String(responder.process.pid)], { encoding: 'utf8' });
    if (rt.status !== 0)
      notes.push(`could not give the responder real-time priority (chrt: ${(rt.stderr || rt.error?.message || '').trim()}): expect noisier load figures.`);
  }
}

/** Starts both mentats (pushed to `mentats`) and smokeping_prober, and waits until they are ready. */
async function startTools(ctx: Ctx, params: AccuracyParams, targets: readonly Target[], buckets: number[], mentats: Mentat[], notes: string[]): Promise<Tools> {
  const { cluster, control, http, src } = ctx;
  const env = (intervalMs: number) => ({
    MENTAT_TARGETS: targets.map((t) => `${t.name}=${t.address}`).join(','),
    MENTAT_PROBE_INTERVAL: `${intervalMs}ms`,
    MENTAT_PROBE_TIMEOUT: `${intervalMs}ms`,
    MENTAT_BUCKETS: buckets.join(','),
  });
  const D = params.accDetunedMs;
  const dgram = startMentat(cluster, src.ns, control, http, 'dgram', 2301, env(D.dgram), ctx.profileDir && join(ctx.profileDir, 'accuracy-dgram'));
  const raw = startMentat(
    cluster,
    src.ns,
    control,
    http,
    'raw',
    2302,
    { ...env(D.raw), MENTAT_ICMP_MODE: 'raw' },
    ctx.profileDir && join(ctx.profileDir, 'accuracy-raw'),
  );
  mentats.push(dgram, raw);
  const smokeping = have(SMOKEPING_BIN)
    ? await startSmokeping(
        cluster,
        src.ns,
        http,
        ctx.dir,
        9374,
        targets.map((t) => t.address),
        D.smokeping,
        buckets,
      )
    : undefined;
  if (!smokeping) notes.push(`${SMOKEPING_BIN} is not installed (apt-get install -y prometheus-smokeping-prober): its rows are missing.`);
  await Promise.all([dgram.ready(20_000), raw.ready(20_000), smokeping?.ready(20_000)]);
  return { dgram, raw, smokeping };
}

/** Warm-up: until both mentats have answers from every target. */
async function warmUp({ dgram, raw }: Tools, targets: readonly Target[]): Promise<void> {
  const warm = Date.now() + 20_000;
  for (;;) {
    const [d, r] = await Promise.all([dgram.scrape(), raw.scrape()]);
    const good = targets.every(
      (t) =>
        histogramOf(d.samples, 'node_latency', { destination_node: t.name }).count >= 10 &&
        histogramOf(r.samples, 'node_latency', { destination_node: t.name }).count >= 10,
    );
    if (good) break;
    if (Date.now() > warm)
      throw new Error(`mentat did not measure both targets within 20 s:\n${dgram.agent.log().slice(-1500)}\n${raw.agent.log().slice(-1500)}`);
    await sleep(250);
  }
  await sleep(1000);
}

/** Idle: everything at once, same targets, same window. */
async function idlePhase(ctx: Ctx, params: AccuracyParams, { dgram, raw, smokeping }: Tools, targets: readonly Target[]): Promise<AccuracyPhase> {
  const { cluster, src } = ctx;
  progress(`accuracy: idle window, ${params.accIdleSeconds} s at ${params.accIntervalMs} ms, mentat dgram + raw, ping, smokeping_prober`);
  const count = Math.round((params.accIdleSeconds * 1000) / params.accIntervalMs);
  const before = await Promise.all([dgram.scrape(), raw.scrape(), smokeping?.scrape()]);
  // A second ping on each target is the null experiment: how far two identical tools differ here.
  const count2 = Math.round((params.accIdleSeconds * 1000) / params.accDetunedMs.ping2);
  const pings = await Promise.all(
    targets.flatMap((t) => [
      runPing(cluster, src.ns, t.address, params.accIntervalMs, count),
      runPing(cluster, src.ns, t.address, params.accDetunedMs.ping2, count2),
    ]),
  );
  const after = await Promise.all([dgram.scrape(), raw.scrape(), smokeping?.scrape()]);
  const rows: ToolWindow[] = [];
  targets.forEach((t, i) => {
    rows.push(pingWindow(t, pings[2 * i]!));
    rows.push({ ...pingWindow(t, pings[2 * i + 1]!), tool: 'ping #2 (null check)' });
    rows.push(mentatWindow('mentat dgram (auto)', t, before[0], after[0]));
    rows.push(mentatWindow('mentat raw', t, before[1], after[1]));
    if (before[2] && after[2]) rows.push(smokepingWindow(t, before[2], after[2]));
  });
  return { name: 'idle', seconds: params.accIdleSeconds, rows };
}

/** Under scrape load: one mentat, ping alongside as the reference. */
async function loadPhase(ctx: Ctx, params: AccuracyParams, m: Mentat, tool: string, targets: readonly Target[]): Promise<AccuracyPhase> {
  const { cluster, http, src } = ctx;
  progress(`accuracy: ${m.label} while ${params.loadClients} clients scrape /metrics in a tight loop, ${params.accLoadSeconds} s`);
  const count = Math.round((params.accLoadSeconds * 1000) / params.accIntervalMs);
  const before = await m.scrape();
  const [load, ...pings] = await Promise.all([
    http.load(m.url, { clients: params.loadClients, seconds: params.accLoadSeconds + 1 }),
    ...targets.map((t) => runPing(cluster, src.ns, t.address, params.accIntervalMs, count)),
  ]);
  const after = await m.scrape();
  const rows: ToolWindow[] = [];
  targets.forEach((t, i) => {
    rows.push(pingWindow(t, pings[i]!));
    rows.push(mentatWindow(tool, t, before, after));
  });
  return { name: `load-${m.label}`, seconds: params.accLoadSeconds, rows, load: { ...load, mode: m.label } };
}

/** Runs the section; every process it started is stopped before it returns. */
export async function accuracy(ctx: Ctx, params: AccuracyParams): Promise<AccuracyResult> {
  const notes: string[] = [];
  const targets: Target[] = params.accDelaysMs.map((d, i) => ({
    name: `delay${d}ms`,
    address: ctx.responderNodes[i]!.ipv4,
    injectedMs: d,
    node: ctx.responderNodes[i]!,
  }));
  const buckets = benchBuckets(params.accDelaysMs);
  const responders: Responder[] = [];
  const mentats: Mentat[] = [];
  try {
    await startResponders(ctx, targets, responders, notes);
    const tools = await startTools(ctx, params, targets, buckets, mentats, notes);
    await warmUp(tools, targets);
    const sockets = { 'mentat (auto)': tools.dgram.sockets(), 'mentat (raw)': tools.raw.sockets() };
    const phases = [await idlePhase(ctx, params, tools, targets)];
    phases.push(await loadPhase(ctx, params, tools.dgram, 'mentat dgram (auto)', targets));
    phases.push(await loadPhase(ctx, params, tools.raw, 'mentat raw', targets));
    if (tools.smokeping) tools.smokeping.process.kill('SIGTERM');
    return { intervalMs: params.accIntervalMs, bucketsSeconds: buckets, sockets, phases, notes };
  } finally {
    for (const m of mentats) await m.stop();
    for (const r of responders) await r.stop().catch(() => undefined);
  }
}
