/**
 * The OpenTelemetry Collector of otel/ (on its own, and in deploy/overlays/otlp): its manifests and
 * a coherent collector configuration (no otelcol binary can be installed here to validate it).
 */
import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { test } from 'node:test';
import { load } from 'js-yaml';
import { validate } from './schema.js';
import { container, kustomize, matches, NAMESPACE, namedPort, need, one, podSpec, readRepo, type K8sObject, type Obj } from './render.js';

interface CollectorConfig {
  extensions?: Record<string, { endpoint?: string }>;
  receivers: { otlp: { protocols: { grpc: { endpoint: string }; http: { endpoint: string } } } };
  processors: Record<string, unknown>;
  exporters: Record<string, { endpoint?: string }>;
  service: { extensions?: string[]; pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
}

const portOf = (endpoint: string | undefined): number => Number(/:(\d+)$/.exec(endpoint ?? '')?.[1]);

/** The config file the container is told to read, from the ConfigMap mounted where it looks. */
function mountedConfig(objects: readonly K8sObject[], deployment: K8sObject, c: Obj): string {
  const volume = (podSpec(deployment)['volumes'] as { name: string; configMap?: { name: string } }[]).find((v) => v.configMap);
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
  assert.equal(text, readRepo('otel/collector.yaml'));
  return text;
}

function checkPipelines(config: CollectorConfig): void {
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
}

function checkCollector(objects: readonly K8sObject[], where: string): void {
  validate(objects, where);
  const deployment = one(objects, 'Deployment', 'otel-collector');
  const svc = one(objects, 'Service', 'otel-collector');
  for (const o of [deployment, svc]) assert.equal(o.metadata.namespace, NAMESPACE);
  const template = (deployment['spec'] as { template: { metadata: { labels: Record<string, string> } } }).template;
  assert.ok(matches((svc['spec'] as { selector: Record<string, string> }).selector, template.metadata.labels), 'Service selects the collector');
  const c = container(deployment, 'otel-collector');
  assert.match(String(c['image']), /^(docker\.io\/)?otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/);
  const sc = c['securityContext'] as Obj;
  assert.equal(sc['readOnlyRootFilesystem'], true);
  assert.equal(sc['allowPrivilegeEscalation'], false);
  assert.deepEqual((sc['capabilities'] as Obj)['drop'], ['ALL']);
  assert.equal((podSpec(deployment)['securityContext'] as Obj)['runAsNonRoot'], true);

  const config = load(mountedConfig(objects, deployment, c)) as CollectorConfig;
  assert.equal(portOf(config.receivers.otlp.protocols.grpc.endpoint), 4317);
  assert.equal(portOf(config.receivers.otlp.protocols.http.endpoint), 4318);
  assert.ok('memory_limiter' in config.processors && 'batch' in config.processors);
  assert.equal(portOf(config.exporters['prometheus']?.endpoint), 8889);
  assert.ok('debug' in config.exporters);
  const containerPorts = ((c['ports'] as { containerPort: number }[] | undefined) ?? []).map((p) => p.containerPort);
  for (const port of [4317, 4318, 8889]) assert.ok(containerPorts.includes(port), `container port ${port}`);
  const servicePorts = (svc['spec'] as { ports: { port: number }[] }).ports.map((p) => p.port);
  for (const port of [4317, 4318, 8889]) assert.ok(servicePorts.includes(port), `Service port ${port}`);
  checkPipelines(config);
  const health = config.extensions?.['health_check'];
  if (health) {
    const probe = c['livenessProbe'] as { httpGet: { port: unknown } };
    assert.equal(namedPort(c, probe.httpGet.port), portOf(health.endpoint));
  }
}

test('otel: the collector renders on its own', (t) => {
  const kubectl = need(t, 'kubectl', 'kubectl kustomize renders otel/');
  if (!kubectl) return;
  const objects = kustomize(kubectl, 'otel');
  checkCollector(objects, 'otel');
  assert.deepEqual(objects.map((o) => o.kind).sort(), ['ConfigMap', 'Deployment', 'Service']);
});

test('deploy/overlays/otlp: the collector the agents push to', (t) => {
  const kubectl = need(t, 'kubectl', 'kubectl kustomize renders deploy/');
  if (!kubectl) return;
  checkCollector(kustomize(kubectl, 'deploy/overlays/otlp'), 'deploy/overlays/otlp');
});
