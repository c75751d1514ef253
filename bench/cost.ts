/**
 * Section 2, cost: CPU per 1000 probes and memory of mentat (both ICMP modes), iputils ping, fping
 * and smokeping_prober, all at once, on the same kernel-answered targets at 1 s; then mentat (its
 * default, datagram ICMP) beside fping alone at 1000 targets.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { progress, type Ctx } from './context.js';
import { readProcs } from './proc.js';
import { mib } from './report.js';
import { processTree } from './window.js';
import { fmt, table } from './stats.js';
import {
  have,
  SMOKEPING_BIN,
  startFping,
  startMentat,
  startPingFleet,
  startSmokeping,
  sumOf,
  type Fping,
  type Mentat,
  type PingFleet,
  type Smokeping,
} from './tools.js';

/** The section's parameters. */
export interface CostParams {
  costTargets: number;
  /** The second window: mentat dgram and fping only (1000 ping processes would measure the kernel's process switching). */
  costLargeTargets: number;
  costIntervalMs: number;
  costWarmupSeconds: number;
  costSeconds: number;
}

/** The section's parameters, a shorter window with --quick. */
export function costParams(quick: boolean): CostParams {
  return { costTargets: 100, costLargeTargets: 1000, costIntervalMs: 1000, costWarmupSeconds: 7, costSeconds: quick ? 15 : 60 };
}

/** One tool's CPU, memory and probes over the window. */
export interface CostRow {
  tool: string;
  processes: number;
  probes: number | undefined;
  expected: number;
  probesSource: string;
  seconds: number;
  cpuSeconds: number;
  userSeconds: number;
  schedSeconds: number;
  rssKiB: number;
  hwmKiB: number;
  pssKiB: number;
  threads: number;
}

/** The section: a row per tool. */
export interface CostResult {
  targets: number;
  intervalMs: number;
  rows: CostRow[];
  notes: string[];
  /** The same rows for mentat dgram and fping at costLargeTargets (absent in results of older runs). */
  large?: { targets: number; rows: CostRow[] };
}

/** A tool's processes and how to count its probes. */
interface Probe {
  tool: string;
  pids: number[];
  probes: () => Promise<number | undefined>;
  source: string;
}

/** A mentat's row: its whole process tree (raw mode probes in a child process, the one that holds CAP_NET_RAW) and its probe counter. */
function mentatProbe(tool: string, m: Mentat): Probe {
  const probes = async () => sumOf((await m.scrape(['node_latency_probes_total'])).samples, 'node_latency_probes_total');
  return { tool, pids: processTree(m.pid), probes, source: 'node_latency_probes_total' };
}

/** fping's row: its process and the count its SIGQUIT summary gives. */
function fpingProbe(fp: Fping): Probe {
  return { tool: 'fping -l', pids: [fp.pid], probes: () => fp.transmitted(), source: 'SIGQUIT split' };
}

/** MENTAT_TARGETS naming each address, and the interval. */
function targetsEnv(addresses: readonly string[], intervalMs: number): Record<string, string> {
  return { MENTAT_TARGETS: addresses.map((a, i) => `t${i}=${a}`).join(','), MENTAT_PROBE_INTERVAL: `${intervalMs}ms` };
}

/** What each tool's row reads: its processes and its probe counter. */
function probeSources(dgram: Mentat, raw: Mentat, fleet: PingFleet, fp: Fping | undefined, sp: Smokeping | undefined): Probe[] {
  const probes: Probe[] = [
    mentatProbe('mentat dgram (auto)', dgram),
    mentatProbe('mentat raw', raw),
    { tool: 'ping (iputils), one per target', pids: fleet.pids, probes: () => fleet.transmitted(), source: 'SIGQUIT status' },
  ];
  if (fp) probes.push(fpingProbe(fp));
  if (sp)
    probes.push({
      tool: 'smokeping_prober',
      pids: [sp.pid],
      probes: async () => sumOf((await sp.scrape()).samples, 'smokeping_requests_total'),
      source: 'smokeping_requests_total',
    });
  return probes;
}

/** One reading of every tool: /proc and its probe count. */
async function snapshot(probes: readonly Probe[]) {
  const t = Date.now();
  const procs = probes.map((p) => readProcs(p.pids, true));
  const counts = await Promise.all(probes.map((p) => p.probes().catch(() => undefined)));
  return { t, procs, counts };
}

/** A reading of every tool at one time. */
type Snapshot = Awaited<ReturnType<typeof snapshot>>;

