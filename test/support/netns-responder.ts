/**
 * The user-space echo responder in a namespace (echo-responder.ts), with the kernel's own echo
 * replies turned off there: known delay, jitter, loss, duplicates and corruption on a real path.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { CorruptMode } from './echo-options.js';
import type { ResponderStats } from './echo-stats.js';
import type { Cluster } from './netns-types.js';
import { getSysctls, killGroup, setSysctls } from './netns-exec.js';

export interface ResponderOptions {
  /** Fixed extra delay before each reply. */
  delayMs?: number;
  /** Uniform extra delay in [0, jitterMs). */
  jitterMs?: number;
  /** Share of requests dropped, 0..1. */
  lossRatio?: number;
  /** PRNG seed for loss/jitter/corruption decisions (random if unset). */
  seed?: number;
  /** Send every reply twice. */
  duplicate?: boolean;
  corrupt?: CorruptMode;
  /** Share of replies corrupted when `corrupt` is set (default 1). */
  corruptRatio?: number;
  /** Which families to answer (default both). */
  family?: 'both' | '4' | '6';
  /** Never answer requests from these sources. */
  dropFrom?: readonly string[];
}

export interface Responder {
  readonly ns: string;
  readonly process: ChildProcess;
  /** Stop the responder, restore the namespace's echo sysctls, return its counters. */
  stop(): Promise<ResponderStats>;
}

const ECHO_SYSCTLS = ['net.ipv4.icmp_echo_ignore_all', 'net.ipv6.icmp.echo_ignore_all'] as const;

/** Path of the compiled responder next to this module (dist/test/support/). */
export const RESPONDER_PATH = fileURLToPath(new URL('./echo-responder.js', import.meta.url));

/** The responder's command line (echo-options.ts reads it) for these options. */
function responderArgs(opts: ResponderOptions): string[] {
  const args: string[] = [];
  if (opts.delayMs !== undefined) args.push('--delay-ms', String(opts.delayMs));
  if (opts.jitterMs !== undefined) args.push('--jitter-ms', String(opts.jitterMs));
  if (opts.lossRatio !== undefined) args.push('--loss', String(opts.lossRatio));
  if (opts.seed !== undefined) args.push('--seed', String(opts.seed));
  if (opts.duplicate) args.push('--duplicate');
  if (opts.corrupt !== undefined) args.push('--corrupt', opts.corrupt);
  if (opts.corruptRatio !== undefined) args.push('--corrupt-ratio', String(opts.corruptRatio));
  if (opts.family !== undefined) args.push('--family', opts.family);
  if (opts.dropFrom !== undefined) args.push('--drop-from', opts.dropFrom.join(','));
  return args;
}

/**
 * Resolves once the responder printed `ready`, keeping every other line in `lines`; kills it and
 * rejects with its stderr if it exits, fails to start or is not ready within 10 s.
 */
function untilReady(child: ChildProcess, rl: Interface, lines: string[], stderr: () => string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onLine = (line: string): void => {
      if (line === 'ready') done();
      else lines.push(line);
    };
    const onExit = (code: number | null, sig: NodeJS.Signals | null): void => done(new Error(`responder exited before ready (code ${code}, signal ${sig})`));
    const onError = (e: Error): void => done(e);
    const timer = setTimeout(() => done(new Error('responder not ready after 10 s')), 10_000);
    const done = (e?: Error): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      if (!e) return resolve();
      killGroup(child, 'SIGKILL');
      reject(new Error(`${e.message}; stderr: ${stderr().trim()}`));
    };
    rl.on('line', onLine);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/**
 * Silence the kernel's echo replies in `ns` and run the user-space responder
 * there. Resolves once it printed `ready`.
 */
export async function startResponder(cluster: Cluster, ns: string, opts: ResponderOptions = {}): Promise<Responder> {
  const target = cluster.nsOf(ns);
  const saved = await getSysctls(target, ECHO_SYSCTLS);
  await setSysctls(target, Object.fromEntries(ECHO_SYSCTLS.map((k) => [k, '1'])));
  // process.execPath: the same Node 24 that runs the tests, never a system node.
  const child = cluster.spawnIn(target, process.execPath, [RESPONDER_PATH, ...responderArgs(opts)]);
  const lines: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const rl = createInterface({ input: child.stdout! });
  // 'close' (not 'exit'): the summary line must have been read off stdout.
  const closed = new Promise<void>((resolve) => {
    if (child.stdout === null || child.stdout.closed) resolve();
    else child.once('close', () => resolve());
  });
  const restore = async (): Promise<void> => {
    try {
      await setSysctls(target, saved);
    } catch {
      /* namespace already gone */
    }
  };

  try {
    await untilReady(child, rl, lines, () => stderr);
  } catch (e) {
    await restore();
    throw e;
  }

  let stopPromise: Promise<ResponderStats> | undefined;
  return {
    ns: target,
    process: child,
    stop(): Promise<ResponderStats> {
      stopPromise ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const timeout = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 3000).unref());
        if ((await Promise.race([closed, timeout])) === 'timeout') {
          killGroup(child, 'SIGKILL');
          await closed;
        }
        await restore();
        const summary = [...lines].reverse().find((l) => l.startsWith('{'));
        if (!summary) throw new Error(`responder gave no summary (exit ${child.exitCode}, signal ${child.signalCode}); stderr: ${stderr.trim()}`);
        return JSON.parse(summary) as ResponderStats;
      })();
      return stopPromise;
    },
  };
}
