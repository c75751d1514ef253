/**
 * The acceptance run, as a user starts it: a 4-node cluster of network namespaces,
 * a fake Kubernetes API server, the agent started with `npm start` in node0, and a
 * real Prometheus scraping it and answering the README queries.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, until } from '../support/agent-process.js';
import { FaultControl } from '../support/fault-client.js';
import { labelValues, parseExposition, sampleValue, type Sample } from '../support/exposition.js';
import { createCluster, requireNetns, type Cluster, type ClusterNode } from '../support/netns.js';
import { requirePrometheus, startPrometheus } from '../support/prometheus.js';

type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };

/** Resolves with the child's exit, at once if it has already exited. */
function exitOf(child: ChildProcess): Promise<ExitStatus> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** The agent started with `npm start`, its output kept, its /metrics on 127.0.0.1:2112 of its namespace. */
interface NpmAgent {
  readonly child: ChildProcess;
  readonly log: string[];
  readonly exited: Promise<ExitStatus>;
  scrape(): Promise<Sample[]>;
}

/** How many probes of `node` a scrape counts (0 before the first). */
const count = (s: Sample[], node: string) => sampleValue(s, 'node_latency_count', { destination_node: node }) ?? 0;

/** The API server's Node objects for node0..node3, each with one address. */
async function registerNodes(ctl: FaultControl, [n0, n1, n2, n3]: readonly [ClusterNode, ClusterNode, ClusterNode, ClusterNode]): Promise<void> {
  await ctl.upsert('node0', n0.ipv4);
  await ctl.upsert('node1', n1.ipv4);
  await ctl.upsert('node2', n2.ipv4);
  // node3 is reached over IPv6 only: ICMPv6 through the same agent.
  await ctl.upsert('node3', n3.ipv6!);
}

