/** The agent's DaemonSet as rendered: its pod and container, their security per variant, and the config its environment gives. */
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config.js';
import { baseImage, METRICS_PORT, type Variant } from './manifests-targets.js';
import { container, envOf, matches, NAMESPACE, namedPort, one, PKG, podSpec, resolvedEnv, type K8sObject, type Obj } from './render.js';

const OTLP_ENDPOINT = 'http://otel-collector.mentat.svc:4318';

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

/** The DaemonSet, its container, security and config; returns its pod labels and the container. */
export function checkDaemonSet(objects: readonly K8sObject[], sa: K8sObject, variant: Variant): { labels: Record<string, string>; c: Obj } {
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