/** Each tool's row from the readings that bracket the window. */
function costRows(probes: readonly Probe[], a: Snapshot, b: Snapshot, targets: number, intervalMs: number): CostRow[] {
  const seconds = (b.t - a.t) / 1000;
  return probes.map((p, i) => {
    const pa = a.procs[i];
    const pb = b.procs[i];
    const ca = a.counts[i];
    const cb = b.counts[i];
    const counted = ca !== undefined && cb !== undefined ? cb - ca : undefined;
    return {
      tool: p.tool,
      processes: p.pids.length,
      probes: counted,
      expected: Math.round((targets * seconds * 1000) / intervalMs),
      probesSource: counted === undefined ? 'expected' : p.source,
      seconds,
      cpuSeconds: pa && pb ? pb.cpuSeconds - pa.cpuSeconds : Number.NaN,
      userSeconds: pa && pb ? pb.userSeconds - pa.userSeconds : Number.NaN,
      schedSeconds: pa && pb ? pb.schedSeconds - pa.schedSeconds : Number.NaN,
      rssKiB: pb?.rssKiB ?? Number.NaN,
      hwmKiB: pb?.hwmKiB ?? Number.NaN,
      pssKiB: pb?.pssKiB ?? Number.NaN,
      threads: pb?.threads ?? Number.NaN,
    };
  });
}

/** Runs the section; every process it started is stopped before it returns. */
export async function cost(ctx: Ctx, params: CostParams): Promise<CostResult> {
  const { cluster, control, http, src } = ctx;
  const addresses = ctx.farmAddresses.slice(0, params.costTargets);
  const notes: string[] = [];
  progress(
    `cost: ${addresses.length} targets at ${params.costIntervalMs} ms: mentat dgram + raw, ${addresses.length} × ping, fping, smokeping_prober; warm-up ${params.costWarmupSeconds} s, window ${params.costSeconds} s`,
  );
  const env = targetsEnv(addresses, params.costIntervalMs);
  const dgram = startMentat(cluster, src.ns, control, http, 'dgram', 2311, env, ctx.profileDir && join(ctx.profileDir, 'cost-dgram'));
  const raw = startMentat(cluster, src.ns, control, http, 'raw', 2312, { ...env, MENTAT_ICMP_MODE: 'raw' }, ctx.profileDir && join(ctx.profileDir, 'cost-raw'));
  let pings: PingFleet | undefined;
  let fping: Fping | undefined;
  let smokeping: Smokeping | undefined;
  try {
    const fleet = (pings = startPingFleet(cluster, src.ns, addresses, params.costIntervalMs));
    const fp = (fping = have('fping', ['-v']) ? startFping(cluster, src.ns, addresses, params.costIntervalMs) : undefined);
    if (!fp) notes.push('fping is not installed: its row is missing.');
    const sp = (smokeping = have(SMOKEPING_BIN) ? await startSmokeping(cluster, src.ns, http, ctx.dir, 9375, addresses, params.costIntervalMs) : undefined);
    if (!sp) notes.push(`${SMOKEPING_BIN} is not installed: its row is missing.`);
    await Promise.all([dgram.ready(20_000), raw.ready(20_000), sp?.ready(20_000)]);
    await sleep(params.costWarmupSeconds * 1000);

    const rows = await measureWindow(probeSources(dgram, raw, fleet, fp, sp), addresses.length, params);
    return { targets: addresses.length, intervalMs: params.costIntervalMs, rows, notes };
  } finally {
    await Promise.all([dgram.stop(), raw.stop()]);
    // The namespace's destroy() would end them too, but the next window and section need the CPU now.
    pings?.stop();
    fping?.stop();
    smokeping?.process.kill('SIGTERM');
  }
}

/** Each tool's row over one window of params.costSeconds. */
async function measureWindow(probes: readonly Probe[], targets: number, params: CostParams): Promise<CostRow[]> {
  const a = await snapshot(probes);
  await sleep(params.costSeconds * 1000 - (Date.now() - a.t));
  return costRows(probes, a, await snapshot(probes), targets, params.costIntervalMs);
}

