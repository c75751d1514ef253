/**
 * The probers the benchmark runs side by side in the source namespace: mentat
 * (the built agent), iputils ping, fping and prometheus-smokeping-prober,
 * each with a way to read its cumulative probe count and its RTT data.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgent, type AgentProcess } from '../test/support/agent-process.js';
import type { FaultControl } from '../test/support/fault-client.js';
import type { Cluster } from '../test/support/netns.js';
import { SHIPPED_RUNTIME_ENV } from './daemonset.js';
import type { NsHttp, Sample, ScrapeResult } from './http-client.js';
import type { Bucket } from './stats.js';

export const SMOKEPING_BIN = 'prometheus-smokeping-prober';

export function have(cmd: string, args: string[] = ['--version']): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined;
}

export function versionOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return 'not installed';
  return (
    `${r.stdout}${r.stderr}`
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? '?'
  );
}

/** Histogram data of one series set out of a scrape. */
export interface HistogramSnapshot {
  readonly buckets: Bucket[];
  readonly sum: number;
  readonly count: number;
}

function matches(s: Sample, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([k, v]) => s.labels[k] === v);
}

export function histogramOf(samples: readonly Sample[], base: string, labels: Record<string, string>): HistogramSnapshot {
  const buckets: Bucket[] = [];
  let sum = 0;
  let count = 0;
  for (const s of samples) {
    if (!matches(s, labels)) continue;
    if (s.name === `${base}_bucket`) buckets.push({ le: s.labels['le'] === '+Inf' ? Infinity : Number(s.labels['le']), count: s.value });
    else if (s.name === `${base}_sum`) sum = s.value;
    else if (s.name === `${base}_count`) count = s.value;
  }
  return { buckets, sum, count };
}

export function sumOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const s of samples) if (s.name === name && matches(s, labels)) total += s.value;
  return total;
}

// ------------------------------------------------------------------ mentat

export const MENTAT_KEEP = ['node_latency_bucket', 'node_latency_sum', 'node_latency_count', 'node_latency_probes_total'];

export interface Mentat {
  readonly label: string;
  readonly agent: AgentProcess;
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  scrape(keep?: string[]): Promise<ScrapeResult>;
  /** The `icmp` field of the "mentat started" log line, e.g. ["dgram/ipv4","dgram/ipv6"]. */
  sockets(): string[] | undefined;
  /** Waits until /readyz answers 200. */
  ready(timeoutMs: number): Promise<void>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export function startMentat(
  cluster: Cluster,
  ns: string,
  control: FaultControl,
  http: NsHttp,
  label: string,
  port: number,
  env: Record<string, string>,
  cpuProfileDir?: string,
): Mentat {
  // The runtime settings the shipped DaemonSet runs with, so memory is measured as a pod would see it.
  const fullEnv: Record<string, string> = { NODE_NAME: 'node0', MENTAT_LOG_LEVEL: 'info', ...SHIPPED_RUNTIME_ENV, ...env };
  if (cpuProfileDir) fullEnv['NODE_OPTIONS'] = `${fullEnv['NODE_OPTIONS']} --cpu-prof --cpu-prof-dir=${cpuProfileDir}`;
  const agent = startAgent(cluster, ns, control, fullEnv, { port });
  const url = `http://127.0.0.1:${port}`;
  return {
    label,
    agent,
    port,
    url: `${url}/metrics`,
    pid: agent.child.pid!,
    scrape: (keep = MENTAT_KEEP) =>
      http.scrape(`${url}/metrics`, { keep }).catch((err: unknown) => {
        const state =
          agent.child.exitCode !== null || agent.child.signalCode !== null ? `exited (${agent.child.exitCode ?? agent.child.signalCode})` : 'running';
        throw new Error(`scraping mentat ${label} failed: ${(err as Error).message}; the agent is ${state}; its log ends:\n${agent.log().slice(-2000)}`);
      }),
    sockets: () => agent.lines().find((l) => l['msg'] === 'mentat started')?.['icmp'] as string[] | undefined,
    async ready(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        // A V8 heap limit ends the process with SIGABRT: no exit code, a signal.
        if (agent.child.exitCode !== null || agent.child.signalCode !== null)
          throw new Error(`mentat ${label} exited (${agent.child.exitCode ?? agent.child.signalCode}): ${agent.log().slice(-2000)}`);
        const r = await http.scrape(`${url}/readyz`, { timeoutMs: 2000 }).catch(() => undefined);
        if (r?.status === 200) return;
        if (Date.now() > deadline) throw new Error(`mentat ${label} not ready after ${timeoutMs} ms: ${agent.log().slice(-2000)}`);
        await sleep(100);
      }
    },
    stop: () => agent.stop(5000),
  };
}

// ------------------------------------------------------------- smokeping

export interface Smokeping {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly url: string;
  scrape(): Promise<ScrapeResult>;
  ready(timeoutMs: number): Promise<void>;
  log(): string;
}

