/**
 * What the deploy tests share: the repository's files, the real tools (kubectl's kustomize,
 * promtool), and small accessors for the rendered objects.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import { REPO } from '../support/agent-process.js';

export { REPO };
export const CI = process.env['CI'] === 'true';
export const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
/** The namespace of every namespaced object mentat installs: its own, never a shared one. */
export const NAMESPACE = 'mentat';

export type Obj = Record<string, unknown>;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function readRepo(path: string): string {
  return readFileSync(join(REPO, path), 'utf8');
}

function which(cmd: string): string | undefined {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin']) {
    if (dir !== '' && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/** The path of a tool the test needs; skips the test without it, and fails under CI, which installs it. */
export function need(t: { skip(message: string): void }, cmd: string, from: string): string | undefined {
  const path = which(cmd);
  if (path) return path;
  assert.ok(!CI, `${cmd} is missing under CI (${from}; .ci/run installs it)`);
  t.skip(`${cmd} not found (${from})`);
  return undefined;
}

export function run(cmd: string, args: readonly string[], cwd = REPO): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function docs(text: string): K8sObject[] {
  return loadAll(text).filter((d): d is K8sObject => isObj(d));
}

const rendered = new Map<string, K8sObject[]>();

/** `kubectl kustomize DIR` (relative to the repository or absolute), parsed; cached per directory. */
export function kustomize(kubectl: string, dir: string): K8sObject[] {
  let objects = rendered.get(dir);
  if (!objects) {
    const r = run(kubectl, ['kustomize', dir]);
    assert.equal(r.status, 0, `kubectl kustomize ${dir} failed: ${r.stderr}`);
    rendered.set(dir, (objects = docs(r.stdout)));
  }
  return structuredClone(objects);
}

export function one(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(found.length, 1, `expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

/** The agent DaemonSet's pod template labels, read from deploy/base/daemonset.yaml: what its pods carry. */
export function agentPodLabels(): Record<string, string> {
  const ds = one(docs(readRepo('deploy/base/daemonset.yaml')), 'DaemonSet');
  const labels = ((ds['spec'] as Obj | undefined)?.['template'] as Obj | undefined)?.['metadata'] as { labels?: Record<string, string> } | undefined;
  assert.ok(labels?.labels && Object.keys(labels.labels).length > 0, 'deploy/base/daemonset.yaml: the pod template has labels');
  return { ...labels.labels };
}

export function podSpec(obj: K8sObject): Obj {
  const template = (obj['spec'] as Obj | undefined)?.['template'];
  assert.ok(isObj(template) && isObj(template['spec']), `${obj.kind} ${obj.metadata.name} has a pod template`);
  return template['spec'];
}

export function container(obj: K8sObject, name: string): Obj {
  const found = (podSpec(obj)['containers'] as Obj[]).find((c) => c['name'] === name);
  assert.ok(found, `${obj.kind} ${obj.metadata.name} has a container ${name}`);
  return found;
}

type EnvVar = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };

export function envOf(c: Obj): EnvVar[] {
  const env = (c['env'] as EnvVar[] | undefined) ?? [];
  const names = env.map((e) => e.name);
  assert.equal(new Set(names).size, names.length, `duplicate env names: ${names.join(', ')}`);
  return env;
}

/** The environment the kubelet would give the container: downward API values from `facts`, $(VAR) expanded. */
export function resolvedEnv(c: Obj, facts: Record<string, string>): Record<string, string> {
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

export function namedPort(c: Obj, port: unknown): number {
  if (typeof port === 'number') return port;
  const found = ((c['ports'] as Obj[] | undefined) ?? []).find((p) => p['name'] === port);
  assert.ok(found, `no container port named ${String(port)}`);
  return found['containerPort'] as number;
}

export function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}
