/**
 * The agent's manifests as `kubectl kustomize` renders them: the default install (built-in kinds
 * only, in mentat's own namespace), the overlays, and the Prometheus Operator component on its own and
 * composed with each overlay. The checks by part are in manifests-rbac.ts and manifests-daemonset.ts;
 * the image reference and the install steps in manifests-install.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { load } from 'js-yaml';
import { checkDaemonSet } from './manifests-daemonset.js';
import { checkRbac } from './manifests-rbac.js';
import { kubectlOf, METRICS_PORT, OPERATOR_COMPONENT, TARGETS, type Target } from './manifests-targets.js';
import { BUILT_IN, CLUSTER_SCOPED, validate } from './schema.js';
import { kustomize, matches, NAMESPACE, namedPort, one, podSpec, readRepo, REPO, type K8sObject, type Obj } from './render.js';

function checkNamespaces(objects: readonly K8sObject[], where: string): void {
  // Uninstalling deletes this Namespace: it must be mentat's own, never a shared one like monitoring.
  assert.deepEqual(
    objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name),
    [NAMESPACE],
    `${where}: the one Namespace`,
  );
  for (const o of objects) {
    if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, `${where}: ${o.kind} is cluster-scoped`);
    else assert.equal(o.metadata.namespace, NAMESPACE, `${where}: ${o.kind} ${o.metadata.name} namespace`);
  }
}

function checkOperator(objects: readonly K8sObject[], svc: K8sObject, operator: boolean, where: string): void {
  const kinds = objects
    .filter((o) => !(o.kind in BUILT_IN))
    .map((o) => o.kind)
    .sort();
  if (!operator) {
    // What `kubectl apply` of it needs is in every cluster: no CRD.
    assert.deepEqual(kinds, [], `${where}: only built-in kinds`);
    return;
  }
  assert.deepEqual(kinds, ['PrometheusRule', 'ServiceMonitor'], `${where}: the Operator's kinds`);
  const sm = one(objects, 'ServiceMonitor', 'mentat');
  const spec = sm['spec'] as {
    selector: { matchLabels: Record<string, string> };
    endpoints: { port: string; path?: string; relabelings?: Obj[] }[];
    namespaceSelector?: { matchNames?: string[] };
  };
  assert.ok(matches(spec.selector.matchLabels, svc.metadata.labels), 'ServiceMonitor selects the Service');
  assert.ok(spec.endpoints.length > 0);
  for (const e of spec.endpoints) {
    assert.equal(e.port, 'http-metrics');
    assert.equal(e.path ?? '/metrics', '/metrics');
    // MentatAgentDown names the node of the agent that cannot be scraped.
    assert.ok(e.relabelings?.some((r) => r['targetLabel'] === 'node' && (r['sourceLabels'] as string[]).includes('__meta_kubernetes_pod_node_name')));
  }
  if (spec.namespaceSelector?.matchNames) assert.ok(spec.namespaceSelector.matchNames.includes(NAMESPACE));
  // Its spec is the rule file (test/deploy/rules.test.ts checks that byte for byte).
  assert.deepEqual(one(objects, 'PrometheusRule', 'mentat')['spec'], load(readRepo('deploy/rules/mentat.rules.yaml')));
}

function checkAgent(objects: readonly K8sObject[], target: Target, where: string): void {
  validate(objects, where);
  checkNamespaces(objects, where);
  const sa = checkRbac(objects);
  const { labels, c } = checkDaemonSet(objects, sa, target.variant);

  const svc = one(objects, 'Service', 'mentat');
  assert.equal(svc.metadata.labels?.['app'], 'mentat');
  const svcSpec = svc['spec'] as { selector: Record<string, string>; ports: { name: string; port: number; targetPort: unknown }[] };
  assert.ok(matches(svcSpec.selector, labels), 'Service selects the agent pods');
  const svcPort = svcSpec.ports.find((p) => p.name === 'http-metrics');
  assert.ok(svcPort);
  assert.equal(svcPort.port, METRICS_PORT);
  assert.equal(namedPort(c, svcPort.targetPort), METRICS_PORT);
  checkOperator(objects, svc, target.operator, where);

  const dashboard = one(objects, 'ConfigMap', 'mentat-dashboard');
  assert.equal(dashboard.metadata.labels?.['grafana_dashboard'], '1');
  assert.equal((dashboard['data'] as Record<string, string>)['mentat.json'], readRepo('deploy/dashboards/mentat.json'));

  // Every image has an explicit version.
  for (const o of objects.filter((x) => x.kind === 'DaemonSet' || x.kind === 'Deployment')) {
    for (const ct of podSpec(o)['containers'] as Obj[]) {
      assert.match(String(ct['image']), /:[A-Za-z0-9._-]+$/, `${o.kind} ${o.metadata.name}: image without a tag`);
      assert.doesNotMatch(String(ct['image']), /:latest$/);
    }
  }
  if (target.variant === 'host-network') {
    assert.equal(
      one(objects, 'Namespace').metadata.labels?.['pod-security.kubernetes.io/enforce'],
      'privileged',
      'hostNetwork + NET_RAW need a privileged namespace',
    );
  }
  if (target.variant !== 'otlp') assert.equal(objects.filter((o) => o.metadata.name === 'otel-collector').length, 0);
}

for (const target of TARGETS) {
  test(`${target.dir}: renders, and the agent's manifests are right (${target.variant}${target.operator ? ' + Prometheus Operator' : ''})`, (t) => {
    const kubectl = kubectlOf(t);
    if (!kubectl) return;
    checkAgent(kustomize(kubectl, target.dir), target, target.dir);
  });
}

/** A kustomization of the user's own beside a checkout, as deploy/README.md shows: ../deploy/... paths. */
function composed(kubectl: string, resource: string): K8sObject[] {
  const root = mkdtempSync(join(tmpdir(), 'mentat-kustomize-'));
  try {
    symlinkSync(join(REPO, 'deploy'), join(root, 'deploy'));
    mkdirSync(join(root, 'mentat-install'));
    writeFileSync(
      join(root, 'mentat-install', 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../${resource}\ncomponents:\n  - ../${OPERATOR_COMPONENT}\n`,
    );
    return kustomize(kubectl, join(root, 'mentat-install'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

for (const variant of ['host-network', 'otlp'] as const) {
  test(`deploy/overlays/${variant} composes with the Prometheus Operator component`, (t) => {
    const kubectl = kubectlOf(t);
    if (!kubectl) return;
    checkAgent(composed(kubectl, `deploy/overlays/${variant}`), { dir: variant, variant, operator: true }, `${variant} + ${OPERATOR_COMPONENT}`);
  });
}

test('deploy/components/prometheus-operator is a Component with exactly the Operator objects', () => {
  const k = load(readRepo(`${OPERATOR_COMPONENT}/kustomization.yaml`)) as Obj;
  assert.equal(k['kind'], 'Component');
  assert.deepEqual((k['resources'] as string[]).slice().sort(), ['prometheusrule.yaml', 'servicemonitor.yaml']);
});
