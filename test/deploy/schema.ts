/**
 * The rendered objects against the Kubernetes OpenAPI models that @kubernetes/client-node ships
 * (already a dependency): no unknown field, no missing required one, the right types. No API
 * server is reachable here, and kubectl validates only against one.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isObj, type K8sObject } from './render.js';

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

/** Built-in kinds: the model and the apiVersion of each. Anything else needs a CRD in the cluster. */
export const BUILT_IN: Record<string, { model: string; apiVersion: string }> = {
  Namespace: { model: 'V1Namespace', apiVersion: 'v1' },
  ServiceAccount: { model: 'V1ServiceAccount', apiVersion: 'v1' },
  ClusterRole: { model: 'V1ClusterRole', apiVersion: 'rbac.authorization.k8s.io/v1' },
  ClusterRoleBinding: { model: 'V1ClusterRoleBinding', apiVersion: 'rbac.authorization.k8s.io/v1' },
  Role: { model: 'V1Role', apiVersion: 'rbac.authorization.k8s.io/v1' },
  RoleBinding: { model: 'V1RoleBinding', apiVersion: 'rbac.authorization.k8s.io/v1' },
  DaemonSet: { model: 'V1DaemonSet', apiVersion: 'apps/v1' },
  Deployment: { model: 'V1Deployment', apiVersion: 'apps/v1' },
  Service: { model: 'V1Service', apiVersion: 'v1' },
  ConfigMap: { model: 'V1ConfigMap', apiVersion: 'v1' },
};
/** The Prometheus Operator's kinds (deploy/components/prometheus-operator), not judged by a model. */
export const OPERATOR_KINDS: Record<string, string> = {
  ServiceMonitor: 'monitoring.coreos.com/v1',
  PrometheusRule: 'monitoring.coreos.com/v1',
};
export const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);

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

/** Unique objects, known kinds with their apiVersion, DNS names, and the built-in ones schema-valid. */
export function validate(objects: readonly K8sObject[], where: string): void {
  const errors: string[] = [];
  const ids = new Set<string>();
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    assert.ok(!ids.has(id), `${where}: ${id} twice`);
    ids.add(id);
    assert.equal(o.apiVersion, BUILT_IN[o.kind]?.apiVersion ?? OPERATOR_KINDS[o.kind], `${where}: ${o.kind} ${o.metadata.name}: apiVersion`);
    assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${where}: ${id}: name`);
    const model = BUILT_IN[o.kind]?.model;
    if (model) checkSchema(o, model, `${where}: ${o.kind}/${o.metadata.name}`, errors);
  }
  assert.deepEqual(errors, [], errors.join('\n'));
}
