/**
 * The published node list with real processes, one agent per network namespace and two controller
 * replicas (MENTAT_ROLE=controller), against the in-repo API server enforcing the RBAC rendered from
 * deploy/ per service account: only the leader reads Nodes; an API blip sends agents to their
 * fallback and they leave it soon after the API server is back; the leader killed is replaced;
 * hostile lists written with an admin token cost nothing but a warning; what the controller finds
 * forged it repairs, and an agent started after that syncs.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { encodeShard, INDEX_NAME, SHARD_COUNT, shardEntries, shardName } from '../../src/kube/node-list.js';
import type { NodeEntry } from '../../src/types.js';
import { kustomize, need } from '../deploy/render.js';
import { makeNode, sumLoad, type ObjectInput } from '../fake-apiserver/index.js';
import { sampleValue } from '../support/exposition.js';
import { freePort, launchAgent, until, type Agent } from '../support/fault-client.js';
import { startMeshCluster, twoZones, type MeshCluster } from '../support/mesh-cluster.js';
import { requireNetns } from '../support/netns.js';
import { AGENT_USER, CONTROLLER_USER, NS } from '../support/node-list-parts.js';
import { permissionsFromManifests } from '../support/rbac.js';

const LEASE_S = 6;
/** The DaemonSet's memory settings: an agent that outgrows them dies, as it would in its 128Mi pod. */
const SHIPPED = { NODE_OPTIONS: '--max-semi-space-size=2 --max-old-space-size=64', MALLOC_ARENA_MAX: '1' };
const AGENTS = 6;

interface Setup {
  readonly mesh: MeshCluster;
  readonly names: string[];
  readonly controllers: Map<string, Agent>;
  readonly startController: (name: string) => Promise<Agent>;
  readonly knownBy: (name: string) => Promise<number | undefined>;
  readonly modeOf: (name: string) => Promise<string | undefined>;
  /** Until every agent knows `n` nodes besides its own. */
  readonly everyAgentKnows: (n: number, timeoutMs: number, what: string) => Promise<true>;
  /** Until every agent's list comes from `mode`. */
  readonly everyAgentIn: (mode: string, timeoutMs: number, what: string) => Promise<true>;
}

/** The cluster, or undefined when the test was skipped (no namespaces, no kubectl: never under CI). */
async function setup(t: TestContext): Promise<Setup | undefined> {
  if (!requireNetns(t)) return undefined;
  const kubectl = need(t, 'kubectl', 'the machine image');
  if (!kubectl) return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'mentat-node-list-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const mesh = await startMeshCluster(t, {
    agents: AGENTS,
    zone: twoZones,
    dir,
    userPerAgent: true,
    env: { POD_NAMESPACE: NS, MENTAT_LEASE_DURATION: `${LEASE_S}s`, MENTAT_PROBE_INTERVAL: '500ms', ...SHIPPED },
  });
  const rbac = permissionsFromManifests(kustomize(kubectl, 'deploy'));
  const names = [...mesh.nodes.keys()];
  for (const name of names) await mesh.control.setPermissions(`agent-${name}`, rbac.get(AGENT_USER));
  const controllers = new Map<string, Agent>();
  t.after(() => Promise.all([...controllers.values()].map((c) => c.stop(3000).catch(() => undefined))));
  const startController = async (name: string) => {
    await mesh.control.setPermissions(name, rbac.get(CONTROLLER_USER));
    const env = {
      MENTAT_ROLE: 'controller',
      POD_NAMESPACE: NS,
      POD_NAME: name,
      NODE_NAME: 'infra',
      MENTAT_LEASE_DURATION: `${LEASE_S}s`,
      KUBECONFIG: await mesh.control.kubeconfigFor({ user: name }),
    };
    const c = launchAgent(mesh.cluster, mesh.infra.ns, mesh.control, await freePort(), env, [], mesh.infra.ipv4);
    controllers.set(name, c);
    return c;
  };
  const knownBy = async (name: string) => sampleValue(await mesh.agents.get(name)!.scrape(), 'mentat_targets', { state: 'known' });
  const modeOf = async (name: string) => {
    const samples = await mesh.agents.get(name)!.scrape();
    return ['published', 'direct', 'fallback'].find((mode) => sampleValue(samples, 'mentat_node_source', { mode }) === 1);
  };
  const everyAgentKnows = (n: number, timeoutMs: number, what: string) =>
    until(what, timeoutMs, async () => ((await Promise.all(names.map((n) => knownBy(n)))).every((k) => k === n) ? true : undefined), {
      everyMs: 500,
      context: () => names.map((n2) => `${n2}: ${mesh.agents.get(n2)!.describe()}`).join('\n'),
    });
  const everyAgentIn = (mode: string, timeoutMs: number, what: string) =>
    until(what, timeoutMs, async () => ((await Promise.all(names.map((n) => modeOf(n)))).every((m) => m === mode) ? true : undefined), { everyMs: 250 });
  return { mesh, names, controllers, startController, knownBy, modeOf, everyAgentKnows, everyAgentIn };
}

