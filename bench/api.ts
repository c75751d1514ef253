/**
 * Section 5, API load: what mentat costs the Kubernetes API server, with real processes (the built
 * dist/src/main.js) against the fake API server (bench/api-server.ts, inside the agents' namespace),
 * each process with a token of its own so that every request and every byte sent back is counted
 * per process.
 *
 * At each size, N kubelet-sized Nodes whose kubelets post status every 5 minutes. Up to DIRECT_MAX
 * nodes, first one agent in direct mode (no POD_NAMESPACE: it lists and watches Nodes itself, as
 * every agent did before the controller), alone. Then the design as shipped: one controller
 * (MENTAT_ROLE=controller, deploy/base/controller.yaml's environment) that takes the election lease,
 * watches Nodes and writes the index and the shards; a second controller replica on standby; and
 * followers (the DaemonSet's environment) that watch the index and GET the shards that changed.
 * Measured: the steady state, one node joining, a minute of churn (one join or leave per second), a
 * follower restarted, and the controller leader restarted (the standby takes over).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { ELECTION_LEASE, INDEX_NAME, SHARD_COUNT, shardName } from '../src/kube/node-list.js';
import { refreshSecondsFor } from '../src/kube/list-writer.js';
import { KUBELET_STATUS_PERIOD_MS } from '../test/fake-apiserver/heartbeats.js';
import { makeRealisticNode, type LoadCount } from '../test/fake-apiserver/index.js';
import { until } from '../test/support/agent-process.js';
import { IpcRpc, type OpOf } from '../test/support/ipc-rpc.js';
import type { ApiServerRequest, LeaseView, LoadSnapshot, Reads } from './api-server.js';
import { defaultConfig } from './cluster.js';
import { progress, type Ctx } from './context.js';
import { CpuLimits } from './cpu-limit.js';
import { controllerEnv, daemonSetEnv } from './daemonset.js';
import { readProc } from './proc.js';
import { bytes, ok, type BudgetRow } from './report.js';
import { fmt, quantile, table } from './stats.js';
import { startMentat, sumOf, type Mentat } from './tools.js';

export interface ApiParams {
  apiSizes: number[];
  /** The steady-state window, s; the churn window is as long. */
  apiWindowSeconds: number;
  /** Followers measured at once (each with its own token). */
  apiFollowers: number;
  /** Each agent's CPU limit in millicores, as a pod's limits.cpu (the DaemonSet's is 200); 0: none. */
  apiCpuLimitM: number;
  /** V8 heaps (--max-old-space-size, MiB) of the followers and the controllers instead of the manifests'; undefined: as shipped. */
  apiHeapMiB?: { agent: number; controller: number } | undefined;
}

/** The largest size the section runs (the issue's goal), and the largest with a direct-mode agent (it watches every Node and re-plans on each update). */
export const API_MAX_NODES = 100_000;
const DIRECT_MAX = 5000;

export function apiParams(quick: boolean, sizes: readonly number[] | undefined, cpuLimitM = 0, heapMiB?: readonly number[]): ApiParams {
  const p: ApiParams = {
    apiSizes: sizes ? [...sizes] : quick ? [100, 1000] : [100, 1000, 5000],
    apiWindowSeconds: quick ? 30 : 60,
    apiFollowers: 3,
    apiCpuLimitM: cpuLimitM,
    apiHeapMiB: heapMiB ? { agent: heapMiB[0]!, controller: heapMiB[1]! } : undefined,
  };
  if (heapMiB && (heapMiB.length !== 2 || !heapMiB.every((h) => Number.isInteger(h) && h >= 16)))
    throw new Error(`--api-heap: ${heapMiB.join(',')} is not AGENT_MIB,CONTROLLER_MIB (whole MiB, at least 16 each)`);
  if (!Number.isInteger(p.apiCpuLimitM) || p.apiCpuLimitM < 0) throw new Error(`--api-cpu-limit: ${cpuLimitM} is not a whole number of millicores`);
  for (const n of p.apiSizes)
    if (!Number.isInteger(n) || n < p.apiFollowers + 1 || n > API_MAX_NODES)
      throw new Error(`--api-sizes: ${n} is not ${p.apiFollowers + 1}..${API_MAX_NODES}`);
  return p;
}

/** Addresses the section needs on the farm's loopback: one per node, up to what the farm can hold (the rest are routed, unanswered: see `addressOf`). */
export function apiAddresses(p: ApiParams): number {
  return Math.min(FARM_ADDRESSES_MAX, Math.max(...p.apiSizes));
}
const FARM_ADDRESSES_MAX = 5000;
/** Nodes past the farm's addresses get one in 100.64.0.0/10 (shared address space), routed from the agents' namespace to a blackhole in the farm's: probes to them time out. */
const SYNTHETIC_NET = '100.64.0.0/10';
function addressOf(ctx: Ctx, i: number): string {
  if (i < ctx.farmAddresses.length) return ctx.farmAddresses[i]!;
  const j = i - ctx.farmAddresses.length;
  return `100.${64 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`;
}

/** The issue's budgets at 100 000 nodes (issue 21). */
export const API_BUDGET = {
  nodes: 100_000,
  /** Cluster-wide egress to mentat, steady state with one join or leave per second. */
  clusterBytesPerSecond: 10e6,
  changeMs: 60_000,
  rollingRestartBytes: 5e9,
  controllerRssMiB: 256,
  controllerCores: 0.5,
  followerRssMiB: 128,
  followerCores: 0.05,
  metricsMs: 100,
};

