import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FaultControl } from './fault-client.js';
import { parseExposition, type Sample } from './exposition.js';
import { listenLocal } from './listen.js';
import type { Cluster } from './netns.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const MAIN = join(REPO, 'dist', 'src', 'main.js');

/** setpriv arguments for a locked-down non-root user, as Kubernetes runs a hardened container. */
export const LOCKED_DOWN = ['--reuid', '65532', '--regid', '65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs'];
/** Root with every capability dropped but NET_RAW, as deploy/overlays/host-network runs the agent. */
export const ROOT_NET_RAW_ONLY = ['--inh-caps=-all', '--bounding-set=-all,+net_raw', '--no-new-privs'];

export interface AgentProcess {
  readonly child: ChildProcess;
  log(): string;
  /** Parsed JSON log lines. */
  lines(): Array<Record<string, unknown>>;
  scrape(): Promise<Sample[]>;
  /** Resolves with the exit code and signal once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** Starts the built agent in a namespace, as root or (lockedDown) as uid 65532 with no capabilities. */
export function startAgent(
  cluster: Cluster,
  ns: string,
  control: FaultControl,
  env: Record<string, string>,
  opts: { lockedDown?: boolean; setpriv?: readonly string[]; port?: number } = {},
): AgentProcess {
  const port = opts.port ?? 2112;
  const setpriv = opts.setpriv ?? (opts.lockedDown ? LOCKED_DOWN : undefined);
  const argv = setpriv ? [...setpriv, process.execPath, MAIN] : [MAIN];
  const cmd = setpriv ? 'setpriv' : process.execPath;
  const child = cluster.spawnIn(ns, cmd, argv, {
    cwd: REPO,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent', MENTAT_METRICS_PORT: String(port), MENTAT_METRICS_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    exited,
    log: () => output,
    lines: () =>
      output
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    async scrape() {
      const r = await control.fetch(`http://127.0.0.1:${port}/metrics`, { timeoutMs: 5000 });
      if (r.status !== 200) throw new Error(`scrape failed: ${r.status} ${r.body.slice(0, 200)}`);
      return parseExposition(r.body);
    },
    async stop(graceMs = 5000) {
      const start = Date.now();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return { ...result, ms: Date.now() - start };
    },
  };
}

/** Polls `fn` until it returns a value other than undefined; `context` is added to the timeout error. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined> | T | undefined,
  opts: number | { everyMs?: number; context?: () => string } = {},
): Promise<T> {
  const { everyMs = 100, context } = typeof opts === 'number' ? { everyMs: opts } : opts;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ''}${context ? `\n${context()}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A port nothing listens on right now in this namespace (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listenLocal(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Parses iputils ping output into RTTs in milliseconds and the sent/received counts. */
export function parsePing(output: string): { rttsMs: number[]; sent: number; received: number } {
  const rttsMs = [...output.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(output);
  return { rttsMs, sent: Number(summary?.[1] ?? 0), received: Number(summary?.[2] ?? 0) };
}
