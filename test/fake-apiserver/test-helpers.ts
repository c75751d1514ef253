/**
 * What the tests of the fake API server (test/fake-apiserver/*.test.ts) and the client-node
 * contract tests (test/kube/client-contract.test.ts) share: a started server with a kubeconfig and
 * a CoreV1Api, agents with tokens of their own, nodes, leases and published node lists to put in,
 * requests with plain fetch, a ListWatch's callbacks recorded, and raw GETs and watches on
 * connections of their own that count the bytes their socket read.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  ListWatch,
  type V1ConfigMap,
  type V1Lease,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node';
import { FakeApiServer, makeNode, type FakeApiServerOptions } from './index.js';

/** A started server, a kubeconfig for its default token, and a client built from it. */
export interface Env {
  server: FakeApiServer;
  kc: KubeConfig;
  api: CoreV1Api;
  dir: string;
}

/** Starts a server for one test; it stops, and its kubeconfig folder goes, when the test ends. */
export async function setup(t: TestContext, opts: FakeApiServerOptions = {}): Promise<Env> {
  const server = await FakeApiServer.start(opts);
  const dir = await mkdtemp(join(tmpdir(), 'mentat-fake-apiserver-'));
  t.after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(dir));
  return { server, kc, api: kc.makeApiClient(CoreV1Api), dir };
}

/** `node-0042`: names that sort in creation order. */
export function nodeName(i: number): string {
  return `node-${String(i).padStart(4, '0')}`;
}

