/**
 * Section 5, API load: what mentat costs the Kubernetes API server, with real agents (the built
 * dist/src/main.js, the DaemonSet's environment) against the fake API server (bench/api-server.ts,
 * inside the agents' namespace), each agent with a token of its own so that every request and every
 * byte sent back is counted per agent.
 *
 * At each size, N kubelet-sized Nodes whose kubelets post status every 5 minutes; first one agent in
 * direct mode (no POD_NAMESPACE: it lists and watches Nodes itself), alone: its start and its steady
 * state; then three in published mode (POD_NAMESPACE set: one elected publisher, two followers): the
 * steady state, one node joining, a follower restarted, and the publisher restarted (another takes over).
 */
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { KUBELET_STATUS_PERIOD_MS } from '../test/support/fake-api-heartbeats.js';
import { makeRealisticNode, type LoadCount } from '../test/support/fake-apiserver.js';
import { until } from '../test/support/agent-process.js';
import { IpcRpc, type OpOf } from '../test/support/ipc-rpc.js';
import type { ApiServerRequest, LeaseView, LoadSnapshot } from './api-server.js';
import { progress, type Ctx } from './context.js';
import { CpuLimits } from './cpu-limit.js';
import { daemonSetEnv } from './daemonset.js';
import { readProc } from './proc.js';
import { bytes, ok, type BudgetRow } from './report.js';
import { fmt, table } from './stats.js';
import { startMentat, sumOf, type Mentat } from './tools.js';

export interface ApiParams {
  apiSizes: number[];
  /** The steady-state window, s. */
  apiWindowSeconds: number;
  /** Agents in published mode (one publisher, the rest followers). */
  apiPublishedAgents: number;
  /** Each agent's CPU limit in millicores, as a pod's limits.cpu (the DaemonSet's is 200); 0: none. */
  apiCpuLimitM: number;
}

export function apiParams(quick: boolean, sizes: readonly number[] | undefined, cpuLimitM = 0): ApiParams {
  const p: ApiParams = {
    apiSizes: sizes ? [...sizes] : quick ? [100, 1000] : [100, 1000, 5000],
    apiWindowSeconds: quick ? 30 : 60,
    apiPublishedAgents: 3,
    apiCpuLimitM: cpuLimitM,
  };
  if (!Number.isInteger(p.apiCpuLimitM) || p.apiCpuLimitM < 0) throw new Error(`--api-cpu-limit: ${cpuLimitM} is not a whole number of millicores`);
  for (const n of p.apiSizes)
    if (!Number.isInteger(n) || n < p.apiPublishedAgents + 1 || n > 5000) throw new Error(`--api-sizes: ${n} is not ${p.apiPublishedAgents + 1}..5000`);
  return p;
}

/** Addresses the section needs on the farm's loopback (one per node). */
export function apiAddresses(p: ApiParams): number {
  return Math.max(...p.apiSizes);
}

/** Cluster-wide bytes/s the API server sends to mentat in steady state, at 5000 nodes. */
export const API_BUDGET = { nodes: 5000, clusterBytesPerSecond: 10e6 };

const API_SERVER_PATH = fileURLToPath(new URL('./api-server.js', import.meta.url));
/** mentat's namespace in published mode, and its lease (src/kube/node-list.ts). */
const NAMESPACE = 'mentat';
const LEASE = 'mentat-node-list';
/** Shards of the published list (src/kube/node-list.ts SHARD_COUNT). */
const SHARDS = 16;

/** Requests and bytes the API server sent one agent, by resource. */
export interface Traffic {
  bytes: number;
  requests: number;
  byResource: Record<string, LoadCount>;
}

/** Traffic of one agent from its start until /readyz answered 200. */
export interface StartCost extends Traffic {
  ms: number;
}

export interface ApiRow {
  nodes: number;
  /** One Node as stored (a watch event is this and a small envelope), and the lease, bytes. */
  nodeBytes: number;
  leaseBytes: number;
  windowSeconds: number;
  /** Kubelet status updates per second during the window. */
  heartbeatsPerSecond: number;
  /** Per agent, over the steady-state window: bytes and requests per second. */
  direct: Traffic;
  /** What the agents that watched Nodes in the window received (one: the publisher, unless the lease moved). */
  publisher: Traffic;
  /** The agents that only followed in the window. */
  followers: Traffic[];
  /** CPU of each role over its window, cores (from /proc; the publisher's summed like its traffic). */
  cores: { direct: number; publisher: number; follower: number };
  /** Times the lease changed hands during the window, and in all (spec.leaseTransitions). */
  movedInWindow: number;
  /** Agents that watched Nodes during the window. */
  publishersInWindow: number;
  leaseTransitions: number;
  /** The agents' log lines about the lease, in order. */
  leaseLog: string[];
  /** Start until ready: the direct agent (started alone), a follower restarted, the old publisher back as a follower. */
  directStart: StartCost;
  followerStart: StartCost;
  oldPublisherStart: StartCost;
  /** The publisher restarted: SIGTERM to the new holder's lease, and the new publisher's traffic until it had published. */
  handover: StartCost & { takeoverMs: number };
  /** One node added: what each agent received until every agent knew it, beyond its steady traffic; ms until every agent knew it. */
  change: { ms: number; publisher: Traffic; followers: Traffic[] };
  notes: string[];
}

