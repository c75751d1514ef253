/** Section 5, API load: the Markdown of a run (run.ts), the cluster-wide figures, the budgets of issue 21 and their lines. */
import { ELECTION_LEASE, INDEX_NAME, SHARD_COUNT } from '../../src/kube/node-list.js';
import { bytes, ok, type BudgetRow } from '../report.js';
import { fmt, quantile, table } from '../stats.js';
import { DIRECT_MAX, SCRAPE_EVERY_MS, type ApiResult, type ApiRow, type Figures, type StartCost } from './params.js';
import { mean, nodesRequests } from './traffic.js';

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

/** The cluster-wide figures of one size. */
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

/** The budget lines, judged at 100 000 nodes or the largest size measured. */
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

/** What the tables show and how the processes ran. */
function introduction(r: ApiResult): string {
  return (
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
      : 'V8 heaps as shipped (the DaemonSet: --max-old-space-size=64; the controller: 160).')
  );
}

/** One process's row: its figures over a window, and what else there is to say about it. */
const processRow = (x: ApiRow, label: string, f: Figures, other: string): string[] => [
  fmt(x.nodes),
  label,
  bytes(f.bytes),
  perS(f.requests, 3),
  fmt(f.cores, 3),
  mem(f),
  other,
];

/** The direct agent's and the controllers' rows of one size. */
function controllerRows(x: ApiRow): string[][] {
  const handover = x.handover
    ? `handover: ${startText(x.handover)} (lease taken ${fmt(x.handover.takeoverMs / 1000, 1)} s after the SIGTERM)`
    : 'handover: did not complete (see the notes)';
  return [
    ...(x.direct ? [processRow(x, 'direct agent (before)', x.direct.steady, startText(x.direct.start))] : []),
    processRow(x, 'the controller (leader)', x.controller, `until published: ${startText(x.controllerStart)}`),
    processRow(x, 'the controller (leader), churn 1/s', x.churn.controller, handover),
    processRow(x, 'the controller (standby)', x.standby, startText(x.standbyStart)),
  ];
}

/** The followers' rows of one size. */
function followerRows(x: ApiRow): string[][] {
  const rows: string[][] = [];
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
  return rows;
}

/** Each process, each size. */
function perProcessTable(r: ApiResult): string {
  const rows = r.rows.flatMap((x) => [...controllerRows(x), ...followerRows(x)]);
  return table(['nodes', 'process', 'bytes/s received', 'requests/s', 'cores', 'RSS MiB', 'start until ready; other'], rows);
}

/** The cluster's figures, each size. */
function clusterTable(r: ApiResult): string {
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
  return table(
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
  );
}

/** A line per size: object sizes, what a join cost, churn and the election. */
function sizeLines(r: ApiResult): string[] {
  const out: string[] = [];
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
  return out;
}

/** How well the list pages compress, and what that means for real nodes. */
function compressionText(c: ApiResult['compression']): string {
  return (
    `Compression: a list page of 100 of these Nodes is ${bytes(c.plainBytes)} of JSON, ${bytes(c.gzipBytes)} gzipped (level 1, as kube-apiserver); their image digests and IDs are mostly zeros. ` +
    `With every digest and ID random the same page is ${bytes(c.realisticGzipBytes)} gzipped, so the controller's lists in a real cluster cost ` +
    `between 1 and ${fmt(c.realisticGzipBytes / c.gzipBytes, 1)} × the list bytes above; watch events, shards and the index are unaffected.`
  );
}

/** The section's Markdown. */
export function apiReport(r: ApiResult): string {
  const out: string[] = ['## 5. API server load', '', introduction(r), ''];
  out.push('### Per process', '', perProcessTable(r), '');
  out.push('### The cluster (an agent on every node, and the two controller replicas)', '');
  out.push(
    `Steady: the leader + the standby + N × a follower. Churn: the same over the churn window (one join or leave per second, steady traffic included). ` +
      `Rolling restart: N × a follower's start (each read with resourceVersion=0 is served from kube-apiserver's watch cache). ` +
      `One node joining: what the leader and N followers received beyond their steady traffic until every follower knew the node, and how long that took. ` +
      `Direct (up to ${fmt(DIRECT_MAX)} nodes): N × the direct agent, for comparison.`,
    '',
  );
  out.push(clusterTable(r), '');
  out.push(...sizeLines(r), '');
  out.push(compressionText(r.compression), '');
  for (const x of r.rows) for (const n of x.notes) out.push(`Note (${fmt(x.nodes)} nodes): ${n}`, '');
  for (const n of r.notes) out.push(`Note: ${n}`, '');
  return out.join('\n');
}
