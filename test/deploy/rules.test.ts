/**
 * The alerts: one rule file (deploy/rules/mentat.rules.yaml) checked and unit-tested by promtool,
 * the PrometheusRule generated from it, its ConfigMap, and the plain-Prometheus config that loads it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dump, load } from 'js-yaml';
import { AGENT_METRICS, LOCALIZATION_ALERTS, metricsIn } from './promql.js';
import { kustomize, need, one, readRepo, REPO, run, type Obj } from './render.js';

const RULES = 'deploy/rules/mentat.rules.yaml';
const RULE_TESTS = 'deploy/rules/mentat.rules.test.yaml';
const PROMETHEUS_RULE = 'deploy/components/prometheus-operator/prometheusrule.yaml';
const GENERATOR = 'deploy/rules/prometheusrule.sh';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
}

interface Group {
  name: string;
  interval?: string;
  rules: Rule[];
}

function groups(): Group[] {
  return (load(readRepo(RULES)) as { groups: Group[] }).groups;
}

function rules(): Rule[] {
  return groups().flatMap((g) => g.rules);
}

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'mentat-rules-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("alerts: the rules name degraded nodes and paths, cover the agents and unmeasured nodes on the agent's metrics, and promtool accepts them", (t) => {
  const all = rules();
  const alerts = new Map(all.filter((r) => r.alert).map((r) => [r.alert, r]));
  for (const name of [
    'MentatNodeDegraded',
    'MentatPodNetworkDegraded',
    'MentatPathDegraded',
    'MentatMtuBlackHole',
    'MentatPathMtuBlackHole',
    'MentatAgentDown',
    'MentatNodeWithoutAgent',
  ])
    assert.ok(alerts.has(name), name);
  assert.equal(alerts.get('MentatNodeDegraded')?.for, '2m');
  assert.equal(alerts.get('MentatPodNetworkDegraded')?.for, '2m');
  assert.equal(alerts.get('MentatPathDegraded')?.for, '3m');
  // The MTU alerts' time to fire (the arithmetic in the rule file) assumes their group's 30 s and a 1-minute hold.
  const mtu = groups().find((g) => g.name === 'mentat-mtu');
  assert.equal(mtu?.interval, '30s');
  for (const name of ['MentatMtuBlackHole', 'MentatPathMtuBlackHole']) {
    assert.equal(alerts.get(name)?.for, '1m', name);
    assert.ok(
      mtu.rules.some((r) => r.alert === name),
      `${name} is evaluated with its records, in group mentat-mtu`,
    );
  }
  assert.match(alerts.get('MentatAgentDown')?.expr ?? '', /up\{job="mentat"\} == 0/);
  const recorded = new Set(all.flatMap((r) => (r.record ? [r.record] : [])));
  for (const r of all) {
    assert.ok(typeof r.expr === 'string' && (typeof r.alert === 'string' || typeof r.record === 'string'));
    if (r.alert) assert.ok(r.labels?.['severity'], `${r.alert}: severity`);
    // kube-state-metrics' kube_node_info is the one series from elsewhere (MentatNodeNotMeasured).
    for (const metric of metricsIn(r.expr))
      assert.ok(AGENT_METRICS.has(metric) || recorded.has(metric) || metric === 'kube_node_info', `${r.alert ?? r.record}: unknown metric ${metric}`);
  }
  const promtool = need(t, 'promtool', 'Debian package prometheus');
  if (!promtool) return;
  const r = run(promtool, ['check', 'rules', RULES]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('alerts: promtool unit tests (loss, latency, agent down, nodes without agent or probes, the pod network, MTU black holes), one at least for every alert', (t) => {
  const tests = load(readRepo(RULE_TESTS)) as { rule_files: string[]; tests: { alert_rule_test?: { alertname: string }[] }[] };
  assert.deepEqual(tests.rule_files, ['mentat.rules.yaml']);
  // The localization alerts are tested on 20 generated nodes (test/deploy/localization.test.ts).
  const tested = new Set([...tests.tests.flatMap((x) => x.alert_rule_test ?? []).map((a) => a.alertname), ...LOCALIZATION_ALERTS]);
  for (const r of rules()) assert.ok(!r.alert || tested.has(r.alert), `${r.alert} has no promtool test in ${RULE_TESTS}`);
  const promtool = need(t, 'promtool', 'Debian package prometheus');
  if (!promtool) return;
  const r = run(promtool, ['test', 'rules', RULE_TESTS]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test(`the PrometheusRule is ${GENERATOR}'s output for the rule file`, () => {
  const committed = readRepo(PROMETHEUS_RULE);
  withTempDir((dir) => {
    const out = join(dir, 'prometheusrule.yaml');
    const r = run('sh', [GENERATOR, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(committed, readFileSync(out, 'utf8'), `${PROMETHEUS_RULE} is stale: run \`sh ${GENERATOR}\` after editing ${RULES}`);
  });
  const rule = load(committed) as { kind: string; spec: unknown };
  assert.equal(rule.kind, 'PrometheusRule');
  assert.deepEqual(rule.spec, load(readRepo(RULES)));
});

test('deploy/rules renders the rule file as the ConfigMap mentat-rules, for plain Prometheus in Kubernetes', (t) => {
  const kubectl = need(t, 'kubectl', 'kubectl kustomize renders deploy/');
  if (!kubectl) return;
  const objects = kustomize(kubectl, 'deploy/rules');
  assert.deepEqual(
    objects.map((o) => o.kind),
    ['ConfigMap'],
  );
  const cm = one(objects, 'ConfigMap', 'mentat-rules');
  assert.equal(cm.metadata.namespace, undefined, 'applied to the namespace of the Prometheus that mounts it');
  assert.equal((cm['data'] as Record<string, string>)['mentat.rules.yaml'], readRepo(RULES));
});

interface ScrapeConfig {
  job_name: string;
  kubernetes_sd_configs?: { role: string; namespaces?: { names: string[] } }[];
  static_configs?: unknown[];
  relabel_configs: { source_labels?: string[]; target_label?: string; action?: string; regex?: string }[];
}

test('deploy/prometheus.yml: the scrape job the alerts expect, and promtool accepts it with the rule file', (t) => {
  const config = load(readRepo('deploy/prometheus.yml')) as { rule_files: string[]; scrape_configs: ScrapeConfig[] };
  assert.deepEqual(config.rule_files, ['rules/mentat.rules.yaml']);
  const job = config.scrape_configs.find((s) => s.job_name === 'mentat');
  assert.ok(job, 'job_name mentat: the alerts select up{job="mentat"}');
  assert.deepEqual(
    job.kubernetes_sd_configs?.map((c) => [c.role, c.namespaces?.names]),
    [['pod', ['mentat']]],
  );
  const node = job.relabel_configs.find((r) => r.target_label === 'node');
  assert.deepEqual(node?.source_labels, ['__meta_kubernetes_pod_node_name'], 'MentatAgentDown names the node');
  assert.ok(
    job.relabel_configs.some((r) => r.action === 'keep' && r.regex === 'http-metrics'),
    'only the metrics port',
  );
  const promtool = need(t, 'promtool', 'Debian package prometheus');
  if (!promtool) return;
  const asIs = run(promtool, ['check', 'config', 'deploy/prometheus.yml']);
  if (asIs.status === 0) return;
  // Debian builds Prometheus without Kubernetes discovery: check the rest with a static target instead.
  assert.match(asIs.stdout + asIs.stderr, /field kubernetes_sd_configs not found/, asIs.stdout + asIs.stderr);
  t.diagnostic('this promtool has no kubernetes_sd_configs: checked with a static target in its place');
  withTempDir((dir) => {
    const copy = load(readRepo('deploy/prometheus.yml')) as { rule_files: string[]; scrape_configs: Obj[] };
    copy.rule_files = [join(REPO, 'deploy', config.rule_files[0]!)];
    for (const s of copy.scrape_configs) {
      delete s['kubernetes_sd_configs'];
      s['static_configs'] = [{ targets: ['10.0.0.1:2112'] }];
    }
    writeFileSync(join(dir, 'prometheus.yml'), dump(copy));
    const r = run(promtool, ['check', 'config', join(dir, 'prometheus.yml')]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});