export interface ApiResult {
  rows: ApiRow[];
  /** A list page of 100 Nodes as the fake serves them, plain and gzipped, and gzipped with random digests and IDs. */
  compression: { plainBytes: number; gzipBytes: number; realisticGzipBytes: number };
  windowSeconds: number;
  heartbeatPeriodMs: number;
  /** The agents' CPU limit, millicores; 0: none. */
  cpuLimitM: number;
  notes: string[];
}

function trafficOf(s: LoadSnapshot, user: string): Traffic {
  const t: Traffic = { bytes: 0, requests: 0, byResource: {} };
  for (const r of s.rows) {
    if (r.user !== user) continue;
    t.bytes += r.bytes;
    t.requests += r.requests;
    const c = (t.byResource[r.resource] ??= { requests: 0, bytes: 0 });
    c.requests += r.requests;
    c.bytes += r.bytes;
  }
  return t;
}

/** `after` − `before`, optionally divided by `seconds` (a rate). */
function delta(before: Traffic, after: Traffic, seconds = 1): Traffic {
  const byResource: Record<string, LoadCount> = {};
  for (const [k, v] of Object.entries(after.byResource)) {
    const b = before.byResource[k] ?? { requests: 0, bytes: 0 };
    byResource[k] = { requests: (v.requests - b.requests) / seconds, bytes: (v.bytes - b.bytes) / seconds };
  }
  return { bytes: (after.bytes - before.bytes) / seconds, requests: (after.requests - before.requests) / seconds, byResource };
}

function sumTraffic(a: Traffic, b: Traffic): Traffic {
  const byResource: Record<string, LoadCount> = { ...a.byResource };
  for (const [k, v] of Object.entries(b.byResource))
    byResource[k] = { requests: (byResource[k]?.requests ?? 0) + v.requests, bytes: (byResource[k]?.bytes ?? 0) + v.bytes };
  return { bytes: a.bytes + b.bytes, requests: a.requests + b.requests, byResource };
}

/** `t` less what `rate` would have brought in `seconds` (never below zero). */
function beyond(t: Traffic, rate: Traffic, seconds: number): Traffic {
  const byResource: Record<string, LoadCount> = {};
  for (const [k, v] of Object.entries(t.byResource)) {
    const r = rate.byResource[k] ?? { requests: 0, bytes: 0 };
    byResource[k] = { requests: Math.max(0, v.requests - r.requests * seconds), bytes: Math.max(0, v.bytes - r.bytes * seconds) };
  }
  return { bytes: Math.max(0, t.bytes - rate.bytes * seconds), requests: Math.max(0, t.requests - rate.requests * seconds), byResource };
}

const meanTraffic = (list: readonly Traffic[]): Traffic => {
  const byResource: Record<string, LoadCount> = {};
  for (const t of list)
    for (const [k, v] of Object.entries(t.byResource)) {
      const c = (byResource[k] ??= { requests: 0, bytes: 0 });
      c.requests += v.requests / list.length;
      c.bytes += v.bytes / list.length;
    }
  return { bytes: list.reduce((a, t) => a + t.bytes, 0) / list.length, requests: list.reduce((a, t) => a + t.requests, 0) / list.length, byResource };
};

const nodesRequests = (t: Traffic): number => t.byResource['nodes']?.requests ?? 0;

/** The agents' turn to take a free lease comes from a hash of their node name (src/kube/node-source.ts turnDelayMs). */
const rank = (name: string): number => createHash('sha1').update(name).digest().readUInt32BE(0);