const leader = async (s: Setup) => {
  for (const [name, c] of s.controllers) {
    if (!c.alive()) continue;
    const samples = await c.scrape().catch(() => []);
    if (sampleValue(samples, 'mentat_controller_leader', { pod: name }) === 1) return name;
  }
  return undefined;
};

test(
  `${AGENTS} agents and 2 controllers: only the leader reads Nodes; an API blip of three lease durations ends the agents' fallback soon after; the leader killed is replaced`,
  { timeout: 240_000 },
  async (t) => {
    const s = await setup(t);
    if (!s) return;
    const { mesh, names } = s;
    await s.startController('ctl-a');
    await s.startController('ctl-b');
    for (const name of names) mesh.start(name);
    await s.everyAgentKnows(AGENTS - 1, 60_000, 'every agent knows the other nodes');
    const first = await until('a leader', 20_000, () => leader(s));

    // Kubelets report status: only the leader receives it; agents read the index and nothing else.
    await mesh.control.heartbeatsStart(2000);
    await mesh.control.resetLoad();
    await new Promise((r) => setTimeout(r, 2 * LEASE_S * 1000));
    const load = await mesh.control.load();
    for (const name of names) {
      assert.equal(sumLoad(load, { user: `agent-${name}`, resource: 'nodes' }).requests, 0, `${name} reads no Node`);
      assert.equal(sumLoad(load, { user: `agent-${name}`, resource: 'leases' }).requests, 0, `${name} reads no lease`);
    }
    assert.ok(sumLoad(load, { user: first, resource: 'nodes' }).bytes > 1000, 'the leader watches Nodes');
    t.diagnostic(`per agent over ${2 * LEASE_S} s: ${names.map((n) => `${sumLoad(load, { user: `agent-${n}` }).bytes} B`).join(', ')}`);

    await apiBlip(t, s);

    // The leader dies without giving the lease up: the other replica takes over; a node added now reaches every agent.
    const current = (await leader(s))!;
    await s.controllers.get(current)!.kill();
    const killedAt = Date.now();
    const next = await until('the other replica leads', 3 * LEASE_S * 1000, async () => {
      const l = await leader(s);
      return l && l !== current ? l : undefined;
    });
    const tookMs = Date.now() - killedAt;
    t.diagnostic(`controller ${current} killed; ${next} took over in ${tookMs} ms (lease ${LEASE_S} s)`);
    assert.ok(tookMs < LEASE_S * 1000 + 3000, `within the lease duration and a retry period: ${tookMs} ms`);
    await mesh.control.upsertRaw(makeNode('node-late', mesh.infra.ipv4));
    await s.everyAgentKnows(AGENTS, 30_000, 'the added node reaches every agent');
  },
);

