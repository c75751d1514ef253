/**
 * Section 1, accuracy: mentat (datagram and raw), iputils ping and smokeping_prober probe the same
 * user-space responders (5 ms and 0 ms) in the same window; then each mentat again while 8 clients
 * scrape its /metrics in a tight loop. The reference is ping's mean over the same window.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startResponder, type Responder } from '../test/support/netns.js';
import { progress, type Ctx } from './context.js';
import type { LoadResult, ScrapeResult } from './http-client.js';
import { verdict, type BudgetRow } from './report.js';
import { bucketDelta, fmt, fmtSigned, histogramQuantile, histogramVariance, mean, quantile, table, variance } from './stats.js';
import { have, histogramOf, runPing, SMOKEPING_BIN, startMentat, startSmokeping, sumOf, type HistogramSnapshot, type Mentat, type PingRun } from './tools.js';

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

/** |mean − ping mean|, µs: idle, and while /metrics is scraped in a tight loop. */
export const ACCURACY_BUDGET = { idleUs: 50, loadUs: 200 };

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

export interface AccuracyPhase {
  name: string;
  seconds: number;
  rows: ToolWindow[];
  /** mean − ping mean per (tool, target), µs. */
  load?: LoadResult & { mode: string };
}

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

/** Runs the section; every process it started is stopped before it returns. */
export async function accuracy(ctx: Ctx, params: AccuracyParams): Promise<AccuracyResult> {
  const { cluster, control, http, src } = ctx;
  const notes: string[] = [];
  const targets = params.accDelaysMs.map((d, i) => ({
    name: `delay${d}ms`,
    address: ctx.responderNodes[i]!.ipv4,
    injectedMs: d,
    node: ctx.responderNodes[i]!,
  }));
  const buckets = benchBuckets(params.accDelaysMs);
  const responders: Responder[] = [];
  const mentats: Mentat[] = [];
  try {
    for (const t of targets) {
      const responder = await startResponder(cluster, t.node.ns, { delayMs: t.injectedMs });
      responders.push(responder);
      // The responder is the network here, not the system under test: real-time priority keeps its
      // delay steady when the scrape load saturates both cores, so the tools' differences show.
      const rt = spawnSync('chrt', ['-a', '-f', '-p', '20', String(responder.process.pid)], { encoding: 'utf8' });
      if (rt.status !== 0)
        notes.push(`could not give the responder real-time priority (chrt: ${(rt.stderr || rt.error?.message || '').trim()}): expect noisier load figures.`);
    }
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
    // Warm-up: every tool has answers from both targets.
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
    const sockets = { 'mentat (auto)': dgram.sockets(), 'mentat (raw)': raw.sockets() };

    const phases: AccuracyPhase[] = [];
    // --- idle: everything at once, same targets, same window.
    {
      progress(`accuracy: idle window, ${params.accIdleSeconds} s at ${params.accIntervalMs} ms, mentat dgram + raw, ping, smokeping_prober`);
      const count = Math.round((params.accIdleSeconds * 1000) / params.accIntervalMs);
      const before = await Promise.all([dgram.scrape(), raw.scrape(), smokeping?.scrape()]);
      // A second ping on each target is the null experiment: how far two identical tools differ here.
      const count2 = Math.round((params.accIdleSeconds * 1000) / D.ping2);
      const pings = await Promise.all(
        targets.flatMap((t) => [runPing(cluster, src.ns, t.address, params.accIntervalMs, count), runPing(cluster, src.ns, t.address, D.ping2, count2)]),
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
      phases.push({ name: 'idle', seconds: params.accIdleSeconds, rows });
    }
    // --- under scrape load: one mentat at a time, ping alongside as the reference.
    for (const m of [dgram, raw]) {
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
        rows.push(mentatWindow(m === dgram ? 'mentat dgram (auto)' : 'mentat raw', t, before, after));
      });
      phases.push({ name: `load-${m.label}`, seconds: params.accLoadSeconds, rows, load: { ...load, mode: m.label } });
    }
    if (smokeping) smokeping.process.kill('SIGTERM');
    return { intervalMs: params.accIntervalMs, bucketsSeconds: buckets, sockets, phases, notes };
  } finally {
    for (const m of mentats) await m.stop();
    for (const r of responders) await r.stop().catch(() => undefined);
  }
}

