/**
 * The agent's manifests as `kubectl kustomize` renders them: the default install (built-in kinds
 * only, in mentat's own namespace), the overlays, the Prometheus Operator component on its own and
 * composed with each overlay, and the one image reference.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test, type TestContext } from 'node:test';
import { load } from 'js-yaml';
import { permissionsFromManifests, serviceAccountUser } from '../support/rbac.js';
import { loadConfig } from '../../src/config.js';
import { AGENT_POD_SELECTOR } from '../../src/kube/pod-watch.js';
import { BUILT_IN, CLUSTER_SCOPED, validate } from './schema.js';
import {
  container,
  envOf,
  kustomize,
  matches,
  NAMESPACE,
  namedPort,
  need,
  one,
  PKG,
  podSpec,
  readRepo,
  REPO,
  resolvedEnv,
  type K8sObject,
  type Obj,
} from './render.js';

const METRICS_PORT = 2112;
const OTLP_ENDPOINT = 'http://otel-collector.mentat.svc:4318';
const OPERATOR_COMPONENT = 'deploy/components/prometheus-operator';

type Variant = 'default' | 'host-network' | 'otlp';
interface Target {
  readonly dir: string;
  readonly variant: Variant;
  /** With the Prometheus Operator's ServiceMonitor and PrometheusRule. */
  readonly operator: boolean;
}

const TARGETS: readonly Target[] = [
  { dir: 'deploy', variant: 'default', operator: false },
  { dir: 'deploy/base', variant: 'default', operator: false },
  { dir: 'deploy/overlays/host-network', variant: 'host-network', operator: false },
  { dir: 'deploy/overlays/otlp', variant: 'otlp', operator: false },
  { dir: 'deploy/overlays/prometheus-operator', variant: 'default', operator: true },
];

function kubectlOf(t: TestContext): string | undefined {
  return need(t, 'kubectl', 'kubectl kustomize renders deploy/');
}

/** The image as deploy/base/kustomization.yaml's `images:` sets it: the one place of the reference. */
function baseImage(): { name: string; newName: string; newTag: string } {
  const k = load(readRepo('deploy/base/kustomization.yaml')) as { images: { name: string; newName: string; newTag: string }[] };
  assert.equal(k.images.length, 1);
  return k.images[0]!;
}

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