/** One size: the API server, the agents, every measurement; everything it started is stopped before it returns. */
async function measure(ctx: Ctx, params: ApiParams, n: number): Promise<ApiRow> {
  const { cluster, control, http, src } = ctx;
  const notes: string[] = [];
  const { rpc } = await IpcRpc.start<ApiServerRequest, { ready: true; url: string }>(cluster, src.ns, [API_SERVER_PATH, ctx.dir], 'api-server');
  const call = <T>(op: OpOf<ApiServerRequest>): Promise<T> => rpc.call<T>(op);
  const agents: Mentat[] = [];
  const limits = params.apiCpuLimitM > 0 ? new CpuLimits(params.apiCpuLimitM) : undefined;
  const t0 = Date.now();
  try {
    const names = Array.from({ length: n }, (_, i) => `node-${String(i).padStart(4, '0')}`);
    for (let i = 0; i < n; i += 500)
      await call({ op: 'nodes', nodes: names.slice(i, i + 500).map((name, k) => ({ name, address: ctx.farmAddresses[i + k]!, index: i + k })) });
    // In a real cluster the agents of the first-ranked nodes take a free lease within seconds; run those.
    const ranked = [...names].sort((a, b) => rank(a) - rank(b));
    const publishedNames = ranked.slice(0, params.apiPublishedAgents);
    const directName = ranked[params.apiPublishedAgents]!;
    await call({ op: 'heartbeats', periodMs: KUBELET_STATUS_PERIOD_MS });
    let port = 2340;
    const start = async (
      label: string,
      nodeName: string,
      user: string,
      published: boolean,
    ): Promise<{ m: Mentat; user: string; nodeName: string; t0: number }> => {
      const kubeconfig = await call<string>({ op: 'kubeconfig', user });
      const env = {
        ...daemonSetEnv({ NODE_NAME: nodeName, POD_NAME: `mentat-${nodeName}`, ...(published ? { POD_NAMESPACE: NAMESPACE } : {}) }),
        KUBECONFIG: kubeconfig,
        MENTAT_METRICS_PORT: String(port),
      };
      const t0 = Date.now();
      const m = startMentat(cluster, src.ns, control, http, label, port++, env);
      agents.push(m);
      limits?.limit(m.pid);
      return { m, user, nodeName, t0 };
    };
    const readyCost = async (a: { m: Mentat; user: string; t0: number }, timeoutMs = 180_000): Promise<StartCost> => {
      await a.m.ready(timeoutMs);
      const ms = Date.now() - a.t0;
      return { ...trafficOf(await call<LoadSnapshot>({ op: 'load' }), a.user), ms };
    };

    // Steady state: bytes and requests per second over the window, per user, after a few seconds to settle.
    // The agents' CPU over the window too: at 5000 nodes, whoever watches Nodes is busy (see the scale section).
    const window = async (ms: readonly Mentat[]): Promise<{ s0: LoadSnapshot; s1: LoadSnapshot; seconds: number; beats: number; cores: number[] }> => {
      await sleep(5000);
      const s0 = await call<LoadSnapshot>({ op: 'load' });
      const beats0 = await call<number>({ op: 'beats' });
      const cpu0 = ms.map((m) => readProc(m.pid)?.cpuSeconds ?? Number.NaN);
      const w0 = Date.now();
      await sleep(params.apiWindowSeconds * 1000);
      const s1 = await call<LoadSnapshot>({ op: 'load' });
      const seconds = (Date.now() - w0) / 1000;
      const cores = ms.map((m, i) => ((readProc(m.pid)?.cpuSeconds ?? Number.NaN) - cpu0[i]!) / seconds);
      return { s0, s1, seconds, beats: (await call<number>({ op: 'beats' })) - beats0, cores };
    };
    const rateIn = (w: { s0: LoadSnapshot; s1: LoadSnapshot; seconds: number }, user: string) => delta(trafficOf(w.s0, user), trafficOf(w.s1, user), w.seconds);

    // Direct mode first, alone: at 5000 nodes it takes a core of its own (see the scale section), which the published agents should not have to share.
    progress(`api: ${n} nodes: one agent in direct mode, start and ${params.apiWindowSeconds} s of steady state`);
    const direct = await start('api-direct', directName, 'direct', false);
    const directStart = await readyCost(direct);
    const directWindow = await window([direct.m]);
    await direct.m.stop();

    progress(`api: ${n} nodes: ${params.apiPublishedAgents} agents in published mode, start and ${params.apiWindowSeconds} s of steady state`);
    const published = await Promise.all(publishedNames.map((name, i) => start(`api-published-${i}`, name, `published-${i}`, true)));
    await Promise.all(published.map((a) => readyCost(a)));
    const holderOf = async (): Promise<LeaseView> => call<LeaseView>({ op: 'lease', namespace: NAMESPACE, name: LEASE });
    const first = await until('the lease names a publisher that announced the list', 60_000, async () => {
      const l = await holderOf();
      return l.holder && l.annotations['mentat.dev/node-list'] ? l : undefined;
    });
    const cold = await call<LoadSnapshot>({ op: 'load' });
    for (const a of published) {
      if (`mentat-${a.nodeName}` !== first.holder && nodesRequests(trafficOf(cold, a.user)) > 0)
        notes.push(
          `at the cold start, ${a.nodeName} (not the publisher) requested Nodes ${nodesRequests(trafficOf(cold, a.user))} times: a fallback before the list was published.`,
        );
    }
    const leaseBefore = await holderOf();
    const publishedWindow = await window(published.map((a) => a.m));
    const leaseAfter = await holderOf();
    const movedInWindow = leaseAfter.transitions - leaseBefore.transitions;
    // Who published during the window: whoever received Node traffic (one agent, unless the lease moved).
    const rates = published.map((a) => ({ a, t: rateIn(publishedWindow, a.user) }));
    const acting = rates.filter((x) => (x.t.byResource['nodes']?.bytes ?? 0) > 0);
    const pure = rates.filter((x) => !acting.includes(x));
    if (acting.length !== 1 || movedInWindow !== 0) {
      notes.push(
        `the lease changed hands ${movedInWindow} times during the steady-state window and ${acting.length} agents watched Nodes in it: "publisher" is the sum of what they received, "follower" the agents that only followed.`,
      );
    }
    const publisherRate = acting.map((x) => x.t).reduce((sum, t) => sumTraffic(sum, t), { bytes: 0, requests: 0, byResource: {} });
    const followerRates = (pure.length > 0 ? pure : rates).map((x) => x.t);
    if (pure.length === 0) notes.push("every agent watched Nodes at some point of the window: the follower figures are not a pure follower's.");
    // From here on the publisher is whoever holds the lease now.
    const publisher = published.find((a) => `mentat-${a.nodeName}` === leaseAfter.holder);
    if (!publisher) throw new Error(`api: the lease holder ${leaseAfter.holder} is none of the agents`);
    const lease = leaseAfter;
    const followers = published.filter((a) => a !== publisher);
    const [nodeBytes, leaseBytes] = await Promise.all([
      call<number>({ op: 'objectBytes', resource: 'nodes', name: names[0]! }),
      call<number>({ op: 'objectBytes', resource: 'leases', namespace: NAMESPACE, name: LEASE }),
    ]);

    // One node joins: the publisher republishes one shard, every follower fetches it.
    progress(`api: ${n} nodes: one node joining`);
    const c0 = await call<LoadSnapshot>({ op: 'load' });
    const cT = Date.now();
    // The farm's own address: reachable, and no agent's (an agent skips a node with its own address).
    await call({ op: 'nodes', nodes: [{ name: 'node-joined', address: ctx.farm.ipv4, index: n }] });
    let known: number[] = [];
    await until(
      'every agent knows the joined node',
      60_000,
      async () => {
        known = await Promise.all(published.map(async (a) => sumOf((await a.m.scrape(['mentat_targets'])).samples, 'mentat_targets', { state: 'known' })));
        return known.every((k) => k === n) ? true : undefined;
      },
      {
        everyMs: 250,
        context: () =>
          `nodes known by the published agents: ${known.join(', ')} (of ${n} besides their own); publisher's log: ${publisher.m.agent.log().slice(-1500)}`,
      },
    );
    const changeMs = Date.now() - cT;
    const c1 = await call<LoadSnapshot>({ op: 'load' });
    // What the join cost beyond the steady traffic of those seconds (the publisher's kubelet updates, the followers' lease renewals).
    const joined = (user: string, steady: Traffic) => beyond(delta(trafficOf(c0, user), trafficOf(c1, user)), steady, changeMs / 1000);
    const change = {
      ms: changeMs,
      publisher: joined(publisher.user, rateIn(publishedWindow, publisher.user)),
      followers: followers.map((f) => joined(f.user, rateIn(publishedWindow, f.user))),
    };

    // A follower restarted, as a rolling update restarts every agent.
    progress(`api: ${n} nodes: a follower restarted`);
    const f0 = followers[0]!;
    await f0.m.stop();
    const followerStart = await readyCost(await start('api-follower-restarted', f0.nodeName, `${f0.user}-restarted`, true));

    // The publisher restarted: it gives the lease up on SIGTERM, the first-ranked live agent takes it,
    // lists Nodes and writes every shard again (same content: followers fetch nothing).
    progress(`api: ${n} nodes: the publisher restarted (handover)`);
    const h0 = await call<LoadSnapshot>({ op: 'load' });
    const hT = Date.now();
    await publisher.m.stop();
    const taker = await until('another agent takes the lease', 120_000, async () => {
      const l = await holderOf();
      return l.holder && l.holder !== lease.holder ? l.holder : undefined;
    });
    const takeoverMs = Date.now() - hT;
    const newPublisher = published.find((a) => `mentat-${a.nodeName}` === taker);
    const takerUser = newPublisher === f0 ? `${f0.user}-restarted` : newPublisher?.user;
    if (!takerUser) throw new Error(`api: the new lease holder ${taker} is none of the agents`);
    // Published once it has written every shard (a GET and a replace each) after listing Nodes.
    const handoverLoad = await until('the new publisher has rewritten the list', 180_000, async () => {
      const snap = await call<LoadSnapshot>({ op: 'load' });
      const t = delta(trafficOf(h0, takerUser), trafficOf(snap, takerUser));
      return (t.byResource['configmaps']?.requests ?? 0) >= 2 * SHARDS ? t : undefined;
    });
    const handover = { ...handoverLoad, ms: Date.now() - hT, takeoverMs };
    const oldPublisherStart = await readyCost(await start('api-publisher-restarted', publisher.nodeName, `${publisher.user}-restarted`, true));
    const last = await holderOf();
    if (last.holder !== taker) notes.push(`the lease moved again after the handover (to ${last.holder}).`);
    const leaseLog = leaseLogOf(agents.filter((m) => m !== direct.m));

    return {
      nodes: n,
      nodeBytes,
      leaseBytes,
      windowSeconds: publishedWindow.seconds,
      heartbeatsPerSecond: (directWindow.beats + publishedWindow.beats) / (directWindow.seconds + publishedWindow.seconds),
      direct: rateIn(directWindow, direct.user),
      publisher: publisherRate,
      followers: followerRates,
      cores: {
        direct: directWindow.cores[0]!,
        publisher: acting.reduce((sum, x) => sum + publishedWindow.cores[published.indexOf(x.a)]!, 0),
        follower:
          (pure.length > 0 ? pure : rates).reduce((sum, x) => sum + publishedWindow.cores[published.indexOf(x.a)]!, 0) /
          (pure.length > 0 ? pure : rates).length,
      },
      movedInWindow,
      publishersInWindow: acting.length,
      leaseTransitions: last.transitions,
      leaseLog,
      directStart,
      followerStart,
      oldPublisherStart,
      handover,
      change,
      notes,
    };
  } catch (err) {
    const lease = leaseLogOf(agents.filter((m) => m.label !== 'api-direct'));
    throw new Error(
      `${(err as Error).message.split('\n')[0]!.slice(0, 300)} (after ${fmt((Date.now() - t0) / 1000)} s; the agents about the lease: ${lease.length > 0 ? lease.join('; ') : 'nothing'})`,
      { cause: err },
    );
  } finally {
    await Promise.all(agents.map((m) => m.stop()));
    rpc.close();
    const left = limits?.release() ?? [];
    if (left.length > 0) progress(`api: cgroups still in use, left for the next run to remove: ${left.join(', ')}`);
  }
}

