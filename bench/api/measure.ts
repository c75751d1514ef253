/**
 * Section 5, API load: one size, phase by phase. The Nodes; up to DIRECT_MAX nodes one agent in
 * direct mode alone; then the design as shipped (the controller leader, a standby, followers):
 * steady state, one node joining, a minute of churn, a follower restarted, the leader restarted.
 */
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { ELECTION_LEASE, INDEX_NAME, SHARD_COUNT, shardName } from '../../src/kube/node-list.js';
import { refreshSecondsFor } from '../../src/kube/list-writer.js';
import { KUBELET_STATUS_PERIOD_MS } from '../../test/fake-apiserver/heartbeats.js';
import { until } from '../../test/support/agent-process.js';
import { defaultConfig } from '../cluster.js';
import { progress, type Ctx } from '../context.js';
import { bytes } from '../report.js';
import { fmt } from '../stats.js';
import type { Mentat } from '../tools.js';
import { ApiHarness, type Proc } from './harness.js';
import { DIRECT_MAX, NAMESPACE, SCRAPE_EVERY_MS, type ApiParams, type ApiRow, type Figures, type Traffic } from './params.js';
import type { LeaseView, Reads } from './server.js';
import { beyond, delta, mean, nodesRequests, trafficOf } from './traffic.js';

/** Nodes past the farm's addresses get one in 100.64.0.0/10 (shared address space), routed from the agents' namespace to a blackhole in the farm's: probes to them time out. */
const SYNTHETIC_NET = '100.64.0.0/10';
/** How long the new leader may take to publish after a handover before the row says it did not. */
const HANDOVER_PUBLISH_MS = 240_000;

function addressOf(ctx: Ctx, i: number): string {
  if (i < ctx.farmAddresses.length) return ctx.farmAddresses[i]!;
  const j = i - ctx.farmAddresses.length;
  return `100.${64 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`;
}

/** One size under way: what every phase is handed. */
interface Size {
  ctx: Ctx;
  params: ApiParams;
  h: ApiHarness;
  n: number;
  /** The Nodes' names, node-000000 on. */
  names: string[];
  notes: string[];
}

/** The design as shipped, running. */
interface Design {
  leader: Proc;
  standby: Proc;
  followers: Proc[];
}

/** Creates the Nodes (in thousands) and starts their kubelets' status updates; `t0` is when the size started. */
async function createNodes(s: Size, t0: number): Promise<{ createSeconds: number; apiServerRssMiB: number }> {
  const { ctx, h, n, names, notes } = s;
  // Routes inside the bench's own namespaces only: the agents' namespace sends the synthetic addresses to the farm, which drops them.
  execFileSync('ip', ['-n', ctx.src.ns, 'route', 'replace', SYNTHETIC_NET, 'via', ctx.farm.ipv4]);
  execFileSync('ip', ['-n', ctx.farm.ns, 'route', 'replace', 'blackhole', SYNTHETIC_NET]);
  if (n > ctx.farmAddresses.length)
    notes.push(
      `${n - ctx.farmAddresses.length} of the ${n} Nodes have an address in ${SYNTHETIC_NET} that nothing answers (the farm holds ${ctx.farmAddresses.length}): probes to them time out, which costs a follower no API traffic, but most of its peers and swept nodes time out, so it has more suspects and outliers (and their probes) than in a healthy cluster: its CPU here is an upper bound.`,
    );
  progress(`api: ${n} nodes: creating the Nodes`);
  for (let i = 0; i < n; i += 1000) {
    await h.call({ op: 'nodes', nodes: names.slice(i, i + 1000).map((name, k) => ({ name, address: addressOf(ctx, i + k), index: i + k })) });
    if (i > 0 && i % 20_000 === 0) progress(`api: ${n} nodes: ${i} created, the API server at ${fmt(await h.call<number>({ op: 'rss' }))} MiB`);
  }
  const createSeconds = (Date.now() - t0) / 1000;
  const apiServerRssMiB = await h.call<number>({ op: 'rss' });
  progress(`api: ${n} nodes created in ${fmt(createSeconds)} s; the API server holds ${fmt(apiServerRssMiB)} MiB`);
  await h.call({ op: 'heartbeats', periodMs: KUBELET_STATUS_PERIOD_MS });
  return { createSeconds, apiServerRssMiB };
}