/** mentat (datagram ICMP, the default) beside fping at params.costLargeTargets; undefined without fping or enough addresses. */
export async function costLarge(ctx: Ctx, params: CostParams): Promise<CostResult['large']> {
  const { cluster, control, http, src } = ctx;
  const addresses = ctx.farmAddresses.slice(0, params.costLargeTargets);
  if (addresses.length < params.costLargeTargets || !have('fping', ['-v'])) return undefined;
  progress(
    `cost: ${addresses.length} targets at ${params.costIntervalMs} ms: mentat dgram and fping; warm-up ${params.costWarmupSeconds} s, window ${params.costSeconds} s`,
  );
  const env = {
    ...targetsEnv(addresses, params.costIntervalMs),
    MENTAT_MESH: 'full',
    MENTAT_MAX_TARGETS: String(addresses.length),
  };
  const dgram = startMentat(cluster, src.ns, control, http, 'dgram', 2313, env, ctx.profileDir && join(ctx.profileDir, 'cost-dgram-large'));
  const fp = startFping(cluster, src.ns, addresses, params.costIntervalMs);
  try {
    await dgram.ready(20_000);
    await sleep(params.costWarmupSeconds * 1000);
    const probes = [mentatProbe('mentat dgram (auto)', dgram), fpingProbe(fp)];
    return { targets: addresses.length, rows: await measureWindow(probes, addresses.length, params) };
  } finally {
    await dgram.stop();
    fp.stop();
  }
}

/** CPU milliseconds per 1000 probes: schedstat where it was read, else /proc/<pid>/stat. */
function perThousand(x: CostRow | undefined): number {
  if (!x) return Number.NaN;
  const cpu = Number.isFinite(x.schedSeconds) ? x.schedSeconds : x.cpuSeconds;
  return (cpu / (x.probes ?? x.expected)) * 1000 * 1000;
}

/** One row per tool: probes, CPU, memory. */
function costTable(costRows: readonly CostRow[]): string {
  const rows = costRows.map((x) => {
    const cpu = Number.isFinite(x.schedSeconds) ? x.schedSeconds : x.cpuSeconds;
    return [
      x.tool,
      String(x.processes),
      `${fmt(x.probes)} / ${x.expected}`,
      `${fmt(x.cpuSeconds, 2)} (${fmt(x.userSeconds, 2)} user)`,
      fmt(x.schedSeconds, 3),
      fmt(perThousand(x), 1),
      fmt(cpu / x.seconds, 4),
      mib(x.rssKiB),
      mib(x.hwmKiB),
      mib(x.pssKiB),
      fmt(x.threads),
    ];
  });
  return table(
    [
      'tool',
      'processes',
      'probes / expected',
      'CPU s (stat, of which user)',
      'CPU s (schedstat)',
      'CPU ms per 1000 probes',
      'cores',
      'RSS MiB',
      'VmHWM MiB',
      'PSS MiB',
      'threads',
    ],
    rows,
  );
}

/** The section's Markdown. */
export function costReport(r: CostResult): string {
  const out: string[] = ['## 2. Cost', ''];
  out.push(
    `${r.targets} targets (addresses answered by the kernel in another namespace), one probe per target every ${r.intervalMs} ms, ` +
      `all tools running at once in the same namespace. CPU is utime+stime of all threads from /proc/<pid>/stat over the window ` +
      `(10 ms ticks, truncated per process, so a process using a few ms reads 0), and the on-CPU nanoseconds of every live thread ` +
      `from /proc/<pid>/task/*/schedstat, which the per-1000-probes and cores columns use; memory is VmRSS / VmHWM from /proc/<pid>/status and PSS from smaps_rollup at the end of the window. ` +
      `ping is one process per target: its figures are sums over the ${r.targets} processes (RSS counts the shared pages ${r.targets} times; PSS does not).`,
    '',
    `Caveat for every tool alike: on veth the kernel runs the whole path of a probe inline (bridge, the target namespace's ` +
      `routing and its echo reply, and the way back), and it is charged as system time to whichever thread sends or receives. ` +
      `So system time here includes work a remote node would do in a real cluster (perf on mentat at 5000 targets: ` +
      `icmp_reply, fib lookups, br_nf_pre_routing, veth_xmit); user time is each tool's own cost.`,
    '',
  );
  out.push(costTable(r.rows), '');
  out.push(`Window ${fmt(r.rows[0]?.seconds, 1)} s.`, '');
  if (r.large) {
    const ratio = perThousand(r.large.rows[0]) / perThousand(r.large.rows[1]);
    out.push(
      `At ${r.large.targets} targets, mentat (datagram ICMP, the default; a full mesh of ${r.large.targets}) beside fping alone, the same way: ` +
        `mentat's CPU per probe is ${fmt(ratio, 2)}x fping's.`,
      '',
      costTable(r.large.rows),
      '',
    );
  }
  for (const n of r.notes) out.push(`Note: ${n}`, '');
  return out.join('\n');
}