/** What the agents said about the lease, in order: who took it, who gave it up and why (times from the first agent's start). */
function leaseLogOf(agents: readonly Mentat[]): string[] {
  const t0 = Math.min(...agents.map((m) => Number(m.agent.lines()[0]?.['time'] ?? Infinity)));
  return agents
    .flatMap((m) =>
      m.agent
        .lines()
        .filter((l) => /node-list lease|watching Nodes directly/.test(String(l['msg'])))
        .map((l) => ({ m, l })),
    )
    .sort((x, y) => Number(x.l['time']) - Number(y.l['time']))
    .map(
      ({ m, l }) =>
        `${m.label} ${String(l['msg']).split(':')[0]}${typeof l['why'] === 'string' ? ` (${l['why']})` : ''} at +${fmt((Number(l['time']) - t0) / 1000, 1)} s`,
    );
}

/** Runs the section, smallest size first; a size that fails is reported as such and the next one runs. */
export async function api(ctx: Ctx, params: ApiParams): Promise<ApiResult> {
  const rows: ApiRow[] = [];
  const notes: string[] = [];
  for (const n of [...params.apiSizes].sort((a, b) => a - b)) {
    try {
      rows.push(await measure(ctx, params, n));
    } catch (err) {
      progress(`api: ${n} nodes failed: ${(err as Error).message}`);
      notes.push(`${n} nodes: the measurement did not complete: ${(err as Error).message}`);
    }
  }
  return {
    rows,
    compression: listPageCompression(),
    windowSeconds: params.apiWindowSeconds,
    heartbeatPeriodMs: KUBELET_STATUS_PERIOD_MS,
    cpuLimitM: params.apiCpuLimitM,
    notes,
  };
}

