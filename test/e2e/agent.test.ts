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
import { createCluster, requireNetns, type Cluster } from '../support/netns.js';
import { requirePrometheus, startPrometheus } from '../support/prometheus.js';

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

test('acceptance: discovery, probing, Prometheus queries, node delete and add, SIGTERM', { timeout: 120_000 }, async (t) => {
  if (!requireNetns(t)) return;
  if (!requirePrometheus(t)) return;
  const dir = await mkdtemp(join(tmpdir(), 'mentat-e2e-'));
  let cluster: Cluster | undefined;
  let control: FaultControl | undefined;
  try {
    cluster = await createCluster({ nodes: 4, ipv6: true, prefix: 'mte' });
    const [n0, n1, n2, n3] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    control = await FaultControl.start(cluster, n0.ns, dir);
    const ctl = control;
    await ctl.upsert('node0', n0.ipv4);
    await ctl.upsert('node1', n1.ipv4);
    await ctl.upsert('node2', n2.ipv4);
    // node3 is reached over IPv6 only: ICMPv6 through the same agent.
    await ctl.upsert('node3', n3.ipv6!);

    const agentLog: string[] = [];
    const agent = cluster.spawnIn(n0.ns, 'npm', ['start', '--silent'], {
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
    agent.stdout?.on('data', (d: Buffer) => agentLog.push(d.toString()));
    agent.stderr?.on('data', (d: Buffer) => agentLog.push(d.toString()));
    const exited = exitOf(agent);

    const scrape = async (): Promise<Sample[]> => {
      const r = await ctl.fetch('http://127.0.0.1:2112/metrics', { timeoutMs: 3000 });
      if (r.status !== 200) throw new Error(`scrape: ${r.status}`);
      return parseExposition(r.body);
    };
    const count = (s: Sample[], node: string) => sampleValue(s, 'node_latency_count', { destination_node: node }) ?? 0;

    await until('/readyz', 60_000, async () => ((await ctl.fetch('http://127.0.0.1:2112/readyz', { timeoutMs: 2000 })).status === 200 ? true : undefined));
    const first = await until('every node probed', 10_000, async () => {
      const s = await scrape();
      return ['node1', 'node2', 'node3'].every((n) => count(s, n) >= 3) ? s : undefined;
    });
    assert.deepEqual(labelValues(first, 'node_latency_count', 'destination_node'), ['node1', 'node2', 'node3'], 'the own node is skipped');
    assert.deepEqual(labelValues(first, 'node_latency_count', 'origin_node'), ['node0']);
    for (const n of ['node1', 'node2', 'node3']) {
      assert.equal(sampleValue(first, 'node_latency_probes_total', { destination_node: n, result: 'timeout' }), 0, `${n} lost nothing`);
      const mean = sampleValue(first, 'node_latency_sum', { destination_node: n })! / count(first, n);
      assert.ok(mean > 0 && mean < 0.01, `${n}: mean RTT ${mean} s over veth is positive and under 10 ms`);
    }

    const prom = await startPrometheus(cluster, n0.ns, ctl, dir, ['127.0.0.1:2112']);
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

    // Delete node2: its series go within 3 s, the others keep counting without a reset.
    const before = await scrape();
    const deletedAt = Date.now();
    await ctl.delete('node2');
    const afterDelete = await until('node2 gone from /metrics', 3000, async () => {
      const s = await scrape();
      return s.some((x) => x.labels['destination_node'] === 'node2') ? undefined : s;
    });
    const goneMs = Date.now() - deletedAt;
    assert.ok(count(afterDelete, 'node1') >= count(before, 'node1'), 'node1 kept its count');
    await until('node1 and node3 still counting', 3000, async () => {
      const s = await scrape();
      return count(s, 'node1') > count(afterDelete, 'node1') && count(s, 'node3') > count(afterDelete, 'node3') ? true : undefined;
    });

    // Add a fifth node: probed within 5 s.
    const n4 = await cluster.addNode();
    const addedAt = Date.now();
    await ctl.upsert('node4', n4.ipv4);
    await until('node4 probed', 5000, async () => (count(await scrape(), 'node4') > 0 ? true : undefined));
    const probedMs = Date.now() - addedAt;
    t.diagnostic(
      `deleted node gone after ${goneMs} ms; added node probed after ${probedMs} ms; mean ${(mean * 1e6).toFixed(0)} us; p99(node1) ${(p99 * 1e6).toFixed(0)} us`,
    );

    // SIGTERM to npm, which forwards it to the agent (exec'd, no shell between): exit 0 within 5 s.
    const signalledAt = Date.now();
    agent.kill('SIGTERM');
    const { code } = await Promise.race([
      exited,
      new Promise<{ code: number | null }>((_, reject) => setTimeout(() => reject(new Error(`no exit 5 s after SIGTERM; log:\n${agentLog.join('')}`)), 5000)),
    ]);
    assert.equal(code, 0, `exit code; log:\n${agentLog.join('').slice(-3000)}`);
    assert.ok(Date.now() - signalledAt < 5000);
    assert.match(agentLog.join(''), /"msg":"mentat stopped"/);
  } finally {
    control?.close();
    await cluster?.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