/** Direct mode first, alone: at 5000 nodes it takes a core of its own (see the scale section). */
async function directAgent({ h, n, names, params }: Size): Promise<{ direct: NonNullable<ApiRow['direct']>; beats: number; seconds: number }> {
  progress(`api: ${n} nodes: one agent in direct mode, start and ${params.apiWindowSeconds} s of steady state`);
  const d = await h.agent('api-direct', 'direct', names[params.apiFollowers]!, false);
  const start = await h.readyCost(d);
  await sleep(5000);
  const w = await h.window([d]);
  await d.m.stop();
  return { direct: { steady: w.figures[0]!, start }, beats: w.beats, seconds: w.seconds };
}

/** The controller leader (until it has published), a standby, and the followers (until each knows every node). */
async function startDesign({ h, n, names, notes, params }: Size): Promise<Design & { controllerStart: ApiRow['controllerStart'] }> {
  progress(`api: ${n} nodes: the controller leader, a standby and ${params.apiFollowers} followers`);
  const leader = await h.controller('api-controller-0', 'controller-0', 'mentat-controller-0');
  await h.published(leader, n, 600_000);
  const controllerStart = await h.costSince(leader);
  const standby = await h.controller('api-controller-1', 'controller-1', 'mentat-controller-1');
  await standby.m.ready(60_000);
  const followers = await Promise.all(Array.from({ length: params.apiFollowers }, (_, i) => h.agent(`api-follower-${i}`, `agent-${i}`, names[i]!, true)));
  await Promise.all(followers.map((f) => h.readyCost(f)));
  await h.knownBy(followers, n - 1, 'every follower knows every other node', 300_000);
  for (const f of followers) {
    const asked = nodesRequests(trafficOf(await h.load(), f.user));
    if (asked > 0) notes.push(`${f.m.label} requested Nodes ${asked} times at its start: a fallback before it read the list.`);
  }
  return { leader, standby, followers, controllerStart };
}

/** Bytes of one Node, the index and the mean shard as stored. */
async function objectSizes({ h, names }: Size): Promise<{ nodeBytes: number; indexBytes: number; shardBytes: number }> {
  const [nodeBytes, indexBytes, ...shardSizes] = await Promise.all([
    h.call<number>({ op: 'objectBytes', resource: 'nodes', name: names[0]! }),
    h.call<number>({ op: 'objectBytes', resource: 'configmaps', namespace: NAMESPACE, name: INDEX_NAME }),
    ...Array.from({ length: SHARD_COUNT }, (_, i) => h.call<number>({ op: 'objectBytes', resource: 'configmaps', namespace: NAMESPACE, name: shardName(i) })),
  ]);
  return { nodeBytes, indexBytes, shardBytes: shardSizes.reduce((a, b) => a + b, 0) / SHARD_COUNT };
}

/** The steady state of every process, the followers scraped as Prometheus would. */
async function steadyState({ h, n, params }: Size, { leader, standby, followers }: Design) {
  progress(`api: ${n} nodes: ${params.apiWindowSeconds} s of steady state, the followers scraped every ${SCRAPE_EVERY_MS / 1000} s`);
  await sleep(5000);
  const metricsMs: number[] = [];
  const scrapes = async (endAt: number): Promise<void> => {
    while (Date.now() + SCRAPE_EVERY_MS / 2 < endAt) {
      for (const f of followers) metricsMs.push((await f.m.scrape([])).ms);
      await sleep(Math.min(SCRAPE_EVERY_MS, Math.max(0, endAt - Date.now() - 1000)));
    }
  };
  const window = await h.window([leader, standby, ...followers], scrapes);
  const [leaderSteady, standbySteady, ...followerSteady] = window.figures as [Figures, Figures, ...Figures[]];
  return { window, metricsMs, leaderSteady, standbySteady, followerSteady };
}

