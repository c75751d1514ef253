/**
 * The node list's two roles in one test process, against the in-repo API server with the RBAC
 * rendered from deploy/: controllers (NodeListController, as the mentat-controller Deployment's
 * service account) and agents (NodeSource, as the DaemonSet's), each with a kubeconfig of its own
 * and a log the test can read.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { ObjectClient } from '../../src/kube/api.js';
import { loadKubeClient, type KubeClient } from '../../src/kube/client.js';
import { NodeListController } from '../../src/kube/controller.js';
import { ListWriter } from '../../src/kube/list-writer.js';
import { NodeSource } from '../../src/kube/node-source.js';
import { RateLimitedLog, type Log } from '../../src/log.js';
import { NodeTable } from '../../src/mesh/node-table.js';
import { systemClock, type MeshNode, type NodeEntry } from '../../src/types.js';
import { kustomize } from '../deploy/render.js';
import { FakeApiServer, makeNode, type Permission } from '../fake-apiserver/index.js';
import { permissionsFromManifests, serviceAccountUser } from './rbac.js';

export const NS = 'mentat';
export const AGENT_USER = serviceAccountUser(NS, 'mentat');
export const CONTROLLER_USER = serviceAccountUser(NS, 'mentat-controller');

/** Entry i of a test list: node-i, on 198.18.0.(i mod 250) unless given (a benchmarking range: never routed). */
export const listEntry = (i: number, address = `198.18.0.${i % 250}`): NodeEntry => ({
  name: `node-${i}`,
  state: 'active',
  addresses: [{ type: 'InternalIP', address }],
});

/** The controller's writer over `kubeConfig`, writing in NS, with the client it uses; it asks `isLeader` before every write. */
export async function listWriterOn(
  kubeConfig: KubeConfig,
  isLeader: () => boolean,
): Promise<{ client: KubeClient; objects: ObjectClient; writer: ListWriter }> {
  const client = await loadKubeClient();
  const objects = new ObjectClient(client, kubeConfig, 5000);
  return { client, objects, writer: new ListWriter({ objects, namespace: NS, isLeader, wallNow: Date.now, leaseDurationMs: 15_000 }) };
}

export interface Recorded {
  readonly lines: Array<{ level: string; message: string; fields: object }>;
  readonly log: Log;
}

export function recordingLog(): Recorded {
  const lines: Recorded['lines'] = [];
  const record = (level: string) => (fields: object, message: string) => lines.push({ level, message, fields });
  return { lines, log: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') } };
}

export interface TestAgent extends Recorded {
  readonly name: string;
  readonly source: NodeSource;
  nodes: MeshNode[];
  known(): string[];
}

export interface TestController extends Recorded {
  readonly name: string;
  readonly controller: NodeListController;
}

export interface NodeListParts {
  readonly server: FakeApiServer;
  /** The bearer token of the agents' service account, for requests of the test's own. */
  readonly agentToken: string;
  agent(name: string, opts?: { refreshS?: number }): Promise<TestAgent>;
  /** `user`: a user of its own with the controller's permissions, so that a test can cut one replica off. */
  controller(name: string, opts?: { leaseMs?: number; verifyEveryMs?: number; user?: string }): Promise<TestController>;
  /** N nodes node0..node{N-1} on 198.18.0.x (a benchmarking range: never routed), two zones. */
  nodes(count: number): string[];
}

/** What the agents and controllers of one test share: the server, its RBAC, one client, the stops to run at the end. */
interface Shared {
  readonly server: FakeApiServer;
  readonly client: KubeClient;
  readonly rbac: ReadonlyMap<string, Permission[]>;
  readonly stops: Array<() => Promise<void>>;
  kubeConfigFor(user: string): Promise<KubeConfig>;
}

// Backoffs and retries of at most 50 ms: the tests wait for outcomes, not for production delays.
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.min(ms, 50)));

/** A started NodeSource for agent `name`, as the DaemonSet's service account. */
async function startAgent(shared: Shared, name: string, opts: { refreshS?: number }): Promise<TestAgent> {
  const rec = recordingLog();
  const agent: TestAgent = {
    name,
    ...rec,
    nodes: [],
    known: () => agent.nodes.map((n) => n.name).sort(),
    source: new NodeSource({
      client: shared.client,
      kubeConfig: await shared.kubeConfigFor(AGENT_USER),
      table: new NodeTable('first', name, false),
      onNodes: (nodes) => (agent.nodes = nodes),
      log: rec.log,
      warnings: new RateLimitedLog(rec.log, 60_000, () => Date.now()),
      delay,
      clock: systemClock,
      random: Math.random,
      published: { namespace: NS, defaultRefreshS: opts.refreshS ?? 1 },
    }),
  };
  shared.stops.push(() => agent.source.stop());
  agent.source.start();
  return agent;
}

/** A started NodeListController `name`, as the controller's service account or `opts.user` with its permissions. */
async function startController(shared: Shared, name: string, opts: { leaseMs?: number; verifyEveryMs?: number; user?: string }): Promise<TestController> {
  const rec = recordingLog();
  const user = opts.user ?? CONTROLLER_USER;
  shared.server.setPermissions(user, shared.rbac.get(CONTROLLER_USER));
  const controller = new NodeListController({
    client: shared.client,
    kubeConfig: await shared.kubeConfigFor(user),
    namespace: NS,
    identity: name,
    leaseDurationMs: opts.leaseMs ?? 3000,
    clock: systemClock,
    wallNow: Date.now,
    random: Math.random,
    delay,
    log: rec.log,
    warnings: new RateLimitedLog(rec.log, 60_000, () => Date.now()),
    ...(opts.verifyEveryMs ? { verifyEveryMs: opts.verifyEveryMs } : {}),
  });
  shared.stops.push(() => controller.stop());
  controller.start();
  return { name, controller, ...rec };
}

/** Starts the API server with deploy/'s RBAC; everything stops when the test ends. */
export async function nodeListParts(t: TestContext, kubectl: string): Promise<NodeListParts> {
  const server = await FakeApiServer.start();
  const dir = await mkdtemp(join(tmpdir(), 'mentat-node-list-'));
  const client = await loadKubeClient();
  const stops: Array<() => Promise<void>> = [];
  t.after(async () => {
    await Promise.all(stops.map((s) => s().catch(() => undefined)));
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const rbac = permissionsFromManifests(kustomize(kubectl, 'deploy'));
  for (const [user, permissions] of rbac) server.setPermissions(user, permissions);
  const tokens = new Map<string, string>();
  const kubeConfigFor = async (user: string) => {
    const kc = new KubeConfig();
    kc.loadFromFile(await server.writeKubeconfig(dir, { user, token: tokens.get(user) ?? `token-${user}` }));
    tokens.set(user, `token-${user}`);
    return kc;
  };
  await kubeConfigFor(AGENT_USER);
  const shared: Shared = { server, client, rbac, stops, kubeConfigFor };
  return {
    server,
    agentToken: tokens.get(AGENT_USER)!,
    agent: (name, opts = {}) => startAgent(shared, name, opts),
    controller: (name, opts = {}) => startController(shared, name, opts),
    nodes(count) {
      const names = Array.from({ length: count }, (_, i) => `node${i}`);
      for (const [i, name] of names.entries()) server.upsertNode(makeNode(name, `198.18.0.${10 + i}`, { 'topology.kubernetes.io/zone': `z${i % 2}` }));
      return names;
    },
  };
}