function checkRbac(objects: readonly K8sObject[]): K8sObject {
  // Exactly get/list/watch on nodes, bound to both service accounts (agents read Nodes only in a fallback).
  const role = one(objects, 'ClusterRole', 'mentat');
  assert.deepEqual(role['rules'], [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }]);
  const sa = one(objects, 'ServiceAccount', 'mentat');
  const shards = Array.from({ length: 16 }, (_, i) => `mentat-nodes-${String(i).padStart(2, '0')}`);
  // Agents: the index and the shards, read by name; no write of any kind, anywhere.
  assert.deepEqual(one(objects, 'Role', 'mentat')['rules'], [
    { apiGroups: [''], resources: ['configmaps'], resourceNames: ['mentat-nodes'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['configmaps'], resourceNames: shards, verbs: ['get'] },
  ]);
  const agentVerbs = new Set((permissionsFromManifests(objects).get(serviceAccountUser(NAMESPACE, 'mentat')) ?? []).map((p) => p.verb));
  assert.deepEqual([...agentVerbs].sort(), ['get', 'list', 'watch'], 'an agent may write nothing');
  // The controller: its election lease and the list it writes, by name (create cannot be named).
  assert.deepEqual(one(objects, 'Role', 'mentat-controller')['rules'], [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['mentat-controller'], verbs: ['get', 'update'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
    { apiGroups: [''], resources: ['configmaps'], resourceNames: ['mentat-nodes', ...shards], verbs: ['get', 'update'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  ]);
  // The controller finds the agent pods by this selector: the DaemonSet's pods must carry every label of it.
  const podLabels = (one(objects, 'DaemonSet', 'mentat')['spec'] as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
  for (const term of AGENT_POD_SELECTOR.split(',')) {
    const [key, value] = term.split('=') as [string, string];
    assert.equal(podLabels[key], value, `the agent pods carry ${term}, which the controller selects them by`);
  }
  assert.deepEqual(one(objects, 'RoleBinding', 'mentat')['subjects'], [{ kind: 'ServiceAccount', name: 'mentat', namespace: 'mentat' }]);
  assert.deepEqual(one(objects, 'RoleBinding', 'mentat-controller')['subjects'], [{ kind: 'ServiceAccount', name: 'mentat-controller', namespace: 'mentat' }]);
  const binding = one(objects, 'ClusterRoleBinding', 'mentat');
  assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'mentat' });
  assert.deepEqual(binding['subjects'], [
    { kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace },
    { kind: 'ServiceAccount', name: 'mentat-controller', namespace: sa.metadata.namespace },
  ]);
  checkController(objects);
  return sa;
}

/** The writer of the node list: two replicas of the same image as the controller role, locked down like the agent, its own service account. */
function checkController(objects: readonly K8sObject[]): void {
  const deployment = one(objects, 'Deployment', 'mentat-controller');
  assert.equal((deployment['spec'] as Obj)['replicas'], 2);
  const pod = podSpec(deployment);
  assert.equal(pod['serviceAccountName'], 'mentat-controller');
  const c = container(deployment, 'mentat-controller');
  const cSc = c['securityContext'] as Obj;
  assert.equal(cSc['readOnlyRootFilesystem'], true);
  assert.equal(cSc['allowPrivilegeEscalation'], false);
  assert.deepEqual((cSc['capabilities'] as Obj)['drop'], ['ALL']);
  assert.equal((pod['securityContext'] as Obj)['runAsNonRoot'], true);
  const env = resolvedEnv(c, { 'spec.nodeName': 'node-a', 'metadata.name': 'mentat-controller-abc', 'metadata.namespace': NAMESPACE });
  const { config, warnings } = loadConfig({ env, argv: [], hostname: 'pod-hostname' });
  assert.deepEqual(warnings, []);
  assert.equal(config.role, 'controller');
  assert.equal(config.nodeList.namespace, NAMESPACE);
  assert.equal(config.nodeList.identity, 'mentat-controller-abc');
  const limits = ((c['resources'] as Obj)['limits'] as Obj) ?? {};
  assert.equal(limits['memory'], '256Mi');
}

function checkSecurity(pod: Obj, c: Obj, variant: Variant): void {
  const podSc = (pod['securityContext'] as Obj | undefined) ?? {};
  const cSc = (c['securityContext'] as Obj | undefined) ?? {};
  const effective = (key: string): unknown => cSc[key] ?? podSc[key];
  assert.equal(cSc['readOnlyRootFilesystem'], true);
  assert.equal(cSc['allowPrivilegeEscalation'], false);
  assert.notEqual(cSc['privileged'], true);
  assert.deepEqual(effective('seccompProfile'), { type: 'RuntimeDefault' });
  const caps = (cSc['capabilities'] as { add?: string[]; drop?: string[] } | undefined) ?? {};
  assert.deepEqual(caps.drop, ['ALL']);
  const sysctls = (podSc['sysctls'] as { name: string; value: string }[] | undefined) ?? [];
  const icmpMode = envOf(c).find((e) => e.name === 'MENTAT_ICMP_MODE')?.value;
  if (variant === 'host-network') {
    assert.equal(pod['hostNetwork'], true);
    assert.equal(pod['dnsPolicy'], 'ClusterFirstWithHostNet');
    // Root with NET_RAW only: raw sockets are the fallback where the host's ping_group_range refuses datagram ICMP.
    assert.equal(effective('runAsUser'), 0);
    assert.equal(effective('runAsNonRoot'), false);
    assert.deepEqual(caps.add, ['NET_RAW']);
    assert.deepEqual(
      sysctls.filter((s) => s.name.startsWith('net.')),
      [],
      'the kubelet rejects net sysctls on host-network pods',
    );
    assert.equal(icmpMode, 'auto', 'datagram ICMP where the host allows it (kernel timestamps), raw otherwise');
  } else {
    assert.notEqual(pod['hostNetwork'], true);
    assert.equal(effective('runAsNonRoot'), true);
    assert.equal(effective('runAsUser'), 65532);
    assert.equal(effective('runAsGroup'), 65532);
    assert.equal(caps.add, undefined, 'a non-root container gets no added capability anyway (kubernetes#56374)');
    const range = sysctls.find((s) => s.name === 'net.ipv4.ping_group_range');
    assert.ok(range, 'pod sysctl net.ipv4.ping_group_range');
    const [low, high] = range.value.trim().split(/\s+/).map(Number) as [number, number];
    assert.ok(low <= 65532 && 65532 <= high, `ping_group_range "${range.value}" must cover gid 65532`);
    assert.equal(icmpMode, 'dgram');
  }
}

/** The agent's own config loader accepts the container's environment, with no warning about unknown settings. */
function checkConfig(c: Obj, variant: Variant): void {
  const env = resolvedEnv(c, { 'spec.nodeName': 'node-a', 'metadata.name': 'mentat-x1y2z', 'metadata.namespace': NAMESPACE });
  const { config, warnings } = loadConfig({ env, argv: (c['args'] as string[] | undefined) ?? [], hostname: 'pod-hostname' });
  assert.deepEqual(warnings, []);
  assert.equal(config.nodeName, 'node-a');
  assert.equal(config.metricsPort, METRICS_PORT);
  assert.equal(config.icmpMode, env['MENTAT_ICMP_MODE']);
  assert.notEqual(config.discovery, 'static');
  assert.equal(config.targets.length, 0);
  assert.match(env['OTEL_RESOURCE_ATTRIBUTES'] ?? '', /^(?!.*\$\().*$/, 'OTEL_RESOURCE_ATTRIBUTES has unresolved references');
  if (variant === 'otlp') {
    assert.equal(config.otlp?.endpoint, OTLP_ENDPOINT);
    assert.equal(config.otlp?.protocol, 'http/protobuf');
  } else {
    assert.equal(config.otlp, undefined);
  }
}

function checkDaemonSet(objects: readonly K8sObject[], sa: K8sObject, variant: Variant): { labels: Record<string, string>; c: Obj } {
  // A DaemonSet, never a Deployment, for the agent.
  assert.equal(objects.filter((o) => o.kind === 'Deployment' && o.metadata.name === 'mentat').length, 0);
  const ds = one(objects, 'DaemonSet', 'mentat');
  const dsSpec = ds['spec'] as Obj;
  const labels = (dsSpec['template'] as { metadata: { labels: Record<string, string> } }).metadata.labels;
  const pod = podSpec(ds);
  assert.ok(matches((dsSpec['selector'] as { matchLabels: Record<string, string> }).matchLabels, labels));
  assert.deepEqual(dsSpec['updateStrategy'], { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } });
  assert.equal(pod['serviceAccountName'], sa.metadata.name);
  assert.notEqual(pod['automountServiceAccountToken'], false);
  assert.equal(pod['enableServiceLinks'], false, 'service links would inject MENTAT_* variables');
  assert.equal(pod['terminationGracePeriodSeconds'], 10);
  assert.deepEqual(pod['tolerations'], [{ operator: 'Exists' }]);
  assert.equal((pod['containers'] as unknown[]).length, 1);

  const c = container(ds, 'mentat');
  const image = baseImage();
  assert.equal(c['image'], `${image.newName}:${PKG.version}`);
  assert.deepEqual(
    envOf(c).find((e) => e.name === 'NODE_NAME'),
    { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
  );
  const liveness = c['livenessProbe'] as { httpGet: { path: string; port: unknown } };
  const readiness = c['readinessProbe'] as { httpGet: { path: string; port: unknown } };
  assert.equal(liveness.httpGet.path, '/healthz');
  assert.equal(readiness.httpGet.path, '/readyz');
  assert.equal(namedPort(c, liveness.httpGet.port), METRICS_PORT);
  assert.equal(namedPort(c, readiness.httpGet.port), METRICS_PORT);
  assert.equal(namedPort(c, 'http-metrics'), METRICS_PORT);
  assert.deepEqual(c['resources'], { requests: { cpu: '20m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } });
  checkSecurity(pod, c, variant);
  checkConfig(c, variant);
  return { labels, c };
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

test('the image reference lives in deploy/base/kustomization.yaml only, tagged with package.json version', (t) => {
  const image = baseImage();
  assert.equal(image.newTag, PKG.version);
  assert.equal(image.name, 'mentat', 'the manifests name the image only; images: sets registry and tag');
  const yamlFiles = (dir: string): string[] =>
    readdirSync(join(REPO, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
    );
  const naming = yamlFiles('deploy').filter((f) => readRepo(f).includes(image.newName));
  assert.deepEqual(
    naming.map((f) => relative('.', f)),
    ['deploy/base/kustomization.yaml'],
  );
  const kubectl = kubectlOf(t);
  if (!kubectl) return;
  const images = new Set(TARGETS.map((x) => String(container(one(kustomize(kubectl, x.dir), 'DaemonSet', 'mentat'), 'mentat')['image'])));
  assert.deepEqual([...images], [`${image.newName}:${PKG.version}`]);
});

test('deploy/components/prometheus-operator is a Component with exactly the Operator objects', () => {
  const k = load(readRepo(`${OPERATOR_COMPONENT}/kustomization.yaml`)) as Obj;
  assert.equal(k['kind'], 'Component');
  assert.deepEqual((k['resources'] as string[]).slice().sort(), ['prometheusrule.yaml', 'servicemonitor.yaml']);
});

/** The shell blocks of a Markdown section (from its heading to the next heading of its level or higher). */
function shellBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  assert.notEqual(start, -1, `heading ${heading}`);
  const level = /^#+/.exec(heading)![0].length;
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`\\n#{1,${level}} `));
  const section = end === -1 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

test('the install steps of README.md and deploy/README.md run as written: no placeholders, every -k path renders, the right namespace', (t) => {
  const blocks = [
    ...shellBlocks(readRepo('README.md'), '## Install in a cluster'),
    ...['## Install', '## Verify', '## Uninstall'].flatMap((h) => shellBlocks(readRepo('deploy/README.md'), h)),
  ];
  assert.ok(blocks.length >= 3);
  const kubectl = kubectlOf(t);
  for (const block of blocks) {
    const code = block.replace(/#.*$/gm, '');
    // <registry> is a shell redirection when pasted.
    assert.doesNotMatch(code, /<[a-z][\w -]*>/i, `a placeholder in:\n${block}`);
    // mentat's namespace, but for the ConfigMaps that go to Prometheus' or Grafana's.
    for (const line of code.split('\n').filter((l) => !/-k deploy\/(rules|dashboards)\b/.test(l))) {
      for (const m of line.matchAll(/\s-n\s+(\S+)/g)) assert.equal(m[1], NAMESPACE, `kubectl -n ${m[1]} in:\n${block}`);
    }
    // A background port-forward is given time to listen before curl uses it.
    if (/port-forward[^\n]*&/.test(code)) assert.match(code, /port-forward[^\n]*&[^\n]*\n?\s*sleep \d/, `port-forward & curl races:\n${block}`);
    if (!kubectl) continue;
    for (const m of code.matchAll(/\s-k\s+(deploy\S*)/g)) assert.ok(kustomize(kubectl, m[1]!).length > 0, m[1]);
  }
});