/** One node joins (the farm's own address, reachable and no agent's): what each received beyond its steady rate until every follower knew it. */
async function oneJoin({ ctx, h, n }: Size, { leader, followers }: Design, leaderSteady: Traffic, followerSteady: Traffic[]): Promise<ApiRow['change']> {
  progress(`api: ${n} nodes: one node joining`);
  const c0 = await h.load();
  const cT = Date.now();
  await h.call({ op: 'nodes', nodes: [{ name: 'node-joined', address: ctx.farm.ipv4, index: n }] });
  await h.knownBy(followers, n, 'every follower knows the joined node', 300_000);
  const changeMs = Date.now() - cT;
  const c1 = await h.load();
  const joined = (p: Proc, steadyRate: Traffic) => beyond(delta(trafficOf(c0, p.user), trafficOf(c1, p.user)), steadyRate, changeMs / 1000);
  return { ms: changeMs, controller: joined(leader, leaderSteady), followers: followers.map((f, i) => joined(f, followerSteady[i]!)) };
}

/** Autoscaler churn: one join or leave per second, of different nodes (a new node joins, then one of the first ones leaves). */
async function churn({ ctx, h, n, names, params }: Size, { leader, followers }: Design): Promise<{ churn: ApiRow['churn']; finalNodes: number }> {
  progress(`api: ${n} nodes: ${params.apiWindowSeconds} s of churn, one join or leave per second`);
  let joins = 0;
  let leaves = 0;
  const churnDuring = async (endAt: number): Promise<void> => {
    for (let k = 0; Date.now() + 1000 <= endAt; k++) {
      if (k % 2 === 0) {
        await h.call({ op: 'nodes', nodes: [{ name: `node-churn-${joins}`, address: addressOf(ctx, n + 1 + joins), index: n + 1 + joins }] });
        joins++;
      } else {
        // From the end of the list: the followers run on the first nodes.
        await h.call({ op: 'deleteNode', name: names[n - 1 - leaves]! });
        leaves++;
      }
      await sleep(1000);
    }
  };
  const window = await h.window([leader, ...followers], churnDuring);
  const finalNodes = n + 1 + joins - leaves;
  const s0 = Date.now();
  await h.knownBy(followers, finalNodes - 1, 'every follower has the list after the churn', 300_000);
  const [controller, ...followerChurn] = window.figures as [Figures, ...Figures[]];
  return { churn: { seconds: window.seconds, events: joins + leaves, controller, followers: followerChurn, settleMs: Date.now() - s0 }, finalNodes };
}

/** A follower restarted, as a rolling update restarts every agent: its start, and its reads with resourceVersion=0. */
async function followerRestart({ h, n, names }: Size, { followers }: Design): Promise<{ restarted: Proc; followerStart: ApiRow['followerStart'] }> {
  progress(`api: ${n} nodes: a follower restarted`);
  await followers[0]!.m.stop();
  const restarted = await h.agent('api-follower-restarted', 'agent-0-restarted', names[0]!, true);
  const start = await h.readyCost(restarted);
  return { restarted, followerStart: { ...start, ...(await h.call<Reads>({ op: 'reads', user: restarted.user })) } };
}

/** The leader restarted: it gives the lease up on SIGTERM and the standby takes over, lists Nodes and rewrites what differs. */
async function handover({ h, n, notes }: Size, { leader, standby }: Design, liveFollowers: readonly Proc[], finalNodes: number): Promise<ApiRow['handover']> {
  progress(`api: ${n} nodes: the controller leader restarted (handover)`);
  const h0 = await h.load();
  const hT = Date.now();
  const holderOf = (): Promise<LeaseView> => h.call<LeaseView>({ op: 'lease', namespace: NAMESPACE, name: ELECTION_LEASE });
  const before = await holderOf();
  await leader.m.stop();
  await until('the standby takes the lease', 120_000, async () => {
    const l = await holderOf();
    return l.holder && l.holder !== before.holder ? true : undefined;
  });
  const takeoverMs = Date.now() - hT;
  try {
    await h.published(standby, finalNodes, HANDOVER_PUBLISH_MS);
    const h1 = await h.load();
    return {
      ...delta(trafficOf(h0, standby.user), trafficOf(h1, standby.user)),
      ms: Date.now() - hT,
      takeoverMs,
      followers: mean(liveFollowers.map((f) => delta(trafficOf(h0, f.user), trafficOf(h1, f.user)))),
    };
  } catch {
    const h1 = await h.load();
    const t = delta(trafficOf(h0, standby.user), trafficOf(h1, standby.user));
    notes.push(
      `handover: the standby took the lease ${fmt(takeoverMs / 1000, 1)} s after the leader's SIGTERM but had not published ${finalNodes} nodes ${HANDOVER_PUBLISH_MS / 1000} s later ` +
        `(it had received ${bytes(t.bytes)} in ${t.requests} requests: ${Object.entries(t.byResource)
          .map(([k, v]) => `${k} ${v.requests}`)
          .join(
            ', ',
          )}; mentat_node_list_nodes ${await h.gauge(standby, 'mentat_node_list_nodes')}); its log ends: ${standby.m.agent.log().slice(-700).replace(/\s+/g, ' ')}`,
    );
    return undefined;
  }
}