/** Starts the agent as node0 with `npm start` in `ns`, probing every 200 ms; HTTP to it goes through `ctl`. */
function startNpmAgent(cluster: Cluster, ns: string, ctl: FaultControl): NpmAgent {
  const log: string[] = [];
  const child = cluster.spawnIn(ns, 'npm', ['start', '--silent'], {
    cwd: REPO,
    env: {
      ...process.env,
      NODE_NAME: 'node0',
      KUBECONFIG: ctl.kubeconfig,
      MENTAT_PROBE_INTERVAL: '200ms',
      MENTAT_PROBE_TIMEOUT: '200ms',
      MENTAT_METRICS_HOST: '127.0.0.1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const exited = exitOf(child);
  const scrape = async (): Promise<Sample[]> => {
    const r = await ctl.fetch('http://127.0.0.1:2112/metrics', { timeoutMs: 3000 });
    if (r.status !== 200) throw new Error(`scrape: ${r.status}`);
    return parseExposition(r.body);
  };
  return { child, log, exited, scrape };
}

/** Once ready, the agent probes every node but its own, loses nothing and measures a veth's RTT. */
async function assertEveryNodeProbed(agent: NpmAgent, ctl: FaultControl): Promise<void> {
  await until('/readyz', 60_000, async () => ((await ctl.fetch('http://127.0.0.1:2112/readyz', { timeoutMs: 2000 })).status === 200 ? true : undefined));
  const first = await until('every node probed', 10_000, async () => {
    const s = await agent.scrape();
    return ['node1', 'node2', 'node3'].every((n) => count(s, n) >= 3) ? s : undefined;
  });
  assert.deepEqual(labelValues(first, 'node_latency_count', 'destination_node'), ['node1', 'node2', 'node3'], 'the own node is skipped');
  assert.deepEqual(labelValues(first, 'node_latency_count', 'origin_node'), ['node0']);
  for (const n of ['node1', 'node2', 'node3']) {
    assert.equal(sampleValue(first, 'node_latency_probes_total', { destination_node: n, result: 'timeout' }), 0, `${n} lost nothing`);
    const mean = sampleValue(first, 'node_latency_sum', { destination_node: n })! / count(first, n);
    assert.ok(mean > 0 && mean < 0.01, `${n}: mean RTT ${mean} s over veth is positive and under 10 ms`);
  }
}

/** A real Prometheus scraping the agent answers the README's two queries plausibly; their answers in seconds. */
async function assertReadmeQueries(cluster: Cluster, ns: string, ctl: FaultControl, dir: string): Promise<{ mean: number; p99: number }> {
  const prom = await startPrometheus(cluster, ns, ctl, dir, ['127.0.0.1:2112']);
  const mean = await until('mean RTT from Prometheus', 20_000, async () => {
    const v = await prom.query('sum(node_latency_sum) / sum(node_latency_count)');
    return Number.isFinite(v) ? v : undefined;
  });
  assert.ok(mean > 0 && mean < 0.01, `README query 1: mean RTT ${mean}`);
  const p99 = await until('p99 to node1 from Prometheus', 20_000, async () => {
    const v = await prom.query('histogram_quantile(0.99, sum(rate(node_latency_bucket{destination_node="node1"}[5m])) by (le))');
    return Number.isFinite(v) ? v : undefined;
  });
  assert.ok(p99 > 0 && p99 <= 0.01, `README query 2: p99 RTT to node1 ${p99}`);
  return { mean, p99 };
}

/** Deletes node2: its series go within 3 s, the others keep counting without a reset; how long it took to go. */
async function assertDeletedNodeGone(agent: NpmAgent, ctl: FaultControl): Promise<number> {
  const before = await agent.scrape();
  const deletedAt = Date.now();
  await ctl.delete('node2');
  const afterDelete = await until('node2 gone from /metrics', 3000, async () => {
    const s = await agent.scrape();
    return s.some((x) => x.labels['destination_node'] === 'node2') ? undefined : s;
  });
  const goneMs = Date.now() - deletedAt;
  assert.ok(count(afterDelete, 'node1') >= count(before, 'node1'), 'node1 kept its count');
  await until('node1 and node3 still counting', 3000, async () => {
    const s = await agent.scrape();
    return count(s, 'node1') > count(afterDelete, 'node1') && count(s, 'node3') > count(afterDelete, 'node3') ? true : undefined;
  });
  return goneMs;
}

/** Adds a fifth node: probed within 5 s; how long it took. */
async function assertAddedNodeProbed(cluster: Cluster, agent: NpmAgent, ctl: FaultControl): Promise<number> {
  const n4 = await cluster.addNode();
  const addedAt = Date.now();
  await ctl.upsert('node4', n4.ipv4);
  await until('node4 probed', 5000, async () => (count(await agent.scrape(), 'node4') > 0 ? true : undefined));
  return Date.now() - addedAt;
}

/** SIGTERM to npm, which forwards it to the agent (exec'd, no shell between): exit 0 within 5 s, saying so. */
async function assertStopsOnSigterm(agent: NpmAgent): Promise<void> {
  const signalledAt = Date.now();
  agent.child.kill('SIGTERM');
  const { code } = await Promise.race([
    agent.exited,
    new Promise<{ code: number | null }>((_, reject) => setTimeout(() => reject(new Error(`no exit 5 s after SIGTERM; log:\n${agent.log.join('')}`)), 5000)),
  ]);
  assert.equal(code, 0, `exit code; log:\n${agent.log.join('').slice(-3000)}`);
  assert.ok(Date.now() - signalledAt < 5000);
  assert.match(agent.log.join(''), /"msg":"mentat stopped"/);
}

test('acceptance: discovery, probing, Prometheus queries, node delete and add, SIGTERM', { timeout: 120_000 }, async (t) => {
  if (!requireNetns(t)) return;
  if (!requirePrometheus(t)) return;
  const dir = await mkdtemp(join(tmpdir(), 'mentat-e2e-'));
  let cluster: Cluster | undefined;
  let control: FaultControl | undefined;
  try {
    cluster = await createCluster({ nodes: 4, ipv6: true, prefix: 'mte' });
    const nodes = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    const ns = nodes[0].ns;
    control = await FaultControl.start(cluster, ns, dir);
    await registerNodes(control, nodes);
    const agent = startNpmAgent(cluster, ns, control);

    await assertEveryNodeProbed(agent, control);
    const { mean, p99 } = await assertReadmeQueries(cluster, ns, control, dir);
    const goneMs = await assertDeletedNodeGone(agent, control);
    const probedMs = await assertAddedNodeProbed(cluster, agent, control);
    t.diagnostic(
      `deleted node gone after ${goneMs} ms; added node probed after ${probedMs} ms; mean ${(mean * 1e6).toFixed(0)} us; p99(node1) ${(p99 * 1e6).toFixed(0)} us`,
    );
    await assertStopsOnSigterm(agent);
  } finally {
    control?.close();
    await cluster?.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