export const SMOKEPING_KEEP = [
  'smokeping_response_duration_seconds_bucket',
  'smokeping_response_duration_seconds_sum',
  'smokeping_response_duration_seconds_count',
  'smokeping_requests_total',
];

/** smokeping_prober with the hosts on its command line (unprivileged ICMP) and no config-file targets. */
export async function startSmokeping(
  cluster: Cluster,
  ns: string,
  http: NsHttp,
  dir: string,
  port: number,
  hosts: readonly string[],
  intervalMs: number,
  buckets?: readonly number[],
): Promise<Smokeping> {
  const config = join(dir, `smokeping-${port}.yml`);
  // Debian's default config probes localhost: an empty target list keeps only ours.
  await writeFile(config, 'targets: []\n');
  const args = [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`, `--ping.interval=${intervalMs}ms`, '--log.level=warn'];
  if (buckets) args.push(`--buckets=${buckets.join(',')}`);
  const child = cluster.spawnIn(ns, SMOKEPING_BIN, [...args, ...hosts]);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8000)));
  const url = `http://127.0.0.1:${port}/metrics`;
  return {
    process: child,
    pid: child.pid!,
    url,
    log: () => output,
    scrape: () => http.scrape(url, { keep: SMOKEPING_KEEP }),
    async ready(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`smokeping_prober exited (${child.exitCode}): ${output}`);
        const r = await http.scrape(url, { timeoutMs: 2000 }).catch(() => undefined);
        if (r?.status === 200) return;
        if (Date.now() > deadline) throw new Error(`smokeping_prober not ready after ${timeoutMs} ms: ${output}`);
        await sleep(100);
      }
    },
  };
}

// ------------------------------------------------------------------ ping

export interface PingRun {
  rttsMs: number[];
  transmitted: number;
  received: number;
  /** From the summary line: three decimals whatever the RTT. */
  avgMs: number;
}

/** `ping -c count -i interval` to one address, to completion. */
export async function runPing(cluster: Cluster, ns: string, address: string, intervalMs: number, count: number): Promise<PingRun> {
  const r = await cluster.execIn(ns, 'ping', ['-n', '-i', String(intervalMs / 1000), '-c', String(count), '-W', '1', address], {
    timeoutMs: count * intervalMs + 30_000,
  });
  const rttsMs = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const avg = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(r.stdout);
  return { rttsMs, transmitted: Number(summary?.[1] ?? 0), received: Number(summary?.[2] ?? 0), avgMs: Number(avg?.[1] ?? Number.NaN) };
}

/** Long-running pingers (one process per target) whose counts are read with SIGQUIT. */
export interface PingFleet {
  readonly pids: number[];
  /** Echo requests sent so far by all of them, from their SIGQUIT status lines. */
  transmitted(): Promise<number | undefined>;
  stop(): void;
}

export function startPingFleet(cluster: Cluster, ns: string, addresses: readonly string[], intervalMs: number): PingFleet {
  const procs = addresses.map((a) => {
    const child = cluster.spawnIn(ns, 'ping', ['-n', '-q', '-i', String(intervalMs / 1000), a]);
    const state = { child, err: '' };
    child.stdout?.resume();
    child.stderr?.on('data', (d: Buffer) => (state.err = (state.err + d.toString()).slice(-400)));
    return state;
  });
  return {
    pids: procs.map((p) => p.child.pid!),
    async transmitted() {
      for (const p of procs) p.err = '';
      for (const p of procs) p.child.kill('SIGQUIT');
      await sleep(300);
      let total = 0;
      for (const p of procs) {
        // iputils prints received/transmitted.
        const m = [...p.err.matchAll(/(\d+)\/(\d+) packets/g)].at(-1);
        if (!m) return undefined;
        total += Number(m[2]);
      }
      return total;
    },
    stop() {
      for (const p of procs) p.child.kill('SIGTERM');
    },
  };
}

// ------------------------------------------------------------------ fping

export interface Fping {
  readonly pid: number;
  /** Echo requests sent so far, summed from the SIGQUIT interval splits. */
  transmitted(): Promise<number | undefined>;
  stop(): void;
}

export function startFping(cluster: Cluster, ns: string, addresses: readonly string[], intervalMs: number): Fping {
  // -Q (not -q): quiet per probe; -l -q in fping 5.1 still prints every reply.
  const child = cluster.spawnIn(ns, 'fping', ['-l', '-Q', '3600', '-p', String(intervalMs), '-i', '1', ...addresses]);
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (err += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  let cumulative = 0;
  return {
    pid: child.pid!,
    async transmitted() {
      err = '';
      child.kill('SIGQUIT');
      await sleep(300);
      const lines = [...err.matchAll(/xmt\/rcv\/%loss = (\d+)\/(\d+)/g)];
      if (lines.length === 0) return undefined;
      for (const m of lines) cumulative += Number(m[1]);
      return cumulative;
    },
    stop() {
      child.kill('SIGTERM');
    },
  };
}