/** The API server answers 503 and drops every watch for three lease durations: every agent falls back, and soon after it is back follows the list again (the kubelets' status posts stop at its end). */
async function apiBlip(t: TestContext, s: Setup): Promise<void> {
  const { mesh, names } = s;
  await mesh.control.failNext(1_000_000_000, 503);
  await mesh.control.call({ op: 'cutWatches' });
  await s.everyAgentIn('fallback', 3 * LEASE_S * 1000, 'every agent falls back to watching Nodes');
  await new Promise((r) => setTimeout(r, 3 * LEASE_S * 1000));
  await mesh.control.failNext(0, 503);
  const backAt = Date.now();
  await s.everyAgentIn('published', 4 * LEASE_S * 1000, 'every agent back on the published list');
  const recoveredMs = Date.now() - backAt;
  t.diagnostic(`after the blip every agent left its fallback in ${recoveredMs} ms (lease ${LEASE_S} s)`);
  assert.ok(recoveredMs < 2 * LEASE_S * 1000, `agents leave the fallback soon after the API server is back: ${recoveredMs} ms`);
  await mesh.control.resetLoad();
  await new Promise((r) => setTimeout(r, 3000));
  const after = await mesh.control.load();
  await mesh.control.heartbeatsStop();
  for (const name of names) assert.equal(sumLoad(after, { user: `agent-${name}`, resource: 'nodes' }).requests, 0, `${name} no longer watches Nodes`);
  for (const name of names) {
    const probes = sampleValue(await mesh.agents.get(name)!.scrape(), 'node_latency_probes_total', {
      destination_node: names.find((n) => n !== name)!,
      result: 'success',
    });
    assert.ok((probes ?? 0) > 0, `${name} probes its peers`);
  }
}

/** The index and shards for `entries`, written as an admin would (anyone with ConfigMap write in the namespace). */
async function forge(
  mesh: MeshCluster,
  entries: readonly NodeEntry[],
  index: Record<string, unknown> = {},
  shardData?: (i: number, data: string) => string,
): Promise<void> {
  const shards = shardEntries(entries).map((b) => encodeShard(b));
  for (const [i, shard] of shards.entries()) {
    const data = shardData ? shardData(i, shard.data) : shard.data;
    await mesh.control.putObject('configmaps', NS, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: shardName(i), namespace: NS },
      binaryData: { 'nodes.json.gz': data },
    } as ObjectInput);
  }
  const body = { v: 2, shards: shards.map((x) => x.hash), nodes: entries.length, refreshS: 2, renewed: new Date().toISOString(), ...index };
  await mesh.control.putObject('configmaps', NS, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: INDEX_NAME, namespace: NS },
    data: { 'index.json': JSON.stringify(body) },
  } as ObjectInput);
}

test(
  `hostile node lists shown to ${AGENTS} agents cost a warning, not a crash, a flood or memory; the controller repairs them and a new agent syncs`,
  { timeout: 240_000 },
  async (t) => {
    const s = await setup(t);
    if (!s) return;
    const { mesh, names } = s;
    const real: NodeEntry[] = names.map((n) => ({
      name: n,
      state: 'active',
      zone: mesh.zoneOf(n),
      createdAtS: Math.floor(Date.now() / 1000) - 3600,
      addresses: [{ type: 'InternalIP', address: mesh.nodes.get(n)!.ipv4 }],
    }));
    // No controller: the admin's list is the only one.
    await forge(mesh, real);
    for (const name of names) mesh.start(name);
    await s.everyAgentKnows(AGENTS - 1, 60_000, 'every agent has the real list');
    for (const [what, write, knownOk] of hostileLists(mesh, real)) {
      await write();
      await new Promise((r) => setTimeout(r, 3000));
      for (const name of names) await assertUnharmed(s, name, what, knownOk);
      t.diagnostic(`${what}: agents alive, RSS ${names.map((n) => mesh.agents.get(n)!.rssMiB().toFixed(0)).join('/')} MiB`);
    }
    for (const name of names) {
      const agent = mesh.agents.get(name)!;
      assert.ok(agent.warnings(/not valid|could not read the node list/).length >= 1, `${name} said why it kept its list`);
    }

    // A controller comes: within one check the index and every shard are its own again, and an agent started now syncs.
    await s.startController('ctl-a');
    const realIndex = async () => {
      const index = (await mesh.control.getObject('configmaps', NS, INDEX_NAME)) as unknown as { data?: Record<string, string> } | undefined;
      const parsed = JSON.parse(index?.data?.['index.json'] ?? '{}') as { nodes?: number; refreshS?: number };
      return parsed.nodes === AGENTS && parsed.refreshS === 2 ? true : undefined;
    };
    await until('the controller rewrote the index', 30_000, realIndex);
    for (let i = 0; i < SHARD_COUNT; i++) assert.ok(await mesh.control.getObject('configmaps', NS, shardName(i)));
    const restarted = names[0]!;
    await mesh.agents.get(restarted)!.stop();
    mesh.start(restarted);
    await until('an agent started after the repair syncs', 30_000, async () => ((await s.knownBy(restarted)) === AGENTS - 1 ? true : undefined));
    assert.equal(await s.modeOf(restarted), 'published');
  },
);

