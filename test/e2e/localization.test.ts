/**
 * The shipped rules in a real Prometheus, over 12 real agents (one per network namespace, default
 * settings, two zones), scraped every 5 s. After a quiet half minute one node answers every echo 5 ms
 * late (kernel echo off, user-space responder) while another is scaled down as the cluster
 * autoscaler does it: cordoned and tainted, its agent stopped, its network down, its Node deleted
 * 60 s later. An alert must name the slow node within 4 minutes; none may name the node being
 * removed or blame any other node; at most 3 alerts appear in all.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sampleValue } from '../support/exposition.js';
import { REPO } from '../support/agent-process.js';
import { until } from '../support/fault-client.js';
import type { MeshCluster } from '../support/mesh-cluster.js';
import { requireNetns, startResponder } from '../support/netns.js';
import { AlertLog, namedNodes } from '../support/alert-log.js';
import { requirePrometheus, startPrometheus, type PrometheusServer } from '../support/prometheus.js';
import { startZonedMesh } from '../support/zoned-mesh.js';

const SCRAPE_S = 5;

/** The agent's /metrics address on its node. */
function target(mesh: MeshCluster, name: string): string {
  return `${mesh.nodes.get(name)!.ipv4}:${mesh.port}`;
}

/** Prometheus in the infra namespace with the shipped rules, scraping every agent (labelled with its node) every 5 s. */
async function startRulesPrometheus(t: TestContext, mesh: MeshCluster, names: readonly string[], dir: string): Promise<PrometheusServer> {
  const prom = await startPrometheus(
    mesh.cluster,
    mesh.infra.ns,
    mesh.control,
    dir,
    names.map((n) => target(mesh, n)),
    9090,
    {
      intervalS: SCRAPE_S,
      ruleFiles: [join(REPO, 'deploy/rules/mentat.rules.yaml')],
      labels: Object.fromEntries(names.map((n) => [target(mesh, n), { node: n }])),
    },
  );
  t.after(() => void prom.process.kill('SIGKILL'));
  return prom;
}

/** Waits until Prometheus scrapes all 12 agents, each probing the other 11. */
async function untilEveryPairScraped(prom: PrometheusServer): Promise<void> {
  await until(
    'every agent scraped and probing the other 11',
    90_000,
    async () => {
      const up = await prom.queryVector('count(up{job="mentat"} == 1)');
      const pairs = await prom.queryVector('count(node_latency_count > 0)');
      return Number(up[0]?.value[1]) === 12 && Number(pairs[0]?.value[1]) === 12 * 11 ? true : undefined;
    },
    { everyMs: 2000 },
  );
}

/** Kernel echo off on `slow`, a user-space responder answering 5 ms late, stopped after the test. */
async function slowDown(t: TestContext, mesh: MeshCluster, slow: string): Promise<void> {
  const responder = await startResponder(mesh.cluster, mesh.nodes.get(slow)!.ns, { delayMs: 5 });
  t.after(() =>
    responder.stop().then(
      () => undefined,
      () => undefined,
    ),
  );
}

/** The scale-down: cordon and taint, then (once its agent has said so) stop the agent, drop its target and take the network down. */
async function scaleDown(mesh: MeshCluster, prom: PrometheusServer, names: readonly string[], leaving: string): Promise<void> {
  const node = mesh.nodeObject(leaving);
  await mesh.control.upsertRaw({
    ...node,
    spec: { unschedulable: true, taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: String(Math.floor(Date.now() / 1000)), effect: 'NoSchedule' }] },
  });
  const agent = mesh.agents.get(leaving)!;
  await until(`${leaving}'s agent reports its node leaving`, 10_000, async () =>
    sampleValue(await agent.scrape(), 'mentat_node_state', { state: 'leaving' }) === 1 ? true : undefined,
  );
  await until(
    'Prometheus has the leaving state',
    20_000,
    async () => ((await prom.query(`mentat_node_state{origin_node="${leaving}",state="leaving"}`)) === 1 ? true : undefined),
    { everyMs: 1000 },
  );
  await agent.stop();
  mesh.agents.delete(leaving);
  // The pod is gone: Kubernetes discovery drops its target.
  await prom.setTargets(names.filter((n) => n !== leaving).map((n) => ({ target: target(mesh, n), labels: { node: n } })));
  await mesh.cluster.execIn(mesh.nodes.get(leaving)!.ns, 'ip', ['link', 'set', 'eth0', 'down']);
}