/** Puts `count` minimal Ready nodes in, named by `nodeName`, each with an InternalIP of its own. */
export function seed(server: FakeApiServer, count: number, labels?: Record<string, string>): void {
  for (let i = 0; i < count; i++) {
    server.upsertNode(makeNode(nodeName(i), `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, labels));
  }
}

/** The fields that tell client-node's errors apart: HTTP status, body, name, and the cause's code. */
export function statusOf(err: unknown): { code?: number; statusCode?: number; body?: unknown; name?: string; causeCode?: string } {
  if (typeof err !== 'object' || err === null) return {};
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; name?: unknown; cause?: { code?: unknown } };
  return {
    ...(typeof e.code === 'number' ? { code: e.code } : {}),
    ...(typeof e.statusCode === 'number' ? { statusCode: e.statusCode } : {}),
    ...(e.body !== undefined ? { body: e.body } : {}),
    ...(typeof e.name === 'string' ? { name: e.name } : {}),
    ...(typeof e.cause?.code === 'string' ? { causeCode: e.cause.code } : {}),
  };
}

export const NS = 'mentat';
export const AGENT = 'system:serviceaccount:mentat:mentat';
export const LIST_LABELS = { 'mentat.dev/node-list': 'v1' };
export const LIST_SELECTOR = 'mentat.dev/node-list=v1';
export const LEASE = 'mentat-publisher';
export const PINNED = `metadata.name=${LEASE}`;
export const CM_PATH = `/api/v1/namespaces/${NS}/configmaps`;
export const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;
export const POD_PATH = `/api/v1/namespaces/${NS}/pods`;

/** One agent's identity: its own token, and the clients built from its kubeconfig. */
export interface Client {
  kc: KubeConfig;
  token: string;
  core: CoreV1Api;
  coord: CoordinationV1Api;
}

/** A kubeconfig for `user` with a token of its own, and the clients built from it. */
export async function clientFor(env: Env, user: string): Promise<Client> {
  const kc = new KubeConfig();
  kc.loadFromFile(await env.server.writeKubeconfig(env.dir, { user }));
  const token = kc.getCurrentUser()?.token;
  assert.ok(token, 'the kubeconfig carries a token');
  assert.notEqual(token, env.server.token, 'a user of its own gets a token of its own');
  return { kc, token, core: kc.makeApiClient(CoreV1Api), coord: kc.makeApiClient(CoordinationV1Api) };
}

/** The fields of API bodies these tests read. */
export interface Wire {
  kind?: string;
  apiVersion?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; creationTimestamp?: string; labels?: Record<string, string> };
  status?: string;
  reason?: string;
  message?: string;
  code?: number;
  details?: { name?: string; group?: string; kind?: string; uid?: string };
  spec?: { holderIdentity?: string; renewTime?: string };
  binaryData?: Record<string, string>;
}

/** A request with plain fetch and a bearer token; a body that is not a string is sent as JSON. */
export async function send(
  server: FakeApiServer,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  opts: { contentType?: string; signal?: AbortSignal } = {},
): Promise<{ status: number; body: Wire }> {
  const res = await fetch(server.url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': opts.contentType ?? 'application/json' } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Wire) };
}

/** A Lease held by `holder`, as a candidate writes it (renewTime a MicroTime). */
export function lease(holder: string, name = LEASE, namespace = NS): V1Lease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new V1MicroTime() },
  };
}

/** A lease candidate's ListWatch: the leases of NS, list and watch pinned to LEASE by fieldSelector. */
export function pinnedLeaseWatch(client: Client): ListWatch<V1Lease> {
  const list = () => client.coord.listNamespacedLease({ namespace: NS, fieldSelector: PINNED });
  return new ListWatch<V1Lease>(LEASE_PATH, new Watch(client.kc), list, false, undefined, PINNED);
}

/** An agent's ListWatch of published node lists: the ConfigMaps of NS labelled LIST_LABELS. */
export function nodeListWatch(client: Client): ListWatch<V1ConfigMap> {
  const list = () => client.core.listNamespacedConfigMap({ namespace: NS, labelSelector: LIST_SELECTOR });
  return new ListWatch<V1ConfigMap>(CM_PATH, new Watch(client.kc), list, false, LIST_SELECTOR);
}

/** The published form: gzip JSON of a node list, base64 in binaryData. */
export function published(names: string[]): string {
  return gzipSync(JSON.stringify(names)).toString('base64');
}

/** Records a ListWatch's callbacks as `add NAME`, `update NAME`, `delete NAME`. */
export function record<T extends KubernetesObject>(t: TestContext, lw: ListWatch<T>): { events: string[]; errors: unknown[] } {
  const out = { events: [] as string[], errors: [] as unknown[] };
  for (const verb of ['add', 'update', 'delete'] as const) lw.on(verb, (o: T) => out.events.push(`${verb} ${o.metadata?.name ?? ''}`));
  let stopping = false;
  lw.on('error', (err: unknown) => {
    if (!stopping) out.errors.push(err);
  });
  t.after(async () => {
    stopping = true;
    await lw.stop();
  });
  return out;
}

/** A GET on its own connection; `bytesRead` is everything the client's socket received. */
export function rawGet(url: string, token: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; bytesRead: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { Authorization: `Bearer ${token}`, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), bytesRead: req.socket?.bytesRead ?? -1 }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A watch on its own connection, counting event lines and the bytes its socket received. */
export interface RawWatch {
  readonly lines: string[];
  /** Complete event lines received so far. */
  count(): number;
  bytesRead(): number;
  close(): void;
}

/** Resolves once the watch's response head has arrived; the watch is closed when the test ends. */
export function rawWatch(t: TestContext, url: string, token: string, keepLines = true): Promise<RawWatch> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { Authorization: `Bearer ${token}` }, agent: false }, (res) => {
      const lines: string[] = [];
      let count = 0;
      let partial = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        count += parts.length;
        if (keepLines) lines.push(...parts);
      });
      res.on('error', () => undefined);
      const w: RawWatch = { lines, count: () => count, bytesRead: () => req.socket?.bytesRead ?? -1, close: () => req.destroy() };
      t.after(() => w.close());
      resolve(w);
    });
    req.on('error', reject);
    req.end();
  });
}
