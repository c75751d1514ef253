/**
 * Section 3, scale: the design as shipped over kubelet-sized Nodes whose kubelets post status: the
 * mentat-controller (deploy/base/controller.yaml's environment) publishes the node list, and agents
 * with the DaemonSet's environment follow it, the first and then a second, each scraped every 15 s.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config } from '../../src/config.js';
import { kustomize } from '../../test/deploy/render.js';
import { KUBELET_STATUS_PERIOD_MS } from '../../test/fake-apiserver/heartbeats.js';
import { makeRealisticNode } from '../../test/fake-apiserver/index.js';
import type { FaultControl } from '../../test/support/fault-client.js';
import { AGENT_USER, CONTROLLER_USER, NS } from '../../test/support/node-list-parts.js';
import { permissionsFromManifests } from '../../test/support/rbac.js';
import { progress, type Ctx } from '../context.js';
import { controllerEnv, daemonSetEnv } from '../daemonset.js';
import type { ScrapeResult } from '../http-client.js';
import { NODE_SOURCE_GAUGE, nodeSourceOf, untilFollowing, untilPublished } from '../node-list.js';
import { median } from '../stats.js';
import { startMentat, sumOf, type Mentat } from '../tools.js';
import { MeasurementWindow, settledReading, type WindowReading } from '../window.js';
import { nodeName } from './full-mesh.js';
import { SCRAPE_EVERY_S, type ScaleParams, type ShippedRow } from './params.js';

/** The first agent's node (startMentat's default NODE_NAME): its Node has the agents' namespace's address. */
const FIRST_AGENT = 'node0';
/** Ports of the first agent, the second and the controller (the manifests' 2112 is the bench's HTTP hands'). */
const PORTS = { first: 2330, second: 2331, controller: 2332 };
/** The controller lists every Node before it first publishes: at 5000 kubelet-sized ones, seconds. */
const PUBLISH_TIMEOUT_MS = 120_000;
/** A ready agent has read the index and its shards; one that has not followed by then is measured as it is (noted). */
const FOLLOW_TIMEOUT_MS = 60_000;

/** An agent's place in the run: its node, port and kubeconfig, and how many nodes besides itself it knows once it follows the list. */
interface AgentSpec {
  self: string;
  port: number;
  kubeconfig: string;
  others: number;
}

/**
 * The controller over `params.shippedNodes` kubelet-sized Nodes (and the first agent's own), until it
 * has published them all; then an agent with the DaemonSet's settings that follows the published list,
 * then a second one, as every agent of a cluster does. Each agent is measured while what started before it runs.
 */
export async function shipped(ctx: Ctx, params: ScaleParams, upserted: number, notes: string[]): Promise<ShippedRow[]> {
  const { control } = ctx;
  const n = params.shippedNodes;
  progress(
    `scale: as shipped, ${n} kubelet-sized nodes posting status every ${KUBELET_STATUS_PERIOD_MS / 60_000} min: the controller, then two agents following its list, ${params.shippedSeconds} s each with a scrape every ${SCRAPE_EVERY_S} s`,
  );
  await shippedNodes(ctx, n, upserted);
  const agents: Mentat[] = [];
  let controller: Mentat | undefined;
  let heartbeats: number | undefined;
  try {
    const kubeconfigs = await serviceAccounts(control, notes);
    const t0 = Date.now();
    controller = startController(ctx, kubeconfigs.controller);
    await untilPublished(controller, n + 1, PUBLISH_TIMEOUT_MS);
    const controllerPublishedMs = Date.now() - t0;
    const specs: AgentSpec[] = [
      { self: FIRST_AGENT, port: PORTS.first, kubeconfig: kubeconfigs.agent, others: n },
      // Its own Node is one of the others (its address on the farm). It runs in the first agent's namespace, so it
      // takes node0's address for one of its own and leaves node0 out as itself, as it always has.
      { self: nodeName(0), port: PORTS.second, kubeconfig: kubeconfigs.agent, others: n - 1 },
    ];
    const measured: MeasuredAgent[] = [];
    for (const spec of specs) measured.push(await shippedAgent(ctx, params, spec, agents, notes));
    // The agents first, then the controller they follow: none of them sees the list go stale while it stops.
    const stops: Array<{ code: number | null; ms: number }> = [];
    for (let i = agents.length - 1; i >= 0; i--) stops[i] = await agents[i]!.stop();
    agents.length = 0;
    heartbeats = await control.heartbeatsStop();
    const beats = heartbeats;
    return measured.map((row, i) => ({
      ...row,
      nodes: n,
      heartbeats: beats,
      heartbeatPeriodMs: KUBELET_STATUS_PERIOD_MS,
      controllerPublishedMs,
      stopMs: stops[i]!.ms,
      stopCode: stops[i]!.code,
    }));
  } finally {
    for (const m of agents) await m.stop();
    await controller?.stop();
    if (heartbeats === undefined) await control.heartbeatsStop();
  }
}

