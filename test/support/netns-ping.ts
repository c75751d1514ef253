/** What the netns e2e files share: iputils ping run and parsed in a namespace, its skip rule, one cluster per describe, a responder around one check. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, type TestContext } from 'node:test';
import { createCluster, netnsSupported, requireNetns, startResponder, type Cluster, type ClusterNode, type CreateClusterOptions } from './netns.js';
import type { ResponderOptions } from './netns-responder.js';
import type { ResponderStats } from './echo-stats.js';

const hasPing = spawnSync('ping', ['-V'], { stdio: 'ignore' }).status === 0;

/** Like requireNetns, plus iputils ping (same skip-or-fail-in-CI rule). */
export function ready(t: TestContext): boolean {
  if (!requireNetns(t)) return false;
  if (hasPing) return true;
  if (process.env.CI === 'true') throw new Error('iputils-ping is required under CI');
  t.skip('iputils-ping not installed');
  return false;
}

export interface PingResult {
  transmitted: number;
  received: number;
  duplicates: number;
  /** RTTs of non-duplicate replies, ms. */
  rtts: number[];
  /** Source addresses of replies. */
  froms: string[];
  truncated: number;
  out: string;
}

function parsePing(out: string): PingResult {
  const rtts: number[] = [];
  const froms: string[] = [];
  let truncated = 0;
  for (const line of out.split('\n')) {
    const m = /bytes from ([0-9a-f.:]+?):? icmp_seq=/.exec(line);
    if (!m) continue;
    froms.push(m[1]!);
    if (line.includes('truncated')) truncated++;
    const time = /time=([\d.]+) ms/.exec(line);
    if (time && !line.includes('DUP!')) rtts.push(Number(time[1]));
  }
  const s = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(out);
  return {
    transmitted: Number(s?.[1] ?? 0),
    received: Number(s?.[2] ?? 0),
    duplicates: Number(s?.[3] ?? 0),
    rtts,
    froms,
    truncated,
    out,
  };
}

export async function ping(c: Cluster, from: ClusterNode, to: string, args: string[]): Promise<PingResult> {
  const r = await c.execIn(from.ns, 'ping', [...(to.includes(':') ? ['-6'] : []), '-n', ...args, to], { timeoutMs: 30_000 });
  return parsePing(r.stdout + r.stderr);
}

/** A cluster for the calling describe block, made before its tests where namespaces work and destroyed after them. */
export function useCluster(opts: CreateClusterOptions): () => Cluster {
  let cluster: Cluster | undefined;
  before(async () => {
    if (netnsSupported().ok) cluster = await createCluster(opts);
  });
  after(async () => {
    await cluster?.destroy();
  });
  return () => {
    assert.ok(cluster, 'cluster not created');
    return cluster;
  };
}

/** Runs `check` while the responder answers in `ns`; stops it either way and returns its counters. */
export async function withResponder<T>(c: Cluster, ns: string, opts: ResponderOptions, check: () => Promise<T>): Promise<{ result: T; stats: ResponderStats }> {
  const resp = await startResponder(c, ns, opts);
  let result: T;
  try {
    result = await check();
  } catch (e) {
    // The check's failure is the one to report, not a second one from stopping.
    await resp.stop().catch(() => {});
    throw e;
  }
  return { result, stats: await resp.stop() };
}