/** How well a page of the fake's Nodes compresses, and how well it would with the random digests and IDs of real nodes. */
function listPageCompression(): ApiResult['compression'] {
  const page = (nodes: readonly unknown[]) =>
    JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '1000', continue: 'x' }, items: nodes });
  const nodes = Array.from({ length: 100 }, (_, i) => makeRealisticNode(`node-${String(i).padStart(4, '0')}`, `10.0.${i >> 8}.${i & 255}`, i));
  const hex = (chars: number) =>
    randomBytes(Math.ceil(chars / 2))
      .toString('hex')
      .slice(0, chars);
  // Every run of 17+ zero-padded hex digits (digests, instance, machine and boot IDs) made random.
  const random = nodes.map((n) => JSON.parse(JSON.stringify(n).replace(/[0-9a-f]{17,}/g, (m) => hex(m.length))) as unknown);
  const plain = page(nodes);
  return {
    plainBytes: Buffer.byteLength(plain),
    gzipBytes: gzipSync(plain, { level: 1 }).length,
    realisticGzipBytes: gzipSync(page(random), { level: 1 }).length,
  };
}

// ------------------------------------------------------------------ the cluster, from one agent's figures

/** Cluster-wide figures at `n` nodes from the per-agent ones: every agent direct, or one publisher and n − 1 followers. */
export interface ClusterFigures {
  nodes: number;
  steadyBytesDirect: number;
  steadyBytesPublished: number;
  steadyRequestsDirect: number;
  steadyRequestsPublished: number;
  /** A rolling restart of every agent: n starts direct; n − 1 follower starts, the publisher's own back as a follower, and one handover. */
  restartBytesDirect: number;
  restartBytesPublished: number;
  restartRequestsDirect: number;
  restartRequestsPublished: number;
  /** One node joining: direct, one ADDED event to each of n agents; published, the publisher's traffic and each follower's. */
  changeBytesDirect: number;
  changeBytesPublished: number;
}

