/**
 * Cluster cost, simulated: the agent's own selection code (planMesh, and OutlierTracker for
 * churn) run for every origin over one node list, at 100, 1000 and 5000 nodes with 1 and 3
 * zones (and 20 000, 65 000, 100 000 with --cluster-sizes). Above 5000 nodes planMesh runs for
 * SAMPLED_ORIGINS origins spread over the list (each plan hashes every node for its sweep order,
 * so all of them would be O(N²)); the in-degree comes from the whole peer graph, the one every
 * agent's planMesh computes. Pure computation: no namespaces, no root.
 *
 *   node dist/bench/cluster.js            # the table on stdout
 *   node dist/bench/run.js --only cluster # as section 4 of the benchmark report
 */
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../src/config.js';
import { CONFIRM_PROBES, OutlierTracker } from '../src/mesh/outliers.js';
import { peerGraph } from '../src/mesh/peers.js';
import { planMesh } from '../src/mesh/plan.js';
import type { MeshNode, Outcome } from '../src/types.js';
import { mulberry32 } from './random.js';
import { table } from './stats.js';

/** Series one destination costs: the histogram (buckets + Inf + sum + count) and three probe counters. */
export function seriesPerDestination(buckets: number): number {
  return buckets + 3 + 3;
}
/** The agent's own: mentat_targets (7 states), mentat_probe_interval_seconds, mentat_node_state (4), target_info. */
const SELF_SERIES = 7 + 1 + 4 + 1;
/**
 * MTU series per destination and path while the path is healthy: mentat_path_mtu_probes_total
 * {result="ok"} (a result's series is created by its first count). A pair in MTU trouble adds up to
 * three results and mentat_path_mtu_bytes.
 */
const MTU_SERIES = 1;

/** One simulated cluster: its size, zones and settings, and what the mesh costs. */
export interface ClusterRow {
  readonly nodes: number;
  readonly zones: number;
  readonly mode: string;
  /** MENTAT_PATHS: every destination, sweep zone and outlier is measured on each path. */
  readonly paths: string;
  readonly destinationsMin: number;
  readonly destinationsMax: number;
  readonly inDegreeMin: number;
  readonly inDegreeMax: number;
  readonly crossZoneAgents: number;
  readonly zonePairsMeasured: string;
  /** Active series per agent in steady state, and with the outlier cap full. */
  readonly seriesPerAgent: number;
  readonly seriesPerAgentWorst: number;
  readonly seriesCluster: number;
  readonly seriesClusterWorst: number;
  /** Series created per hour per agent in steady state (no membership change), at the given background loss. */
  readonly createdPerHour: ReadonlyArray<{ loss: number; series: number }>;
  readonly sweptWithinS: number;
  readonly changedOnJoin: number;
  readonly changedOnLeave: number;
  readonly ppsPerNode: number;
  readonly ppsCluster: number;
  readonly planMs: number;
}

function nodesOf(count: number, zones: number): MeshNode[] {
  return Array.from({ length: count }, (_, i) => {
    const name = `ip-10-${(i >> 16) & 255}-${(i >> 8) & 255}-${i & 255}.eu-west-1.compute.internal`;
    const zone = zones > 1 ? `eu-west-1${'abcdef'[i % zones]}` : undefined;
    return {
      name,
      state: 'active',
      ...(zone ? { zone } : {}),
      targets: [{ key: name, name, address: `10.0.${i >> 8}.${i & 255}`, family: 4, ...(zone ? { zone } : {}) }],
    };
  });
}

/** One agent over an hour of steady state: how many outliers a background loss alone creates. */
function falseOutliersPerHour(config: Config, swept: number, loss: number, seed: number): number {
  const random = mulberry32(seed);
  let now = 0;
  const tracker = new OutlierTracker(
    { max: config.mesh.outliersMax, holdMs: config.mesh.outlierHoldMs, latencyExcessSeconds: config.mesh.outlierLatencySeconds },
    () => now,
  );
  const outcome = (): Outcome => (random() < loss ? { kind: 'timeout' } : { kind: 'success', rttSeconds: 0.0003 });
  const sweepsPerHour = Math.round((swept * 3_600_000) / config.mesh.sweepIntervalMs);
  let created = 0;
  for (let i = 0; i < sweepsPerHour; i++) {
    now = (i * 3_600_000) / sweepsPerHour;
    const node = `n${i % swept}`;
    if (!tracker.onSweep(node, outcome(), 0.0003)) continue;
    for (let p = 0; p < CONFIRM_PROBES && tracker.stateOf(node) === 'suspect'; p++) tracker.onProbe(node, outcome(), 0.0003);
    if (tracker.stateOf(node) === 'outlier') created++;
    tracker.expire();
  }
  return created;
}