/**
 * Records every alert until 4 minutes have passed, or the slow node is named and the deletion of `leaving`'s
 * Node (60 s after `startedAt`) is 45 s (9 evaluations) behind us; the alerts seen and when the slow node was first named.
 */
async function watchAlerts(
  prom: PrometheusServer,
  mesh: MeshCluster,
  { slow, leaving, startedAt }: { slow: string; leaving: string; startedAt: number },
): Promise<{ log: AlertLog; slowNamedAt: number | undefined }> {
  const log = new AlertLog(prom);
  const deleteAt = startedAt + 60_000;
  let slowNamedAt: number | undefined;
  let deleted = false;
  while (Date.now() - startedAt < 240_000) {
    if (!deleted && Date.now() >= deleteAt) {
      await mesh.control.delete(leaving);
      deleted = true;
    }
    await log.poll();
    slowNamedAt ??= log.firstNaming(slow);
    if (slowNamedAt !== undefined && deleted && Date.now() - deleteAt > 45_000) break;
    await sleep(SCRAPE_S * 1000);
  }
  return { log, slowNamedAt };
}

/** An alert names the slow node; none names the node being removed or any other; at most 3 in all. */
function assertOnlySlowNamed(
  t: TestContext,
  { log, slowNamedAt }: { log: AlertLog; slowNamedAt: number | undefined },
  { slow, leaving, startedAt }: { slow: string; leaving: string; startedAt: number },
): void {
  const alerts = log.report(startedAt);
  t.diagnostic(`alerts seen: ${alerts}`);
  assert.ok(slowNamedAt !== undefined, `an alert names the slow node ${slow} within 4 minutes: ${alerts}`);
  t.diagnostic(`${slow} named ${Math.round((slowNamedAt - startedAt) / 1000)} s after it turned 5 ms slow`);
  for (const a of log.seen) {
    assert.ok(!namedNodes(a.labels).includes(leaving), `no alert names the node being removed: ${JSON.stringify(a.labels)}`);
    for (const n of namedNodes(a.labels)) assert.ok(n === slow, `no alert blames another node: ${JSON.stringify(a.labels)}`);
  }
  assert.ok(log.distinct <= 3, `at most 3 alerts in all: ${log.distinct}`);
}

/**
 * The recorded score is a mean over 3 minutes, not yet all of them slow ones here (promtool checks
 * its exact value on synthetic series): above the threshold, not exaggerated. What the agents
 * measure over the last 30 s is the 5 ms itself.
 */
async function assertSlowScoreAndMeasured(t: TestContext, prom: PrometheusServer, slow: string): Promise<void> {
  const score = await prom.query(`mentat:node:destination_latency_excess_seconds{node="${slow}",path="node"}`);
  assert.ok(score > 0.0025 && score < 0.006, `the slow node's excess as a destination is above the 2.5 ms threshold and at most about 5 ms: ${score}`);
  const mean = (selector: string) => `(sum(rate(node_latency_sum{${selector}}[30s])) / sum(rate(node_latency_count{${selector}}[30s])))`;
  const measured = await prom.query(`${mean(`destination_node="${slow}"`)} - ${mean(`destination_node!="${slow}"`)}`);
  assert.ok(measured > 0.0045 && measured < 0.0065, `the agents see the slow node about 5 ms slower than the others: ${measured}`);
  t.diagnostic(`${slow}: score ${(score * 1000).toFixed(2)} ms, measured over 30 s ${(measured * 1000).toFixed(2)} ms slower than the others`);
}

test('a slow node is named by one alert while a node scaled down raises none', { timeout: 600_000 }, async (t) => {
  if (!requireNetns(t)) return;
  if (!requirePrometheus(t)) return;
  const { mesh, names, dir } = await startZonedMesh(t, { agents: 12, dirPrefix: 'mentat-localization-', env: {} });
  const prom = await startRulesPrometheus(t, mesh, names, dir);
  await untilEveryPairScraped(prom);

  // The quiet half minute: nothing fires, nothing is pending (rules are evaluated every 5 s).
  await sleep(30_000);
  assert.deepEqual(await prom.alerts(), [], 'a healthy cluster raises nothing');

  const fault = { slow: names[2]!, leaving: names[7]!, startedAt: Date.now() };
  await slowDown(t, mesh, fault.slow);
  await scaleDown(mesh, prom, names, fault.leaving);
  const watched = await watchAlerts(prom, mesh, fault);
  assertOnlySlowNamed(t, watched, fault);
  await assertSlowScoreAndMeasured(t, prom, fault.slow);
});