export function clusterFigures(r: ApiRow): ClusterFigures {
  const n = r.nodes;
  const f = meanTraffic(r.followers);
  const changeFollower = meanTraffic(r.change.followers);
  // A watch event is the object and an envelope ({"type":"ADDED","object":...}\n and the chunk framing).
  const eventBytes = r.nodeBytes + 40;
  return {
    nodes: n,
    steadyBytesDirect: n * r.direct.bytes,
    steadyBytesPublished: r.publisher.bytes + (n - 1) * f.bytes,
    steadyRequestsDirect: n * r.direct.requests,
    steadyRequestsPublished: r.publisher.requests + (n - 1) * f.requests,
    restartBytesDirect: n * r.directStart.bytes,
    restartBytesPublished: (n - 1) * r.followerStart.bytes + r.oldPublisherStart.bytes + r.handover.bytes,
    restartRequestsDirect: n * r.directStart.requests,
    restartRequestsPublished: (n - 1) * r.followerStart.requests + r.oldPublisherStart.requests + r.handover.requests,
    changeBytesDirect: n * eventBytes,
    changeBytesPublished: r.change.publisher.bytes + (n - 1) * changeFollower.bytes,
  };
}

/** Least-squares line through (x, y). */
function line(points: ReadonlyArray<readonly [number, number]>): { a: number; b: number } {
  if (points.length === 1) return { a: 0, b: points[0]![1] / points[0]![0] };
  const k = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / k;
  const my = points.reduce((s, [, y]) => s + y, 0) / k;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  const b = den === 0 ? 0 : num / den;
  return { a: my - b * mx, b };
}

/**
 * Where the published list starts to cost less than every agent watching Nodes, from lines fitted
 * to the measured sizes (per agent: direct and publisher steady state grow with n, a follower's does
 * not; a start grows with n in both modes). undefined: no crossover in 2..100000.
 */
export function crossovers(
  rows: readonly ApiRow[],
): { steadyBytes: number | undefined; restartBytes: number | undefined; restartRequests: number | undefined; steadyRequests: number | undefined } | undefined {
  if (new Set(rows.map((r) => r.nodes)).size < 2) return undefined;
  const fit = (pick: (r: ApiRow) => number) => line(rows.map((r) => [r.nodes, pick(r)] as const));
  const at = (l: { a: number; b: number }, n: number) => l.a + l.b * n;
  const direct = fit((r) => r.direct.bytes);
  const pub = fit((r) => r.publisher.bytes);
  const fol = fit((r) => meanTraffic(r.followers).bytes);
  const directReq = fit((r) => r.direct.requests);
  const pubReq = fit((r) => r.publisher.requests);
  const folReq = fit((r) => meanTraffic(r.followers).requests);
  const dStart = fit((r) => r.directStart.bytes);
  const fStart = fit((r) => r.followerStart.bytes);
  const hStart = fit((r) => r.handover.bytes + r.oldPublisherStart.bytes);
  const dStartReq = fit((r) => r.directStart.requests);
  const fStartReq = fit((r) => r.followerStart.requests);
  const hStartReq = fit((r) => r.handover.requests + r.oldPublisherStart.requests);
  const first = (cheaper: (n: number) => boolean): number | undefined => {
    for (let n = 2; n <= 100_000; n++) if (cheaper(n)) return n;
    return undefined;
  };
  return {
    steadyBytes: first((n) => at(pub, n) + (n - 1) * at(fol, n) < n * at(direct, n)),
    steadyRequests: first((n) => at(pubReq, n) + (n - 1) * at(folReq, n) < n * at(directReq, n)),
    restartBytes: first((n) => (n - 1) * at(fStart, n) + at(hStart, n) < n * at(dStart, n)),
    restartRequests: first((n) => (n - 1) * at(fStartReq, n) + at(hStartReq, n) < n * at(dStartReq, n)),
  };
}

/** The budget's figure: measured at 5000 nodes, else extrapolated from the largest size measured. */
function atBudgetSize(rows: readonly ApiRow[]): { figures: ClusterFigures; measured: boolean } | undefined {
  const exact = rows.find((r) => r.nodes === API_BUDGET.nodes);
  if (exact) return { figures: clusterFigures(exact), measured: true };
  const largest = [...rows].sort((a, b) => b.nodes - a.nodes)[0];
  if (!largest) return undefined;
  // Per agent, the direct and publisher rates grow with the nodes (each node's kubelet updates), a follower's does not.
  const k = API_BUDGET.nodes / largest.nodes;
  const scaled: ApiRow = {
    ...largest,
    nodes: API_BUDGET.nodes,
    direct: { ...largest.direct, bytes: largest.direct.bytes * k },
    publisher: { ...largest.publisher, bytes: largest.publisher.bytes * k },
  };
  return { figures: clusterFigures(scaled), measured: false };
}