const API_SERVER_PATH = fileURLToPath(new URL('./api-server.js', import.meta.url));
/** mentat's namespace, where the controller's lease, the index and the shards live. */
const NAMESPACE = 'mentat';
/** The fake API server holds 100 000 kubelet-sized Nodes in a few GiB: more than V8's default heap. */
const API_SERVER_HEAP_MIB = 16_384;
/** How long the new leader may take to publish after a handover before the row says it did not. */
const HANDOVER_PUBLISH_MS = 240_000;
/** Prometheus' scrape interval, as the followers are scraped in their window. */
const SCRAPE_EVERY_MS = 15_000;

/** Requests and bytes the API server sent one process, by resource. */
export interface Traffic {
  bytes: number;
  requests: number;
  byResource: Record<string, LoadCount>;
}

/** Traffic of one process from its start until it was ready (an agent: /readyz 200; the leader: it had published). */
export interface StartCost extends Traffic {
  ms: number;
}

/** One process over a window: what the API server sent it per second, its CPU and memory. */
export interface Figures extends Traffic {
  cores: number;
  rssMiB: number;
  hwmMiB: number;
}

export interface ApiRow {
  nodes: number;
  /** One Node as stored, the index ConfigMap, the mean shard ConfigMap, bytes of JSON. */
  nodeBytes: number;
  indexBytes: number;
  shardBytes: number;
  /** Seconds to create the Nodes in the fake, and its resident memory once they were there. */
  createSeconds: number;
  apiServerRssMiB: number;
  windowSeconds: number;
  /** Kubelet status updates per second during the windows. */
  heartbeatsPerSecond: number;
  /** The index refresh period at this size (src/kube/list-writer.ts), s. */
  refreshSeconds: number;
  /** One agent in direct mode, alone (only up to DIRECT_MAX nodes). */
  direct?: { steady: Figures; start: StartCost };
  /** Steady state, per second. */
  controller: Figures;
  standby: Figures;
  followers: Figures[];
  /** Every scrape of every follower in the steady-state window, ms. */
  metricsMs: number[];
  /** The first controller: from its start until it had published every node. */
  controllerStart: StartCost;
  /** A follower restarted, as a rolling update restarts every agent; its reads, and those asking for resourceVersion=0. */
  followerStart: StartCost & Reads;
  /** The old leader back as the standby. */
  standbyStart: StartCost;
  /** The leader restarted: SIGTERM until the standby held the lease (takeoverMs) and had published (ms); what it and each follower received meanwhile. */
  handover: (StartCost & { takeoverMs: number; followers: Traffic }) | undefined;
  /** One node added: what each received until every follower knew it, beyond its steady traffic; ms until every follower knew it. */
  change: { ms: number; controller: Traffic; followers: Traffic[] };
  /** One join or leave per second: rates over the churn window (steady traffic included), and the time until every follower had the final list. */
  churn: { seconds: number; events: number; controller: Figures; followers: Figures[]; settleMs: number };
  /** What the controllers said about the election, in order. */
  leaseLog: string[];
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
  heapMiB?: { agent: number; controller: number } | undefined;
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

/** `t` less what `rate` would have brought in `seconds` (never below zero). */
function beyond(t: Traffic, rate: Traffic, seconds: number): Traffic {
  const byResource: Record<string, LoadCount> = {};
  for (const [k, v] of Object.entries(t.byResource)) {
    const r = rate.byResource[k] ?? { requests: 0, bytes: 0 };
    byResource[k] = { requests: Math.max(0, v.requests - r.requests * seconds), bytes: Math.max(0, v.bytes - r.bytes * seconds) };
  }
  return { bytes: Math.max(0, t.bytes - rate.bytes * seconds), requests: Math.max(0, t.requests - rate.requests * seconds), byResource };
}

function mean<T extends Traffic>(list: readonly T[]): T {
  const byResource: Record<string, LoadCount> = {};
  for (const t of list)
    for (const [k, v] of Object.entries(t.byResource)) {
      const c = (byResource[k] ??= { requests: 0, bytes: 0 });
      c.requests += v.requests / list.length;
      c.bytes += v.bytes / list.length;
    }
  const out: Record<string, unknown> = { byResource };
  for (const key of Object.keys(list[0] ?? {}))
    if (key !== 'byResource') out[key] = list.reduce((a, t) => a + Number((t as unknown as Record<string, number>)[key]), 0) / list.length;
  return out as unknown as T;
}

const nodesRequests = (t: Traffic): number => t.byResource['nodes']?.requests ?? 0;

interface Proc {
  m: Mentat;
  user: string;
  t0: number;
}

/** One size: the API server, the processes, every measurement; everything it started is stopped before it returns. */
async function measure(ctx: Ctx, params: ApiParams, n: number): Promise<ApiRow> {
  const { cluster, control, http, src } = ctx;
  const notes: string[] = [];
  const { rpc } = await IpcRpc.start<ApiServerRequest, { ready: true; url: string }>(
    cluster,
    src.ns,
    [`--max-old-space-size=${API_SERVER_HEAP_MIB}`, API_SERVER_PATH, ctx.dir],
    'api-server',
  );
  const call = <T>(op: OpOf<ApiServerRequest>): Promise<T> => rpc.call<T>(op);
  const procs: Proc[] = [];
  const limits = params.apiCpuLimitM > 0 ? new CpuLimits(params.apiCpuLimitM) : undefined;
  const t0 = Date.now();
  try {
    // Routes inside the bench's own namespaces only: the agents' namespace sends the synthetic addresses to the farm, which drops them.
    execFileSync('ip', ['-n', src.ns, 'route', 'replace', SYNTHETIC_NET, 'via', ctx.farm.ipv4]);
    execFileSync('ip', ['-n', ctx.farm.ns, 'route', 'replace', 'blackhole', SYNTHETIC_NET]);
    if (n > ctx.farmAddresses.length)
      notes.push(
        `${n - ctx.farmAddresses.length} of the ${n} Nodes have an address in ${SYNTHETIC_NET} that nothing answers (the farm holds ${ctx.farmAddresses.length}): probes to them time out, which costs a follower no API traffic, but most of its peers and swept nodes time out, so it has more suspects and outliers (and their probes) than in a healthy cluster: its CPU here is an upper bound.`,
      );
    progress(`api: ${n} nodes: creating the Nodes`);
    const names = Array.from({ length: n }, (_, i) => `node-${String(i).padStart(6, '0')}`);
    for (let i = 0; i < n; i += 1000) {
      await call({ op: 'nodes', nodes: names.slice(i, i + 1000).map((name, k) => ({ name, address: addressOf(ctx, i + k), index: i + k })) });
      if (i > 0 && i % 20_000 === 0) progress(`api: ${n} nodes: ${i} created, the API server at ${fmt(await call<number>({ op: 'rss' }))} MiB`);
    }
    const createSeconds = (Date.now() - t0) / 1000;
    const apiServerRssMiB = await call<number>({ op: 'rss' });
    progress(`api: ${n} nodes created in ${fmt(createSeconds)} s; the API server holds ${fmt(apiServerRssMiB)} MiB`);
    await call({ op: 'heartbeats', periodMs: KUBELET_STATUS_PERIOD_MS });
    let port = 2340;
    const heap = (env: Record<string, string>, mib: number | undefined): Record<string, string> =>
      mib === undefined ? env : { ...env, NODE_OPTIONS: (env['NODE_OPTIONS'] ?? '').replace(/--max-old-space-size=\d+/, `--max-old-space-size=${mib}`) };
    const start = async (label: string, user: string, env: Record<string, string>): Promise<Proc> => {
      const kubeconfig = await call<string>({ op: 'kubeconfig', user });
      const t = Date.now();
      const m = startMentat(cluster, src.ns, control, http, label, port, { ...env, KUBECONFIG: kubeconfig, MENTAT_METRICS_PORT: String(port) });
      port++;
      const p = { m, user, t0: t };
      procs.push(p);
      return p;
    };
    const agent = async (label: string, user: string, nodeName: string, published: boolean): Promise<Proc> => {
      const p = await start(
        label,
        user,
        heap(
          daemonSetEnv({ NODE_NAME: nodeName, POD_NAME: `mentat-${nodeName}`, ...(published ? { POD_NAMESPACE: NAMESPACE } : {}) }),
          params.apiHeapMiB?.agent,
        ),
      );
      limits?.limit(p.m.pid);
      return p;
    };
    const controller = (label: string, user: string, pod: string): Promise<Proc> =>
      start(label, user, heap(controllerEnv({ POD_NAME: pod, POD_NAMESPACE: NAMESPACE, NODE_NAME: 'control-plane' }), params.apiHeapMiB?.controller));
    const load = (): Promise<LoadSnapshot> => call<LoadSnapshot>({ op: 'load' });
    const costSince = async (p: Proc): Promise<StartCost> => ({ ...trafficOf(await load(), p.user), ms: Date.now() - p.t0 });
    const readyCost = async (p: Proc, timeoutMs = 300_000): Promise<StartCost> => {
      await p.m.ready(timeoutMs);
      return costSince(p);
    };
    const gauge = async (p: Proc, name: string): Promise<number> => {
      const s = await p.m.scrape([name]).catch(() => undefined);
      return s ? sumOf(s.samples, name, {}) : Number.NaN;
    };
    /** Until `p` leads and has published `nodes` nodes. */
    const published = (p: Proc, nodes: number, timeoutMs: number): Promise<true> =>
      until(
        `${p.m.label} leads and has published ${nodes} nodes`,
        timeoutMs,
        async () => ((await gauge(p, 'mentat_controller_leader')) === 1 && (await gauge(p, 'mentat_node_list_nodes')) === nodes ? true : undefined),
        { everyMs: 500, context: () => p.m.agent.log().slice(-1500) },
      );
    /** Until every follower knows `nodes` others. */
    const knownBy = async (list: readonly Proc[], nodes: number, what: string, timeoutMs: number): Promise<void> => {
      let known: number[] = [];
      await until(
        what,
        timeoutMs,
        async () => {
          known = await Promise.all(list.map(async (a) => sumOf((await a.m.scrape(['mentat_targets'])).samples, 'mentat_targets', { state: 'known' })));
          return known.every((k) => k === nodes) ? true : undefined;
        },
        { everyMs: 250, context: () => `nodes known by the followers: ${known.join(', ')} (of ${nodes} besides their own)` },
      );
    };

    // A window: bytes and requests per second per process, its CPU, its memory at the end; `during` runs meanwhile (scrapes, churn).
    const window = async (
      list: readonly Proc[],
      during?: (endAt: number) => Promise<void>,
    ): Promise<{ figures: Figures[]; seconds: number; beats: number }> => {
      const s0 = await load();
      const beats0 = await call<number>({ op: 'beats' });
      const cpu0 = list.map((p) => readProc(p.m.pid)?.cpuSeconds ?? Number.NaN);
      const w0 = Date.now();
      const endAt = w0 + params.apiWindowSeconds * 1000;
      await Promise.all([sleep(params.apiWindowSeconds * 1000), during?.(endAt)]);
      const s1 = await load();
      const seconds = (Date.now() - w0) / 1000;
      const figures = list.map((p, i): Figures => {
        const proc = readProc(p.m.pid);
        return {
          ...delta(trafficOf(s0, p.user), trafficOf(s1, p.user), seconds),
          cores: ((proc?.cpuSeconds ?? Number.NaN) - cpu0[i]!) / seconds,
          rssMiB: (proc?.rssKiB ?? Number.NaN) / 1024,
          hwmMiB: (proc?.hwmKiB ?? Number.NaN) / 1024,
        };
      });
      return { figures, seconds, beats: (await call<number>({ op: 'beats' })) - beats0 };
    };

    let direct: ApiRow['direct'];
    let beats = 0;
    let beatSeconds = 0;
    if (n <= DIRECT_MAX) {
      // Direct mode first, alone: at 5000 nodes it takes a core of its own (see the scale section).
      progress(`api: ${n} nodes: one agent in direct mode, start and ${params.apiWindowSeconds} s of steady state`);
      const d = await agent('api-direct', 'direct', names[params.apiFollowers]!, false);
      const dStart = await readyCost(d);
      await sleep(5000);
      const w = await window([d]);
      beats += w.beats;
      beatSeconds += w.seconds;
      direct = { steady: w.figures[0]!, start: dStart };
      await d.m.stop();
    }

    progress(`api: ${n} nodes: the controller leader, a standby and ${params.apiFollowers} followers`);
    const leader = await controller('api-controller-0', 'controller-0', 'mentat-controller-0');
    await published(leader, n, 600_000);
    const controllerStart = await costSince(leader);
    const standby = await controller('api-controller-1', 'controller-1', 'mentat-controller-1');
    await standby.m.ready(60_000);
    const followers = await Promise.all(Array.from({ length: params.apiFollowers }, (_, i) => agent(`api-follower-${i}`, `agent-${i}`, names[i]!, true)));
    await Promise.all(followers.map((f) => readyCost(f)));
    await knownBy(followers, n - 1, 'every follower knows every other node', 300_000);
    for (const f of followers) {
      const asked = nodesRequests(trafficOf(await load(), f.user));
      if (asked > 0) notes.push(`${f.m.label} requested Nodes ${asked} times at its start: a fallback before it read the list.`);
    }
    const [nodeBytes, indexBytes, ...shardSizes] = await Promise.all([
      call<number>({ op: 'objectBytes', resource: 'nodes', name: names[0]! }),
      call<number>({ op: 'objectBytes', resource: 'configmaps', namespace: NAMESPACE, name: INDEX_NAME }),
      ...Array.from({ length: SHARD_COUNT }, (_, i) => call<number>({ op: 'objectBytes', resource: 'configmaps', namespace: NAMESPACE, name: shardName(i) })),
    ]);
    const shardBytes = shardSizes.reduce((a, b) => a + b, 0) / SHARD_COUNT;

    progress(`api: ${n} nodes: ${params.apiWindowSeconds} s of steady state, the followers scraped every ${SCRAPE_EVERY_MS / 1000} s`);
    await sleep(5000);
    const metricsMs: number[] = [];
    const scrapes = async (endAt: number): Promise<void> => {
      while (Date.now() + SCRAPE_EVERY_MS / 2 < endAt) {
        for (const f of followers) metricsMs.push((await f.m.scrape([])).ms);
        await sleep(Math.min(SCRAPE_EVERY_MS, Math.max(0, endAt - Date.now() - 1000)));
      }
    };
    const steady = await window([leader, standby, ...followers], scrapes);
    beats += steady.beats;
    beatSeconds += steady.seconds;
    const [leaderSteady, standbySteady, ...followerSteady] = steady.figures as [Figures, Figures, ...Figures[]];

    // One node joins: the farm's own address, reachable and no agent's.
    progress(`api: ${n} nodes: one node joining`);
    const c0 = await load();
    const cT = Date.now();
    await call({ op: 'nodes', nodes: [{ name: 'node-joined', address: ctx.farm.ipv4, index: n }] });
    await knownBy(followers, n, 'every follower knows the joined node', 300_000);
    const changeMs = Date.now() - cT;
    const c1 = await load();
    const joined = (p: Proc, steadyRate: Traffic) => beyond(delta(trafficOf(c0, p.user), trafficOf(c1, p.user)), steadyRate, changeMs / 1000);
    const change = { ms: changeMs, controller: joined(leader, leaderSteady), followers: followers.map((f, i) => joined(f, followerSteady[i]!)) };

    // Autoscaler churn: one join or leave per second, of different nodes (a new node joins, then one of the first ones leaves).
    progress(`api: ${n} nodes: ${params.apiWindowSeconds} s of churn, one join or leave per second`);
    let joins = 0;
    let leaves = 0;
    const churnDuring = async (endAt: number): Promise<void> => {
      for (let k = 0; Date.now() + 1000 <= endAt; k++) {
        if (k % 2 === 0) {
          await call({ op: 'nodes', nodes: [{ name: `node-churn-${joins}`, address: addressOf(ctx, n + 1 + joins), index: n + 1 + joins }] });
          joins++;
        } else {
          // From the end of the list: the followers run on the first nodes.
          await call({ op: 'deleteNode', name: names[n - 1 - leaves]! });
          leaves++;
        }
        await sleep(1000);
      }
    };
    const churnWindow = await window([leader, ...followers], churnDuring);
    const events = joins + leaves;
    const finalNodes = n + 1 + joins - leaves;
    const s0 = Date.now();
    await knownBy(followers, finalNodes - 1, 'every follower has the list after the churn', 300_000);
    const [leaderChurn, ...followerChurn] = churnWindow.figures as [Figures, ...Figures[]];
    const churn = { seconds: churnWindow.seconds, events, controller: leaderChurn, followers: followerChurn, settleMs: Date.now() - s0 };

    // A follower restarted, as a rolling update restarts every agent.
    progress(`api: ${n} nodes: a follower restarted`);
    await followers[0]!.m.stop();
    const restarted = await agent('api-follower-restarted', 'agent-0-restarted', names[0]!, true);
    const fStart = await readyCost(restarted);
    const followerStart = { ...fStart, ...(await call<Reads>({ op: 'reads', user: restarted.user })) };

    // The leader restarted: it gives the lease up on SIGTERM and the standby takes over, lists Nodes and rewrites what differs.
    progress(`api: ${n} nodes: the controller leader restarted (handover)`);
    const h0 = await load();
    const hT = Date.now();
    const holderOf = (): Promise<LeaseView> => call<LeaseView>({ op: 'lease', namespace: NAMESPACE, name: ELECTION_LEASE });
    const before = await holderOf();
    await leader.m.stop();
    await until('the standby takes the lease', 120_000, async () => {
      const l = await holderOf();
      return l.holder && l.holder !== before.holder ? true : undefined;
    });
    const takeoverMs = Date.now() - hT;
    let handover: ApiRow['handover'];
    try {
      await published(standby, finalNodes, HANDOVER_PUBLISH_MS);
      const h1 = await load();
      const liveFollowers = [restarted, ...followers.slice(1)];
      handover = {
        ...delta(trafficOf(h0, standby.user), trafficOf(h1, standby.user)),
        ms: Date.now() - hT,
        takeoverMs,
        followers: mean(liveFollowers.map((f) => delta(trafficOf(h0, f.user), trafficOf(h1, f.user)))),
      };
    } catch {
      const h1 = await load();
      const t = delta(trafficOf(h0, standby.user), trafficOf(h1, standby.user));
      notes.push(
        `handover: the standby took the lease ${fmt(takeoverMs / 1000, 1)} s after the leader's SIGTERM but had not published ${finalNodes} nodes ${HANDOVER_PUBLISH_MS / 1000} s later ` +
          `(it had received ${bytes(t.bytes)} in ${t.requests} requests: ${Object.entries(t.byResource)
            .map(([k, v]) => `${k} ${v.requests}`)
            .join(
              ', ',
            )}; mentat_node_list_nodes ${await gauge(standby, 'mentat_node_list_nodes')}); its log ends: ${standby.m.agent.log().slice(-700).replace(/\s+/g, ' ')}`,
      );
    }
    const back = await controller('api-controller-0-restarted', 'controller-0-restarted', 'mentat-controller-0');
    const standbyStart = await readyCost(back, 60_000);
    await sleep(5000);
    const last = await holderOf();
    if (last.holder !== 'mentat-controller-1') notes.push(`the lease moved again after the handover (to ${last.holder}).`);

    return {
      nodes: n,
      nodeBytes,
      indexBytes,
      shardBytes,
      createSeconds,
      apiServerRssMiB,
      windowSeconds: steady.seconds,
      heartbeatsPerSecond: beats / beatSeconds,
      refreshSeconds: refreshSecondsFor(n, defaultConfig().nodeList.leaseDurationMs),
      ...(direct ? { direct } : {}),
      controller: leaderSteady,
      standby: standbySteady,
      followers: followerSteady,
      metricsMs,
      controllerStart,
      followerStart,
      standbyStart,
      handover,
      change,
      churn,
      leaseLog: leaseLogOf(procs.filter((p) => p.m.label.startsWith('api-controller')).map((p) => p.m)),
      notes,
    };
  } catch (err) {
    const message = (err as Error).message;
    // The first line, and a fatal V8 error from the log if there is one (a heap limit reached).
    const fatal = /FATAL ERROR[^\n]*/.exec(message)?.[0];
    throw new Error(`${message.split('\n')[0]!.slice(0, 300)}${fatal ? ` (${fatal})` : ''} (after ${fmt((Date.now() - t0) / 1000)} s)`, { cause: err });
  } finally {
    await Promise.all(procs.map((p) => p.m.stop()));
    rpc.close();
    const left = limits?.release() ?? [];
    if (left.length > 0) progress(`api: cgroups still in use, left for the next run to remove: ${left.join(', ')}`);
  }
}

/** What the controllers said about the election, in order (times from the first one's start). */
function leaseLogOf(list: readonly Mentat[]): string[] {
  const t0 = Math.min(...list.map((m) => Number(m.agent.lines()[0]?.['time'] ?? Infinity)));
  return list
    .flatMap((m) =>
      m.agent
        .lines()
        .filter((l) => /^leader election/.test(String(l['msg'])))
        .map((l) => ({ m, l })),
    )
    .sort((x, y) => Number(x.l['time']) - Number(y.l['time']))
    .map(({ m, l }) => `${m.label} ${String(l['msg']).split(';')[0]} at +${fmt((Number(l['time']) - t0) / 1000, 1)} s`);
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
    heapMiB: params.apiHeapMiB,
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

// ------------------------------------------------------------------ the cluster, from each process's figures

/** Cluster-wide figures at `n` nodes: an agent on every node (n followers) and the two controller replicas. */
export interface ClusterFigures {
  nodes: number;
  /** Steady state: the leader + the standby + n followers, bytes and requests/s. */
  steadyBytes: number;
  steadyRequests: number;
  /** One join or leave per second: the leader and n followers over the churn window (their steady traffic included) + the standby. */
  churnBytes: number;
  /** A rolling restart of every agent: n follower starts, bytes and requests; the share of reads served from the watch cache. */
  restartBytes: number;
  restartRequests: number;
  restartCachedShare: number;
  /** One node joining: the leader's and every follower's traffic beyond steady. */
  changeBytes: number;
  /** Every agent in direct mode (the design before the controller), where measured. */
  steadyBytesDirect?: number;
  restartBytesDirect?: number;
}

export function clusterFigures(r: ApiRow): ClusterFigures {
  const n = r.nodes;
  const f = mean(r.followers);
  const fc = mean(r.churn.followers);
  const change = mean(r.change.followers);
  return {
    nodes: n,
    steadyBytes: r.controller.bytes + r.standby.bytes + n * f.bytes,
    steadyRequests: r.controller.requests + r.standby.requests + n * f.requests,
    churnBytes: r.churn.controller.bytes + r.standby.bytes + n * fc.bytes,
    restartBytes: n * r.followerStart.bytes,
    restartRequests: n * r.followerStart.requests,
    restartCachedShare: r.followerStart.reads > 0 ? r.followerStart.cached / r.followerStart.reads : 1,
    changeBytes: r.change.controller.bytes + n * change.bytes,
    ...(r.direct ? { steadyBytesDirect: n * r.direct.steady.bytes, restartBytesDirect: n * r.direct.start.bytes } : {}),
  };
}

/** The row the budgets are judged on: 100 000 nodes if measured, else the largest size (said so). */
function budgetRow(rows: readonly ApiRow[]): ApiRow | undefined {
  return rows.find((r) => r.nodes === API_BUDGET.nodes) ?? [...rows].sort((a, b) => b.nodes - a.nodes)[0];
}

export function apiBudgets(r: ApiResult): BudgetRow[] {
  const row = budgetRow(r.rows);
  if (!row) return [];
  const at = row.nodes === API_BUDGET.nodes ? `${fmt(row.nodes)} nodes` : `${fmt(row.nodes)} nodes (not ${fmt(API_BUDGET.nodes)}: the largest measured)`;
  const c = clusterFigures(row);
  const f = mean(row.followers);
  const worstFollowerRss = Math.max(...row.followers.map((x) => x.hwmMiB), ...row.churn.followers.map((x) => x.hwmMiB));
  const worstFollowerCores = Math.max(...row.followers.map((x) => x.cores));
  const metricsMax = Math.max(...row.metricsMs);
  const controllerRss = Math.max(row.controller.hwmMiB, row.churn.controller.hwmMiB);
  const controllerCores = Math.max(row.controller.cores, row.churn.controller.cores);
  return [
    [
      `API server egress to mentat at ${at}, steady state with one join or leave per second: ≤ ${bytes(API_BUDGET.clusterBytesPerSecond, 0)}/s cluster-wide`,
      `${bytes(c.churnBytes)}/s (steady alone ${bytes(c.steadyBytes)}/s; a follower ${bytes(f.bytes)}/s steady, ${bytes(mean(row.churn.followers).bytes)}/s in churn)`,
      ok(c.churnBytes <= API_BUDGET.clusterBytesPerSecond),
    ],
    [
      `a change reaches every agent at ${at}: ≤ ${API_BUDGET.changeMs / 1000} s`,
      `${fmt(row.change.ms / 1000, 1)} s for one join (${row.followers.length} followers); the last change of a minute of churn ${fmt(row.churn.settleMs / 1000, 1)} s after the churn ended`,
      // Under churn the last change counts too: it reached every follower settleMs after the churn window (and ~1 s after the change).
      ok(row.change.ms <= API_BUDGET.changeMs && row.churn.settleMs <= API_BUDGET.changeMs),
    ],
    [
      `a rolling restart of every agent at ${at}: ≤ ${bytes(API_BUDGET.rollingRestartBytes, 0)}, served from the watch cache`,
      `${bytes(c.restartBytes)}; ${row.followerStart.cached} of ${row.followerStart.reads} reads of a follower's start with resourceVersion=0${row.followerStart.uncached.length > 0 ? ` (not: ${row.followerStart.uncached.join(', ')})` : ''}`,
      ok(c.restartBytes <= API_BUDGET.rollingRestartBytes && c.restartCachedShare === 1),
    ],
    [
      `the controller (leader) at ${at}: ≤ ${API_BUDGET.controllerRssMiB} MiB, ≤ ${API_BUDGET.controllerCores} core`,
      `peak RSS ${fmt(controllerRss)} MiB, ${fmt(controllerCores, 3)} cores (steady ${fmt(row.controller.cores, 3)}, churn ${fmt(row.churn.controller.cores, 3)})`,
      ok(controllerRss <= API_BUDGET.controllerRssMiB && controllerCores <= API_BUDGET.controllerCores),
    ],
    [
      `every follower at ${at}: ≤ ${API_BUDGET.followerRssMiB} MiB, ≤ ${API_BUDGET.followerCores} core, /metrics ≤ ${API_BUDGET.metricsMs} ms`,
      `peak RSS ${fmt(worstFollowerRss)} MiB, ${fmt(worstFollowerCores, 3)} cores, /metrics max ${fmt(metricsMax)} ms (p50 ${fmt(quantile(row.metricsMs, 0.5))} ms)`,
      ok(worstFollowerRss <= API_BUDGET.followerRssMiB && worstFollowerCores <= API_BUDGET.followerCores && metricsMax <= API_BUDGET.metricsMs),
    ],
  ];
}

const perS = (v: number, digits = 2): string => `${fmt(v, digits)}/s`;
const startText = (c: StartCost): string => `${bytes(c.bytes)} in ${c.requests} requests (${nodesRequests(c)} for Nodes), ${fmt(c.ms / 1000, 1)} s`;
const mem = (f: Figures): string => `${fmt(f.rssMiB)} (peak ${fmt(f.hwmMiB)})`;

export function apiReport(r: ApiResult): string {
  const out: string[] = ['## 5. API server load', ''];
  out.push(
    `Real processes (dist/src/main.js) against the fake API server in their namespace, each with a token of its own; ` +
      `the server counts every request and every byte it writes back (status line, headers, body, chunk framing) per process. ` +
      `Like kube-apiserver it gzips get and list responses over 128 KiB for clients that ask, never watch streams. ` +
      `Each size has N Node objects the size kubelets report, and each kubelet rewrites its node's status once per ${r.heartbeatPeriodMs / 60_000} min, spread evenly. ` +
      `Up to ${fmt(DIRECT_MAX)} nodes, first one agent in direct mode runs alone (every agent watching Nodes: the design before the controller). ` +
      `Then the design as shipped: the controller leader (MENTAT_ROLE=controller with deploy/base/controller.yaml's environment: it holds the lease \`${ELECTION_LEASE}\`, ` +
      `watches Nodes and writes ${SHARD_COUNT} gzipped shard ConfigMaps and the index \`${INDEX_NAME}\`, rewritten every refresh period), a second replica on standby, ` +
      `and ${r.rows[0]?.followers.length ?? 3} followers with the DaemonSet's environment (they watch the index and GET the shards that changed). ` +
      `Steady state: a ${r.windowSeconds} s window once everything was ready, the followers scraped every ${SCRAPE_EVERY_MS / 1000} s. ` +
      `Churn: a window as long with one join or leave per second (a new node joins, the next second one of the first nodes leaves). ` +
      `Start: from the process start until /readyz answered 200 (the leader: until it had published every node). ` +
      `Handover: the leader restarted; from its SIGTERM until the standby held the lease and had published. ` +
      `Only what the server sends is counted; request bodies (the controller's writes) are not. ` +
      (r.cpuLimitM > 0
        ? `Each agent ran in a cgroup with a CPU quota of ${r.cpuLimitM}m (--api-cpu-limit).`
        : 'No CPU limit (the DaemonSet sets 200m: --api-cpu-limit 200 applies it to the agents). The machine is shared (2 cores): CPU and time figures are noisy. ') +
      (r.heapMiB
        ? `V8 heaps NOT as shipped (--api-heap): --max-old-space-size=${r.heapMiB.agent} for the followers, ${r.heapMiB.controller} for the controllers.`
        : 'V8 heaps as shipped (the DaemonSet: --max-old-space-size=64; the controller: 160).'),
    '',
  );
  out.push('### Per process', '');
  const rows: string[][] = [];
  for (const x of r.rows) {
    if (x.direct)
      rows.push([
        fmt(x.nodes),
        'direct agent (before)',
        bytes(x.direct.steady.bytes),
        perS(x.direct.steady.requests, 3),
        fmt(x.direct.steady.cores, 3),
        mem(x.direct.steady),
        startText(x.direct.start),
      ]);
    rows.push([
      fmt(x.nodes),
      'the controller (leader)',
      bytes(x.controller.bytes),
      perS(x.controller.requests, 3),
      fmt(x.controller.cores, 3),
      mem(x.controller),
      `until published: ${startText(x.controllerStart)}`,
    ]);
    rows.push([
      fmt(x.nodes),
      'the controller (leader), churn 1/s',
      bytes(x.churn.controller.bytes),
      perS(x.churn.controller.requests, 3),
      fmt(x.churn.controller.cores, 3),
      mem(x.churn.controller),
      x.handover
        ? `handover: ${startText(x.handover)} (lease taken ${fmt(x.handover.takeoverMs / 1000, 1)} s after the SIGTERM)`
        : 'handover: did not complete (see the notes)',
    ]);
    rows.push([
      fmt(x.nodes),
      'the controller (standby)',
      bytes(x.standby.bytes),
      perS(x.standby.requests, 3),
      fmt(x.standby.cores, 3),
      mem(x.standby),
      startText(x.standbyStart),
    ]);
    const f = mean(x.followers);
    rows.push([
      fmt(x.nodes),
      `follower (mean of ${x.followers.length})`,
      `${bytes(f.bytes)} (${x.followers.map((y) => bytes(y.bytes)).join(', ')})`,
      perS(f.requests, 3),
      `${fmt(f.cores, 3)} (max ${fmt(Math.max(...x.followers.map((y) => y.cores)), 3)})`,
      `${fmt(f.rssMiB)} (peak ${fmt(Math.max(...x.followers.map((y) => y.hwmMiB)))})`,
      `${startText(x.followerStart)}; ${x.followerStart.cached} of ${x.followerStart.reads} reads from the watch cache`,
    ]);
    const fc = mean(x.churn.followers);
    rows.push([
      fmt(x.nodes),
      'follower, churn 1/s',
      bytes(fc.bytes),
      perS(fc.requests, 3),
      fmt(fc.cores, 3),
      `${fmt(fc.rssMiB)} (peak ${fmt(Math.max(...x.churn.followers.map((y) => y.hwmMiB)))})`,
      `/metrics: p50 ${fmt(quantile(x.metricsMs, 0.5))} ms, max ${fmt(Math.max(...x.metricsMs))} ms (${x.metricsMs.length} scrapes)`,
    ]);
  }
  out.push(table(['nodes', 'process', 'bytes/s received', 'requests/s', 'cores', 'RSS MiB', 'start until ready; other'], rows), '');
  out.push('### The cluster (an agent on every node, and the two controller replicas)', '');
  out.push(
    `Steady: the leader + the standby + N × a follower. Churn: the same over the churn window (one join or leave per second, steady traffic included). ` +
      `Rolling restart: N × a follower's start (each read with resourceVersion=0 is served from kube-apiserver's watch cache). ` +
      `One node joining: what the leader and N followers received beyond their steady traffic until every follower knew the node, and how long that took. ` +
      `Direct (up to ${fmt(DIRECT_MAX)} nodes): N × the direct agent, for comparison.`,
    '',
  );
  const crow: string[][] = [];
  for (const x of r.rows) {
    const c = clusterFigures(x);
    crow.push([
      fmt(x.nodes),
      `${bytes(c.steadyBytes)}/s${c.steadyBytesDirect !== undefined ? ` (direct ${bytes(c.steadyBytesDirect)}/s)` : ''}`,
      perS(c.steadyRequests),
      `${bytes(c.churnBytes)}/s`,
      `${bytes(c.restartBytes)} in ${fmt(c.restartRequests)} requests${c.restartBytesDirect !== undefined ? ` (direct ${bytes(c.restartBytesDirect)})` : ''}`,
      `${bytes(c.changeBytes)}, ${fmt(x.change.ms / 1000, 1)} s`,
      x.handover
        ? `${fmt(x.handover.takeoverMs / 1000, 1)} s to take the lease, ${fmt(x.handover.ms / 1000, 1)} s to publish; ${bytes(x.handover.bytes)} to the new leader, ${bytes(x.handover.followers.bytes)} to each follower`
        : 'did not complete (see the notes)',
    ]);
  }
  out.push(
    table(
      [
        'nodes',
        'steady bytes/s',
        'steady requests/s',
        'with 1 join/leave per s',
        'rolling restart of every agent',
        'one node joining: bytes, time to every follower',
        'controller handover',
      ],
      crow,
    ),
    '',
  );
  for (const x of r.rows) {
    const f = mean(x.change.followers);
    out.push(
      `- ${fmt(x.nodes)} nodes: created in ${fmt(x.createSeconds)} s, the fake API server then at ${fmt(x.apiServerRssMiB)} MiB; a Node is ${bytes(x.nodeBytes)} of JSON, ` +
        `the index ConfigMap ${bytes(x.indexBytes)}, a shard ConfigMap ${bytes(x.shardBytes)} (mean); index refresh period ${x.refreshSeconds} s; ` +
        `${fmt(x.heartbeatsPerSecond, 1)} kubelet updates/s; a join cost each follower ${bytes(f.bytes)} in ${fmt(f.requests, 1)} requests ` +
        `(ConfigMaps ${bytes(f.byResource['configmaps']?.bytes ?? 0)}) and the leader ${bytes(x.change.controller.bytes)}; ` +
        `churn: ${x.churn.events} joins and leaves in ${fmt(x.churn.seconds)} s, every follower had the final list ${fmt(x.churn.settleMs / 1000, 1)} s after it. ` +
        `Election: ${x.leaseLog.join('; ') || 'nothing logged'}.`,
    );
  }
  out.push('');
  const c = r.compression;
  out.push(
    `Compression: a list page of 100 of these Nodes is ${bytes(c.plainBytes)} of JSON, ${bytes(c.gzipBytes)} gzipped (level 1, as kube-apiserver); their image digests and IDs are mostly zeros. ` +
      `With every digest and ID random the same page is ${bytes(c.realisticGzipBytes)} gzipped, so the controller's lists in a real cluster cost ` +
      `between 1 and ${fmt(c.realisticGzipBytes / c.gzipBytes, 1)} × the list bytes above; watch events, shards and the index are unaffected.`,
    '',
  );
  for (const x of r.rows) for (const n of x.notes) out.push(`Note (${fmt(x.nodes)} nodes): ${n}`, '');
  for (const n of r.notes) out.push(`Note: ${n}`, '');
  return out.join('\n');
}
