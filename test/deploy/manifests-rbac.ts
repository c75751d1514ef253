/** The manifests' permissions: the agent's and the controller's RBAC, and the controller's Deployment locked down like the agent. */
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config.js';
import { AGENT_POD_SELECTOR } from '../../src/kube/pod-watch.js';
import { permissionsFromManifests, serviceAccountUser } from '../support/rbac.js';
import { container, NAMESPACE, one, podSpec, resolvedEnv, type K8sObject, type Obj } from './render.js';

/** The roles and their bindings for both service accounts, and the controller; returns the agent's service account. */
export function checkRbac(objects: readonly K8sObject[]): K8sObject {
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