/** An admin's hostile lists, each with what an agent may know after it; the real entries stay in each. */
function hostileLists(mesh: MeshCluster, real: readonly NodeEntry[]): Array<[string, () => Promise<void>, (known: number) => boolean]> {
  const outside = mesh.infra.ipv4; // an address of the test's own network that no agent's node has
  const fake = (count: number, zone: (i: number) => string | undefined): NodeEntry[] =>
    Array.from({ length: count }, (_, i) => {
      const z = zone(i);
      return {
        name: `fake-${String(i).padStart(5, '0')}`,
        state: 'active',
        addresses: [{ type: 'InternalIP', address: outside }],
        ...(z ? { zone: z } : {}),
      };
    });
  return [
    ['90 entries on one outside address', () => forge(mesh, [...real, ...fake(90, () => undefined)]), (k) => k <= AGENTS - 1 + 90],
    ['10 000 zones', () => forge(mesh, [...real, ...fake(10_000, (i) => `zone-${i}`)]), () => true],
    [
      'loopback, multicast and link-local addresses',
      () =>
        forge(mesh, [
          ...real,
          ...['127.0.0.1', '224.0.0.1', '169.254.0.1', '::1', 'ff02::1', 'fe80::1'].map((a, i): NodeEntry => ({
            name: `bad-${i}`,
            state: 'active',
            addresses: [{ type: 'InternalIP', address: a }],
          })),
        ]),
      () => true,
    ],
    ['a 60 MB inflation', () => forge(mesh, real, {}, (i, d) => (i === 0 ? Buffer.from(gzip60MB()).toString('base64') : d)), () => true],
    ['the wrong version', () => forge(mesh, real, { v: 1 }), () => true],
    ['a hash that does not match', () => forge(mesh, real, {}, (i, d) => (i === 1 ? encodeShard([]).data : d)), () => true],
    ['a refresh period of a day', () => forge(mesh, real, { refreshS: 86_400 }), () => true],
  ];
}

/** Agent `name` after a hostile list: alive, quick to scrape, within its pod, still probing every real peer, and quiet. */
async function assertUnharmed(s: Setup, name: string, what: string, knownOk: (known: number) => boolean): Promise<void> {
  const { mesh, names } = s;
  const agent = mesh.agents.get(name)!;
  assert.ok(agent.alive(), `${what}: ${name} is alive\n${agent.describe()}`);
  const startedAt = Date.now();
  const samples = await agent.scrape();
  const scrapeMs = Date.now() - startedAt;
  assert.ok(scrapeMs < 2000, `${what}: ${name} answers /metrics in ${scrapeMs} ms (its event loop is not stalled)`);
  const rss = agent.rssMiB();
  assert.ok(rss < 128, `${what}: ${name} within a 128Mi pod: ${rss.toFixed(0)} MiB`);
  // Every real peer is still probed, and at most one destination on the outside address.
  for (const peer of names.filter((n) => n !== name)) {
    assert.ok((sampleValue(samples, 'node_latency_probes_total', { destination_node: peer, result: 'success' }) ?? 0) > 0, `${what}: ${name} probes ${peer}`);
  }
  const onOutside = new Set(
    samples
      .filter((x) => x.name === 'node_latency_probes_total' && /^(fake|bad)-/.test(x.labels['destination_node'] ?? ''))
      .map((x) => x.labels['destination_node']),
  );
  assert.ok(onOutside.size <= 1, `${what}: ${name} probes at most one made-up node, on the one address: ${[...onOutside].join(', ')}`);
  assert.ok(knownOk(sampleValue(samples, 'mentat_targets', { state: 'known' }) ?? 0), `${what}: ${name} known nodes`);
  const lines = agent.lines().length;
  assert.ok(lines < 400, `${what}: ${name} logged ${lines} lines in all, not one per entry`);
}

/** 60 MB of JSON-looking text, gzipped to ~60 kB: what a shard must not be allowed to inflate to. */
function gzip60MB(): Buffer {
  return gzipSync(Buffer.concat([Buffer.from('{"v":2,"nodes":[["'), Buffer.alloc(60 * 1024 * 1024, 0x61)]));
}
