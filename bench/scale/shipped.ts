/**
 * Section 3, scale: agents as shipped (the DaemonSet's environment) over kubelet-sized Nodes whose
 * kubelets post status, the publisher of the node list and then a follower, each scraped every 15 s.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config } from '../../src/config.js';
import { KUBELET_STATUS_PERIOD_MS } from '../../test/fake-apiserver/heartbeats.js';
import { makeRealisticNode } from '../../test/fake-apiserver/index.js';
import { progress, type Ctx } from '../context.js';
import { daemonSetEnv } from '../daemonset.js';
import type { ScrapeResult } from '../http-client.js';
import { median } from '../stats.js';
import { startMentat, sumOf, type Mentat } from '../tools.js';
import { MeasurementWindow, settledReading, type WindowReading } from '../window.js';
import { nodeName } from './full-mesh.js';
import { SCRAPE_EVERY_S, type ScaleParams, type ShippedRow } from './params.js';

/** The agents' own nodes in the shipped rows: the publisher's (startMentat's default NODE_NAME), then a follower's. */
const PUBLISHER = 'node0';

/**
 * Agents with the DaemonSet's settings over `params.shippedNodes` kubelet-sized Nodes: the first
 * takes the node-list lease (the publisher: it watches Nodes); a second one then follows the list
 * it publishes, as every other agent of a cluster does. Each is measured while both run.
 */
export async function shipped(ctx: Ctx, params: ScaleParams, upserted: number): Promise<ShippedRow[]> {
  const { control, src } = ctx;
  const n = params.shippedNodes;
  progress(
    `scale: as shipped, ${n} kubelet-sized nodes posting status every ${KUBELET_STATUS_PERIOD_MS / 60_000} min: the publisher, then a follower, ${params.shippedSeconds} s each with a scrape every ${SCRAPE_EVERY_S} s`,
  );
  // Kubelet-sized objects under the same names and addresses as the full-mesh rows' minimal ones, and the publisher's own Node.
  for (let i = 0; i < n; i += 250) {
    await control.upsertRaw(...Array.from({ length: Math.min(250, n - i) }, (_, k) => makeRealisticNode(nodeName(i + k), ctx.farmAddresses[i + k]!, i + k)));
  }
  if (upserted > n) await control.delete(...Array.from({ length: upserted - n }, (_, k) => nodeName(n + k)));
  await control.upsertRaw(makeRealisticNode(PUBLISHER, src.ipv4, n));
  await control.heartbeatsStart(KUBELET_STATUS_PERIOD_MS);
  const running: Mentat[] = [];
  let heartbeats: number | undefined;
  try {
    const measured = [await shippedAgent(ctx, params, PUBLISHER, 2330, running)];
    // The follower's own Node is one of the others (its address is on the farm, not its own: nothing is skipped).
    measured.push(await shippedAgent(ctx, params, nodeName(0), 2331, running));
    // The follower first: the publisher's SIGTERM gives the lease up, which the follower would act on.
    const stops: Array<{ code: number | null; ms: number }> = [];
    for (let i = running.length - 1; i >= 0; i--) stops[i] = await running[i]!.stop();
    running.length = 0;
    heartbeats = await control.heartbeatsStop();
    const beats = heartbeats;
    return measured.map((row, i) => ({
      ...row,
      nodes: n,
      heartbeats: beats,
      heartbeatPeriodMs: KUBELET_STATUS_PERIOD_MS,
      stopMs: stops[i]!.ms,
      stopCode: stops[i]!.code,
    }));
  } finally {
    for (const m of running) await m.stop();
    if (heartbeats === undefined) await control.heartbeatsStop();
  }
}

type MeasuredAgent = Omit<ShippedRow, 'nodes' | 'heartbeats' | 'heartbeatPeriodMs' | 'stopMs' | 'stopCode'>;

/** A scrape's result and when it was asked for. */
interface Scraped {
  s: ScrapeResult;
  at: number;
}

/** The measured window: scrapes at 0, 15, 30 ... s; the CPU window ends just before the last one, so it holds one scrape per 15 s. */
async function scrapedWindow(m: Mentat, http: Ctx['http'], params: ScaleParams, self: string) {
  const keep = ['node_latency_probes_total', 'node_latency_sweep_probes_total', 'mentat_targets'];
  const count = Math.max(1, Math.round(params.shippedSeconds / SCRAPE_EVERY_S));
  const scrapeMs: number[] = [];
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
    first ??= { s, at };
    last = { s, at };
  }
  return { reading: reading!, scrapeMs, first: first!, last: last!, count };
}

/** What the agent did for the node list, from its log. */
function roleOf(m: Mentat): string {
  const lines = m.agent.lines();
  return lines.some((l) => String(l['msg']).startsWith('took the node-list lease'))
    ? 'publisher (holds the lease, watches Nodes, writes the list)'
    : lines.some((l) => String(l['msg']).includes('watching Nodes directly'))
      ? 'fallback (watches Nodes itself)'
      : 'follower (watches the lease, reads the list)';
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

/** Starts one agent as shipped (left running, in `running`) and measures it over a window with a scrape every 15 s. */
async function shippedAgent(ctx: Ctx, params: ScaleParams, self: string, port: number, running: Mentat[]): Promise<MeasuredAgent> {
  const { cluster, control, http } = ctx;
  const settings = daemonSetEnv({ NODE_NAME: self, POD_NAME: `mentat-${self}`, POD_NAMESPACE: 'mentat' });
  // The kubeconfig stands in for the service account; the port is the bench's (the DaemonSet's is 2112).
  const env = { ...settings, KUBECONFIG: control.kubeconfig, MENTAT_METRICS_PORT: String(port) };
  const config = loadConfig({ env, argv: [], hostname: self }).config;
  const t0 = Date.now();
  const m = startMentat(cluster, ctx.src.ns, control, http, `shipped-${self}`, port, env);
  running.push(m);
  await m.ready(120_000);
  const readyMs = Date.now() - t0;
  // The first publication, and the sweep under way.
  await sleep(5000);
  const { reading, scrapeMs, first, last, count } = await scrapedWindow(m, http, params, self);
  const after = await settledReading(m.pid);
  return {
    env: Object.fromEntries(Object.entries(settings).filter(([k]) => k !== 'MENTAT_METRICS_PORT')),
    readyMs,
    role: roleOf(m),
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