/** Kubelet-sized objects under the full-mesh rows' names and addresses (the rest deleted), the first agent's own Node, and their kubelets. */
async function shippedNodes(ctx: Ctx, n: number, upserted: number): Promise<void> {
  const { control } = ctx;
  for (let i = 0; i < n; i += 250) {
    await control.upsertRaw(...Array.from({ length: Math.min(250, n - i) }, (_, k) => makeRealisticNode(nodeName(i + k), ctx.farmAddresses[i + k]!, i + k)));
  }
  if (upserted > n) await control.delete(...Array.from({ length: upserted - n }, (_, k) => nodeName(n + k)));
  await control.upsertRaw(makeRealisticNode(FIRST_AGENT, ctx.src.ipv4, n));
  await control.heartbeatsStart(KUBELET_STATUS_PERIOD_MS);
}

/**
 * Kubeconfigs of deploy/'s two service accounts, each held to the RBAC `kubectl kustomize deploy`
 * renders, as the tests do; without kubectl the tokens stay unrestricted, which a note says.
 */
async function serviceAccounts(control: FaultControl, notes: string[]): Promise<{ agent: string; controller: string }> {
  try {
    const rbac = permissionsFromManifests(kustomize('kubectl', 'deploy'));
    for (const user of [AGENT_USER, CONTROLLER_USER]) await control.setPermissions(user, rbac.get(user));
  } catch (err) {
    const why = (err as Error).message.split('\n')[0];
    notes.push(`as shipped: deploy/'s RBAC was not applied (${why}); the agents and the controller ran with unrestricted tokens.`);
  }
  return { agent: await control.kubeconfigFor({ user: AGENT_USER }), controller: await control.kubeconfigFor({ user: CONTROLLER_USER }) };
}

/** The mentat-controller with deploy/base/controller.yaml's environment, in the agents' namespace. */
function startController(ctx: Ctx, kubeconfig: string): Mentat {
  const { cluster, control, http, src } = ctx;
  const env = controllerEnv({ POD_NAME: 'mentat-controller-0', POD_NAMESPACE: NS, NODE_NAME: 'control-plane' });
  return startMentat(cluster, src.ns, control, http, 'shipped-controller', PORTS.controller, {
    ...env,
    KUBECONFIG: kubeconfig,
    MENTAT_METRICS_PORT: String(PORTS.controller),
  });
}

type MeasuredAgent = Omit<ShippedRow, 'nodes' | 'heartbeats' | 'heartbeatPeriodMs' | 'controllerPublishedMs' | 'stopMs' | 'stopCode'>;

/** A scrape's result and when it was asked for. */
interface Scraped {
  s: ScrapeResult;
  at: number;
}

/** The measured window: scrapes at 0, 15, 30 ... s; the CPU window ends just before the last one, so it holds one scrape per 15 s. */
async function scrapedWindow(m: Mentat, http: Ctx['http'], params: ScaleParams, self: string) {
  const keep = ['node_latency_probes_total', 'node_latency_sweep_probes_total', 'mentat_targets', NODE_SOURCE_GAUGE];
  const count = Math.max(1, Math.round(params.shippedSeconds / SCRAPE_EVERY_S));
  const scrapeMs: number[] = [];
  const nodeSources: string[] = [];
  const window = MeasurementWindow.start(m.pid);
  let first: Scraped | undefined;
  let last: Scraped | undefined;
  let reading: WindowReading | undefined;
  for (let k = 0; k <= count; k++) {
    await window.sampleUntil(k * SCRAPE_EVERY_S * 1000);
    if (k === count) reading = window.stop();
    const at = Date.now();
    const s = await http.scrape(m.url, { keep, timeoutMs: 60_000 });
    if (s.status !== 200) throw new Error(`shipped: scrape ${k} of ${self} answered ${s.status}`);
    scrapeMs.push(s.ms);
    nodeSources.push(nodeSourceOf(s.samples) ?? '?');
    first ??= { s, at };
    last = { s, at };
  }
  return { reading: reading!, scrapeMs, nodeSources, first: first!, last: last!, count };
}