/** The old leader back, as the standby: its start; a note if the lease moved again. */
async function standbyBack({ h, notes }: Size): Promise<ApiRow['standbyStart']> {
  const back = await h.controller('api-controller-0-restarted', 'controller-0-restarted', 'mentat-controller-0');
  const standbyStart = await h.readyCost(back, 60_000);
  await sleep(5000);
  const last = await h.call<LeaseView>({ op: 'lease', namespace: NAMESPACE, name: ELECTION_LEASE });
  if (last.holder !== 'mentat-controller-1') notes.push(`the lease moved again after the handover (to ${last.holder}).`);
  return standbyStart;
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

/** Every phase of one size, in order. */
async function phases(s: Size, t0: number): Promise<ApiRow> {
  const { n } = s;
  const created = await createNodes(s, t0);
  const direct = n <= DIRECT_MAX ? await directAgent(s) : undefined;
  const { controllerStart, ...design } = await startDesign(s);
  const sizes = await objectSizes(s);
  const steady = await steadyState(s, design);
  const change = await oneJoin(s, design, steady.leaderSteady, steady.followerSteady);
  const churned = await churn(s, design);
  const { restarted, followerStart } = await followerRestart(s, design);
  const handedOver = await handover(s, design, [restarted, ...design.followers.slice(1)], churned.finalNodes);
  const standbyStart = await standbyBack(s);
  return {
    nodes: n,
    ...sizes,
    ...created,
    windowSeconds: steady.window.seconds,
    heartbeatsPerSecond: ((direct?.beats ?? 0) + steady.window.beats) / ((direct?.seconds ?? 0) + steady.window.seconds),
    refreshSeconds: refreshSecondsFor(n, defaultConfig().nodeList.leaseDurationMs),
    ...(direct ? { direct: direct.direct } : {}),
    controller: steady.leaderSteady,
    standby: steady.standbySteady,
    followers: steady.followerSteady,
    metricsMs: steady.metricsMs,
    controllerStart,
    followerStart,
    standbyStart,
    handover: handedOver,
    change,
    churn: churned.churn,
    leaseLog: leaseLogOf(s.h.procs.filter((p) => p.m.label.startsWith('api-controller')).map((p) => p.m)),
    notes: s.notes,
  };
}

/** One size: the API server, the processes, every measurement; everything it started is stopped before it returns. */
export async function measure(ctx: Ctx, params: ApiParams, n: number): Promise<ApiRow> {
  const h = await ApiHarness.start(ctx, params);
  const t0 = Date.now();
  try {
    const names = Array.from({ length: n }, (_, i) => `node-${String(i).padStart(6, '0')}`);
    return await phases({ ctx, params, h, n, names, notes: [] }, t0);
  } catch (err) {
    const message = (err as Error).message;
    // The first line, and a fatal V8 error from the log if there is one (a heap limit reached).
    const fatal = /FATAL ERROR[^\n]*/.exec(message)?.[0];
    throw new Error(`${message.split('\n')[0]!.slice(0, 300)}${fatal ? ` (${fatal})` : ''} (after ${fmt((Date.now() - t0) / 1000)} s)`, { cause: err });
  } finally {
    await h.close();
  }
}