export function accuracyReport(r: AccuracyResult, params: AccuracyParams): string {
  const out: string[] = ['## 1. Accuracy against peers', ''];
  out.push(
    `Same source namespace, same targets, same window. Targets are user-space echo responders that reply after a set delay ` +
      `(\`delay0ms\` replies at once, from user space). ping probes each target every ${r.intervalMs} ms; the other tools every ` +
      `${Object.entries(params.accDetunedMs)
        .map(([k, v]) => `${v} ms (${k})`)
        .join(', ')}: detuned by 1-3 % so that their probes do not keep one ` +
      `phase against ping's and queue behind them at the responder for the whole window. The histogram tools' windows are the ` +
      `scrapes around the ping runs, so they hold a few more probes than ping's. ` +
      `"− injected" is the tool's figure minus the responder's delay, so it includes the responder's own ` +
      `user-space overhead, the same for every tool; "− ping" is the tool's mean minus iputils ping's mean over the same window, ` +
      `which is the requirement (|mean − ping| ≤ ${ACCURACY_BUDGET.idleUs} µs idle, ≤ ${ACCURACY_BUDGET.loadUs} µs under scrape load). ` +
      `"ping #2" is a second, identical ping in the same window: its "− ping" is what this method reads for a tool with no error. ` +
      `"± n" is the 95% interval of that difference from the spread of both tools' samples (mentat's estimated from its buckets). ` +
      `The responders run with real-time priority (SCHED_FIFO), so that the scrape load does not stretch the injected delay. ` +
      `Histogram tools (mentat, smokeping_prober) were given the same fine buckets (20 µs steps near each delay), so their p50/p99 ` +
      `are PromQL-style interpolations with about 20 µs resolution; ping's are exact. ` +
      `Sockets mentat opened: ${Object.entries(r.sockets)
        .map(([k, v]) => `${k}: ${(v ?? ['?']).join(', ')}`)
        .join('; ')}.`,
  );
  out.push('');
  for (const phase of r.phases) {
    const pingRow = new Map(phase.rows.filter((x) => x.tool === 'ping (iputils)').map((x) => [x.target, x]));
    const budget = phase.name === 'idle' ? ACCURACY_BUDGET.idleUs : ACCURACY_BUDGET.loadUs;
    if (phase.name === 'idle') out.push(`### Idle (${phase.seconds} s, all tools at once)`, '');
    else {
      const l = phase.load!;
      out.push(
        `### mentat ${l.mode} while ${params.loadClients} clients scrape its /metrics in a tight loop (${phase.seconds} s)`,
        '',
        `Load: ${l.requests} scrapes in ${l.seconds.toFixed(1)} s (${fmt(l.requests / l.seconds)} /s), scrape latency p50 ${fmt(l.p50Ms, 2)} ms, ` +
          `p99 ${fmt(l.p99Ms, 2)} ms, max ${fmt(l.maxMs, 1)} ms, ${l.errors} errors${l.firstError ? ` (first: ${l.firstError})` : ''}.`,
        '',
      );
    }
    const rows = phase.rows.map((x) => {
      const ref = pingRow.get(x.target);
      const vsPing = x === ref || ref === undefined ? undefined : (x.meanMs - ref.meanMs) * 1000;
      // 95% interval of the difference of two means from independent samples, µs.
      const ci = ref === undefined ? Number.NaN : 1.96 * Math.sqrt(x.varianceMs2 / x.replies + ref.varianceMs2 / ref.replies) * 1000;
      const isMentat = x.tool.startsWith('mentat');
      return [
        x.target,
        x.tool,
        `${x.replies}${x.sent !== undefined ? ` / ${x.sent}` : ''}`,
        fmt(x.meanMs, 3),
        fmtSigned((x.meanMs - x.injectedMs) * 1000),
        vsPing === undefined ? '(reference)' : `${fmtSigned(vsPing)} ± ${fmt(ci)}`,
        isMentat && vsPing !== undefined ? `≤ ${budget}: ${verdict(vsPing, ci, budget)}` : '',
        fmtSigned((x.p50Ms - x.injectedMs) * 1000),
        fmtSigned((x.p99Ms - x.injectedMs) * 1000),
        x.quantiles,
        fmt(x.lost),
      ];
    });
    out.push(
      table(
        [
          'target',
          'tool',
          'replies / sent',
          'mean RTT ms',
          'mean − injected µs',
          'mean − ping µs',
          'budget µs',
          'p50 − injected µs',
          'p99 − injected µs',
          'quantiles',
          'lost',
        ],
        rows,
      ),
      '',
    );
  }
  for (const n of r.notes) out.push(`Note: ${n}`, '');
  return out.join('\n');
}

/** The budget lines: |mean − ping| of each mentat and target, in each phase. */
export function accuracyBudgets(r: AccuracyResult, params: AccuracyParams): BudgetRow[] {
  const rows: BudgetRow[] = [];
  for (const phase of r.phases) {
    const budget = phase.name === 'idle' ? ACCURACY_BUDGET.idleUs : ACCURACY_BUDGET.loadUs;
    const ref = new Map(phase.rows.filter((x) => x.tool === 'ping (iputils)').map((x) => [x.target, x]));
    for (const x of phase.rows.filter((y) => y.tool.startsWith('mentat'))) {
      const ping = ref.get(x.target);
      if (!ping) continue;
      const diff = (x.meanMs - ping.meanMs) * 1000;
      const ci = 1.96 * Math.sqrt(x.varianceMs2 / x.replies + ping.varianceMs2 / ping.replies) * 1000;
      const when = phase.name === 'idle' ? 'idle' : `${params.loadClients} clients scraping`;
      rows.push([`${x.tool}, ${x.target}, ${when}: |mean − ping| ≤ ${budget} µs`, `${fmtSigned(diff)} ± ${fmt(ci)} µs`, verdict(diff, ci, budget)]);
    }
  }
  return rows;
}