function changedAgents(before: ReadonlyMap<string, readonly string[]>, after: ReadonlyMap<string, readonly string[]>): number {
  let n = 0;
  for (const [name, peers] of after) if (before.get(name)?.join() !== peers.join()) n++;
  return n;
}

/** Above this many nodes, planMesh runs for SAMPLED_ORIGINS origins only (see the file's comment). */
const EVERY_ORIGIN_MAX = 5000;
const SAMPLED_ORIGINS = 200;

/** How often each node is a peer, which zone pairs are measured, and how many agents have a peer in another zone. */
function inDegreeAndZones(config: Config, nodes: readonly MeshNode[], origins: readonly MeshNode[], plans: ReadonlyArray<ReturnType<typeof planMesh>>) {
  const inDegree = new Map(nodes.map((n) => [n.name, 0]));
  const zonePairs = new Set<string>();
  let crossZone = 0;
  const zoneOf = new Map(nodes.map((n) => [n.name, n.zone]));
  if (origins === nodes || plans[0]!.mode !== 'sampled') {
    plans.forEach((plan, i) => {
      for (const peer of plan.peers) {
        inDegree.set(peer.name, inDegree.get(peer.name)! + 1);
        zonePairs.add(`${origins[i]!.zone}>${peer.zone}`);
      }
      if (plan.peers.some((p) => p.zone !== origins[i]!.zone)) crossZone++;
    });
  } else {
    // Every origin's peers, as planMesh takes them from the peer graph (no origin here is over the address cap).
    for (const [origin, peers] of peerGraph(
      nodes.map((n) => ({ name: n.name, zone: n.zone })),
      config.mesh.peers,
    )) {
      for (const peer of peers) {
        inDegree.set(peer, inDegree.get(peer)! + 1);
        zonePairs.add(`${zoneOf.get(origin)}>${zoneOf.get(peer)}`);
      }
      if (peers.some((p) => zoneOf.get(p) !== zoneOf.get(origin))) crossZone++;
    }
  }
  return { inDegree, zonePairs, crossZone };
}

/** Stability: the most agents whose peers change on one join, and on one leave (the selection every agent runs). */
function membershipChanges(config: Config, nodes: readonly MeshNode[], sampled: boolean): { changedOnJoin: number; changedOnLeave: number } {
  // The whole graph before and after one join, and one leave.
  const count = nodes.length;
  const members = nodes.map((n) => ({ name: n.name, zone: n.zone }));
  const k = sampled ? config.mesh.peers : count;
  let changedOnJoin = 0;
  let changedOnLeave = 0;
  if (sampled) {
    const base = peerGraph(members, k);
    for (let t = 0; t < 5; t++) {
      changedOnJoin = Math.max(changedOnJoin, changedAgents(base, peerGraph([...members, { name: `new-${t}`, zone: members[t]!.zone }], k)));
      changedOnLeave = Math.max(
        changedOnLeave,
        changedAgents(
          base,
          peerGraph(
            members.filter((_, i) => i !== t * 101),
            k,
          ),
        ),
      );
    }
  } else {
    changedOnJoin = count + 1; // every agent gains the new node
    changedOnLeave = count - 1;
  }
  return { changedOnJoin, changedOnLeave };
}