/** Its mesh, and the probes it sent between the scrapes that bracket the window against what its settings plan. */
function probesAsPlanned(config: Config, first: Scraped, last: Scraped) {
  const targets: Record<string, number> = {};
  for (const x of last.s.samples) if (x.name === 'mentat_targets' && x.labels['state']) targets[x.labels['state']] = x.value;
  const everyInterval = (targets['probed'] ?? 0) + (targets['suspect'] ?? 0) + (targets['outlier'] ?? 0);
  const counterSeconds = (last.at - first.at) / 1000;
  const delta = (name: string, labels: Record<string, string> = {}) => sumOf(last.s.samples, name, labels) - sumOf(first.s.samples, name, labels);
  const nodes = targets['known'] ?? 0;
  return {
    targets,
    everyInterval,
    mesh:
      config.mesh.mode !== 'auto'
        ? config.mesh.mode
        : `auto: ${nodes + 1 > config.mesh.fullMax ? `sampled above ${config.mesh.fullMax} nodes, ${config.mesh.peers} peers` : 'full'}`,
    intervalMs: config.probeIntervalMs,
    sweepIntervalMs: config.mesh.sweepIntervalMs,
    counterSeconds,
    probes: delta('node_latency_probes_total'),
    expectedProbes: Math.round((everyInterval * counterSeconds * 1000) / config.probeIntervalMs),
    timeouts: delta('node_latency_probes_total', { result: 'timeout' }),
    sweepProbes: delta('node_latency_sweep_probes_total'),
    expectedSweepProbes: config.mesh.sweepIntervalMs > 0 ? Math.round(((targets['swept'] ?? 0) * counterSeconds * 1000) / config.mesh.sweepIntervalMs) : 0,
  };
}

/** Starts one agent as shipped (left running, in `running`), waits for it to follow the published list, and measures it over a window with a scrape every 15 s. */
async function shippedAgent(ctx: Ctx, params: ScaleParams, spec: AgentSpec, running: Mentat[], notes: string[]): Promise<MeasuredAgent> {
  const { cluster, control, http } = ctx;
  const { self, port } = spec;
  const settings = daemonSetEnv({ NODE_NAME: self, POD_NAME: `mentat-${self}`, POD_NAMESPACE: NS });
  // The kubeconfig stands in for the service account's token; the port is the bench's (the DaemonSet's is 2112).
  const env = { ...settings, KUBECONFIG: spec.kubeconfig, MENTAT_METRICS_PORT: String(port) };
  const config = loadConfig({ env, argv: [], hostname: self }).config;
  const t0 = Date.now();
  const m = startMentat(cluster, ctx.src.ns, control, http, `shipped-${self}`, port, env);
  running.push(m);
  await m.ready(120_000);
  const readyMs = Date.now() - t0;
  // Every other node, from the published list: a fallback knows them all too. One that never follows is measured as it is.
  await untilFollowing(m, spec.others, FOLLOW_TIMEOUT_MS).catch((err: unknown) =>
    notes.push(`as shipped, ${self}: ${(err as Error).message.replace(/\n/g, '; ')}; measured as it was.`),
  );
  // The sweep under way.
  await sleep(5000);
  const { reading, scrapeMs, nodeSources, first, last, count } = await scrapedWindow(m, http, params, self);
  const after = await settledReading(m.pid);
  return {
    env: Object.fromEntries(Object.entries(settings).filter(([k]) => k !== 'MENTAT_METRICS_PORT')),
    agent: self,
    readyMs,
    nodeSources,
    ...probesAsPlanned(config, first, last),
    windowSeconds: reading.wallSeconds,
    cpuSeconds: reading.cpuSeconds,
    userSeconds: reading.userSeconds,
    scrapesInWindow: count,
    scrapeMs,
    scrapeBytes: last.s.bytes,
    series: last.s.series,
    rssMedianKiB: median(reading.rssKiB),
    rssMaxKiB: Math.max(...reading.rssKiB, after.rssKiB),
    anonKiB: after.anonKiB,
    hwmKiB: after.hwmKiB,
    sockets: m.sockets(),
    threads: reading.threads,
  };
}