export function apiBudgets(r: ApiResult): BudgetRow[] {
  const at = atBudgetSize(r.rows);
  if (!at) return [];
  const f = at.figures;
  const how = at.measured ? 'measured' : `extrapolated from ${Math.max(...r.rows.map((x) => x.nodes))} nodes`;
  return [
    [
      `API server egress to mentat at ${API_BUDGET.nodes} nodes, steady state: ≤ ${bytes(API_BUDGET.clusterBytesPerSecond, 0)}/s cluster-wide`,
      `${bytes(f.steadyBytesPublished)}/s published (${how}; every agent watching Nodes: ${bytes(f.steadyBytesDirect)}/s)`,
      ok(f.steadyBytesPublished <= API_BUDGET.clusterBytesPerSecond),
    ],
  ];
}

const perS = (v: number, digits = 2): string => `${fmt(v, digits)}/s`;
const startText = (c: StartCost): string => `${bytes(c.bytes)} in ${c.requests} requests (${nodesRequests(c)} for Nodes), ${fmt(c.ms / 1000, 1)} s`;

export function apiReport(r: ApiResult): string {
  const out: string[] = ['## 5. API server load', ''];
  out.push(
    `Real agents (dist/src/main.js with the DaemonSet's environment) against the fake API server in their namespace, each with a token of its own; ` +
      `the server counts every request and every byte it writes back (status line, headers, body, chunk framing) per agent. ` +
      `Like kube-apiserver it gzips get and list responses over 128 KiB for clients that ask (the agents do), never watch streams. ` +
      `Each size has N Node objects the size kubelets report, and each kubelet rewrites its node's status once per ${r.heartbeatPeriodMs / 60_000} min ` +
      `(the default nodeStatusReportFrequency with node leases), spread evenly. ` +
      `First one agent in direct mode runs alone (no POD_NAMESPACE: it lists and watches Nodes itself, as every agent did before), then three in published mode ` +
      `(POD_NAMESPACE set: one holds the lease \`${LEASE}\`, watches Nodes and writes ${SHARDS} gzipped ConfigMaps; the others watch the lease and GET the shards that changed). ` +
      `They run on the first-ranked nodes by the hash that orders takeovers, as in a cluster where every node has an agent. ` +
      `Steady state: bytes and requests over a ${r.windowSeconds} s window once the agents were ready (one window per mode); the traffic is periodic (kubelet updates, lease renewals every 10 s, ` +
      `the publisher's check of its shards every 60 s), so a longer window gives the same rate and the totals scale linearly with it. ` +
      `Start: from the process start until /readyz answered 200 (a follower restarted; the old publisher back as a follower; the direct agent). ` +
      `Handover: the publisher restarted; from its SIGTERM until the agent that took the lease had listed Nodes and rewritten every shard. ` +
      `Only what the server sends is counted; request bodies (the publisher's shard writes, a few kB each when a shard changes) are not. ` +
      `"cores" is each agent's CPU over its window (from /proc): whichever agent watches Nodes (direct, or the publisher) re-plans its mesh on every kubelet update, which at 5000 nodes takes more than a core (see the scale section's agents as shipped). ` +
      (r.cpuLimitM > 0
        ? `Each agent ran in a cgroup with a CPU quota of ${r.cpuLimitM}m (--api-cpu-limit), as a pod with limits.cpu ${r.cpuLimitM}m.`
        : 'The agents ran without a CPU limit (the DaemonSet sets 200m: --api-cpu-limit 200 applies it).'),
    '',
  );
  out.push('### Per agent', '');
  const rows: string[][] = [];
  for (const x of r.rows) {
    const f = meanTraffic(x.followers);
    rows.push([String(x.nodes), 'direct (before)', bytes(x.direct.bytes), perS(x.direct.requests, 3), fmt(x.cores.direct, 3), startText(x.directStart)]);
    rows.push([
      String(x.nodes),
      x.publishersInWindow === 1
        ? 'published: publisher'
        : `published: the ${x.publishersInWindow} agents that watched Nodes (the lease moved ${x.movedInWindow}× in the window)`,
      bytes(x.publisher.bytes),
      perS(x.publisher.requests, 3),
      fmt(x.cores.publisher, 3),
      `handover to a new publisher: ${startText(x.handover)} (lease taken ${fmt(x.handover.takeoverMs)} ms after the SIGTERM)`,
    ]);
    rows.push([
      String(x.nodes),
      `published: follower (mean of ${x.followers.length})`,
      `${bytes(f.bytes)} (${x.followers.map((y) => bytes(y.bytes)).join(', ')})`,
      perS(f.requests, 3),
      fmt(x.cores.follower, 3),
      `${startText(x.followerStart)}; the old publisher back: ${startText(x.oldPublisherStart)}`,
    ]);
  }
  out.push(table(['nodes', 'agent', 'steady state, bytes/s', 'requests/s', 'cores', 'start until ready'], rows), '');
  out.push('### The cluster (every node has an agent)', '');
  out.push(
    `Direct: N × the direct agent. Published: the publisher + (N − 1) × a follower in steady state; a rolling restart is (N − 1) follower starts, ` +
      `the publisher's own start as a follower and one handover (each further handover in the same rollout, when the new publisher is restarted in turn, adds one more). ` +
      `A node joining: direct, one ADDED event of the whole Node to every agent; published, what the publisher and each follower received until every agent knew the node ` +
      `(the shard that changed, and the lease renewed with the new announcement).`,
    '',
  );
  const crow: string[][] = [];
  for (const x of r.rows) {
    const c = clusterFigures(x);
    crow.push([
      String(x.nodes),
      `${bytes(c.steadyBytesDirect)}/s → ${bytes(c.steadyBytesPublished)}/s`,
      `${perS(c.steadyRequestsDirect)} → ${perS(c.steadyRequestsPublished)}`,
      `${bytes(c.restartBytesDirect)} → ${bytes(c.restartBytesPublished)}`,
      `${fmt(c.restartRequestsDirect)} → ${fmt(c.restartRequestsPublished)}`,
      `${bytes(c.changeBytesDirect)} → ${bytes(c.changeBytesPublished)} (${fmt(x.change.ms / 1000, 1)} s to reach every agent)`,
    ]);
  }
  out.push(
    table(
      ['nodes', 'steady bytes/s, direct → published', 'steady requests/s', 'rolling restart, bytes', 'rolling restart, requests', 'one node joining, bytes'],
      crow,
    ),
    '',
  );
  const details: string[] = [];
  for (const x of r.rows) {
    const f = meanTraffic(x.change.followers);
    details.push(
      `${x.nodes} nodes: a Node is ${bytes(x.nodeBytes)} of JSON, the lease ${bytes(x.leaseBytes)}; ${fmt(x.heartbeatsPerSecond, 1)} kubelet updates/s in the window; ` +
        `a join cost each follower ${bytes(f.bytes)} in ${fmt(f.requests, 1)} requests (shard GETs ${fmt(f.byResource['configmaps']?.requests ?? 0, 1)}, ${bytes(f.byResource['configmaps']?.bytes ?? 0)}) ` +
        `and the publisher ${bytes(x.change.publisher.bytes)} in ${fmt(x.change.publisher.requests, 1)} requests (beyond their steady traffic over those ${fmt(x.change.ms / 1000, 1)} s). ` +
        `The lease changed hands ${x.leaseTransitions} times in all (${x.movedInWindow} in the steady-state window): ${x.leaseLog.join('; ')}.`,
    );
  }
  out.push(...details.map((d) => `- ${d}`), '');
  const cross = crossovers(r.rows);
  const smallest = Math.min(...r.rows.map((x) => x.nodes));
  const where = (v: number | undefined, what: string): string =>
    v === undefined
      ? `${what}: direct costs less up to 100 000 nodes`
      : `${what}: published costs less ${v <= 2 ? 'at every size' : `from ${v} nodes`}${v < smallest ? ` (below the smallest size measured, ${smallest}: the lines extrapolated)` : ''}`;
  out.push(
    cross
      ? `Crossover (lines fitted to the per-agent figures of the sizes measured): ${where(cross.steadyBytes, 'steady bytes')}; ${where(cross.steadyRequests, 'steady requests')}; ` +
          `${where(cross.restartBytes, 'rolling-restart bytes')}; ${where(cross.restartRequests, 'rolling-restart requests')}. ` +
          `Steady requests: the fake API server never ends a watch; kube-apiserver ends each after 30-60 min (--min-request-timeout), which costs every agent one request to resume it in either mode (about N / 2700 requests/s cluster-wide), not counted here.`
      : 'Crossover: needs two sizes or more.',
    '',
  );
  const c = r.compression;
  out.push(
    `Compression: a list page of 100 of these Nodes is ${bytes(c.plainBytes)} of JSON, ${bytes(c.gzipBytes)} gzipped (level 1, as kube-apiserver); their image digests and IDs are mostly zeros. ` +
      `With every digest and ID random (no image shared between nodes: the worst case) the same page is ${bytes(c.realisticGzipBytes)} gzipped, so lists in a real cluster cost ` +
      `between 1 and ${fmt(c.realisticGzipBytes / c.gzipBytes, 1)} × the list bytes above (the direct agent's start, the handover); watch events, shards and leases are unaffected (sent plain, or already compact).`,
    '',
  );
  for (const x of r.rows) for (const n of x.notes) out.push(`Note (${x.nodes} nodes): ${n}`, '');
  for (const n of r.notes) out.push(`Note: ${n}`, '');
  return out.join('\n');
}