/** The mesh every agent of a simulated cluster plans, and what it costs. */
export function clusterRow(config: Config, count: number, zones: number): ClusterRow {
  const nodes = nodesOf(count, zones);
  const origins = count <= EVERY_ORIGIN_MAX ? nodes : Array.from({ length: SAMPLED_ORIGINS }, (_, i) => nodes[Math.floor((i * count) / SAMPLED_ORIGINS)]!);
  const started = performance.now();
  // The real code path of every agent: planMesh for each origin (or a sample of them) over the same list.
  const plans = origins.map((n) => planMesh({ origin: n.name, nodes, mesh: config.mesh, maxTargets: config.maxTargets, probeSelf: false }));
  const planMs = (performance.now() - started) / origins.length;
  const { inDegree, zonePairs, crossZone } = inDegreeAndZones(config, nodes, origins, plans);
  const perDestination = seriesPerDestination(config.bucketsSeconds.length);
  const paths = config.paths.length;
  // MTU probes go to the destinations probed every interval (peers and outliers), on each path.
  const mtuSeries = config.mtu.intervalMs > 0 ? MTU_SERIES : 0;
  const sweepZones = (i: number) => new Set(plans[i]!.sweep.map((n) => n.zone ?? '')).size;
  const seriesOf = (i: number, outliers: number) =>
    paths * ((plans[i]!.peers.length + outliers) * (perDestination + mtuSeries) + sweepZones(i) * perDestination) + SELF_SERIES;
  const outlierCap = plans[0]!.mode === 'sampled' ? config.mesh.outliersMax : 0;
  // Sampled origins stand for count / SAMPLED_ORIGINS agents each in the cluster-wide sums.
  const weight = count / origins.length;
  const series = plans.map((_, i) => seriesOf(i, 0));
  const worst = plans.map((_, i) => seriesOf(i, outlierCap));
  const degrees = [...inDegree.values()];
  const destinations = plans.map((p) => p.peers.length);
  const sampled = plans[0]!.mode === 'sampled';

  const { changedOnJoin, changedOnLeave } = membershipChanges(config, nodes, sampled);
  const sweptPerAgent = plans[0]!.sweep.length;
  const probesPerSecond =
    paths *
    (destinations[0]! / (config.probeIntervalMs / 1000) +
      (sweptPerAgent * 1000) / (config.mesh.sweepIntervalMs || Infinity) +
      (config.mtu.intervalMs > 0 ? (destinations[0]! * 1000) / config.mtu.intervalMs : 0));
  return {
    nodes: count,
    zones,
    mode: plans[0]!.mode,
    paths: config.paths.join(','),
    destinationsMin: Math.min(...destinations),
    destinationsMax: Math.max(...destinations),
    inDegreeMin: Math.min(...degrees),
    inDegreeMax: Math.max(...degrees),
    crossZoneAgents: crossZone,
    zonePairsMeasured: `${[...zonePairs].filter((p) => p.split('>')[0] !== p.split('>')[1]).length} of ${zones * (zones - 1)}`,
    seriesPerAgent: Math.max(...series),
    seriesPerAgentWorst: Math.max(...worst),
    seriesCluster: series.reduce((a, b) => a + b, 0) * weight,
    seriesClusterWorst: worst.reduce((a, b) => a + b, 0) * weight,
    createdPerHour: sampled
      ? [0.001, 0.01].map((loss) => ({ loss, series: falseOutliersPerHour(config, sweptPerAgent, loss, count + zones) * perDestination }))
      : [{ loss: 0, series: 0 }],
    sweptWithinS: sampled ? config.mesh.sweepIntervalMs / 1000 : 0,
    changedOnJoin,
    changedOnLeave,
    // Each probe is an echo request out and a reply back.
    ppsPerNode: 2 * probesPerSecond,
    ppsCluster: 2 * probesPerSecond * count,
    planMs,
  };
}

/** The defaults, as an agent without configuration runs. */
export function defaultConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ env, argv: [], hostname: 'bench' }).config;
}

/** The simulation at every size and zone count, defaults and full mesh. */
export function clusterCost(sizes: readonly number[] = [100, 1000, 5000], zoneCounts: readonly number[] = [1, 3]): ClusterRow[] {
  const config = defaultConfig();
  const rows: ClusterRow[] = [];
  for (const nodes of sizes) for (const zones of zoneCounts) rows.push(clusterRow(config, nodes, zones));
  // One path (MENTAT_PATHS=node), and the full mesh, for comparison.
  const nodePath = defaultConfig({ MENTAT_PATHS: 'node' });
  for (const nodes of sizes.filter((n) => n <= EVERY_ORIGIN_MAX)) rows.push(clusterRow(nodePath, nodes, 3));
  const full = defaultConfig({ MENTAT_MESH: 'full' });
  for (const nodes of sizes.filter((n) => n > 100 && n <= EVERY_ORIGIN_MAX)) rows.push(clusterRow(full, nodes, 3));
  return rows;
}

const n = (v: number): string => v.toLocaleString('en-US', { maximumFractionDigits: 1 });

/** The simulation's table as Markdown. */
export function clusterReport(rows: readonly ClusterRow[]): string {
  const config = defaultConfig();
  return [
    `Defaults: MENTAT_MESH=${config.mesh.mode} (full up to ${config.mesh.fullMax} nodes), MENTAT_PEERS=${config.mesh.peers}, ` +
      `MENTAT_SWEEP_INTERVAL=${config.mesh.sweepIntervalMs / 60_000}m, MENTAT_OUTLIERS_MAX=${config.mesh.outliersMax}, ` +
      `${config.bucketsSeconds.length} buckets (${seriesPerDestination(config.bucketsSeconds.length)} series per destination), 1 s interval, ` +
      `MENTAT_PATHS=${config.paths.join(',')}, MENTAT_MTU_PROBE_INTERVAL=${config.mtu.intervalMs / 1000}s. ` +
      `Series per agent, on each path: destinations and outliers, each ${seriesPerDestination(config.bucketsSeconds.length)} + ${MTU_SERIES} MTU counter, ` +
      `and sweep zones, each ${seriesPerDestination(config.bucketsSeconds.length)}; + ${SELF_SERIES} of its own. ` +
      `"worst" has every agent's outlier cap full. A pair in MTU trouble adds up to 4 series (its other MTU results and the reported MTU) while it lasts.`,
    '',
    table(
      [
        'nodes',
        'zones',
        'mesh',
        'paths',
        'destinations per agent',
        'probed by (in-degree)',
        'agents reaching another zone',
        'zone pairs measured',
        'series per agent (worst)',
        'series per cluster (worst)',
        'series created per hour per agent at 0.1% / 1% loss',
        'every pair swept within',
        'agents changed by a join / leave',
        'ICMP packets/s per node / cluster',
        'planMesh per agent',
      ],
      rows.map((r) => [
        n(r.nodes),
        String(r.zones),
        r.mode,
        r.paths,
        r.destinationsMin === r.destinationsMax ? n(r.destinationsMin) : `${n(r.destinationsMin)}-${n(r.destinationsMax)}`,
        `${r.inDegreeMin}-${r.inDegreeMax}`,
        r.zones > 1 ? `${n(r.crossZoneAgents)} of ${n(r.nodes)}` : '-',
        r.zones > 1 ? r.zonePairsMeasured : '-',
        `${n(r.seriesPerAgent)} (${n(r.seriesPerAgentWorst)})`,
        `${n(r.seriesCluster)} (${n(r.seriesClusterWorst)})`,
        r.createdPerHour.map((c) => n(c.series)).join(' / '),
        r.mode === 'full' ? 'always (full mesh)' : `${r.sweptWithinS / 60} min`,
        `${r.changedOnJoin} / ${r.changedOnLeave}`,
        `${n(r.ppsPerNode)} / ${n(r.ppsCluster)}`,
        `${r.planMs.toFixed(1)} ms`,
      ]),
    ),
  ].join('\n');
}

/** Section 4 of the benchmark report. */
export function clusterSection(rows: readonly ClusterRow[], seconds: number): string {
  return [
    '## 4. Cluster cost (simulated)',
    '',
    `The agent's own mesh selection (planMesh for every origin over one node list, OutlierTracker for an hour of background loss) at each size, ` +
      `with the defaults an agent without configuration runs; the last rows force the full mesh for comparison. Pure computation (${seconds.toFixed(1)} s here), no namespaces.`,
    '',
    clusterReport(rows),
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(`${clusterReport(clusterCost())}\n`);
