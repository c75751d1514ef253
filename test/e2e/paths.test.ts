/**
 * The two paths and MTU health (issue 22) with real processes: four nodes, each with a pod namespace
 * behind it (a veth pair and a routed pod CIDR: the extra hop a CNI makes), an agent in each pod, and
 * a controller that watches the agent pods through the in-repo API server (RBAC rendered from
 * deploy/) and publishes their IPs; each node masquerades its pod's traffic to node addresses, as
 * most CNIs do. A broken pod route shows on path="pod" only, both ways; a bridge port at
 * 1400 is an MTU black hole that only the full-size probes see; a router with 1400 on its far side
 * answers fragmentation needed, and the gauge reads 1400.
 *
 * /metrics is read from inside each pod namespace (the agent listens on the pod's address): an MTU
 * black hole also swallows the large TCP segments of a scrape from elsewhere, as it would in a cluster.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseExposition, sampleValue, type Sample } from '../support/exposition.js';
import { until, type Agent } from '../support/fault-client.js';
import type { MeshCluster } from '../support/mesh-cluster.js';
import { startPodMesh } from '../support/pod-mesh.js';
import { promtoolParse, strictParse } from '../support/strict-exposition.js';

const AGENTS = 4;
const PATHS = ['node', 'pod'] as const;
const MTU_INTERVAL_S = 2;
/** The MTU of the broken link: a bridge port, or a router's far side. */
const SMALL_MTU = 1400;

interface Paths {
  readonly mesh: MeshCluster;
  readonly names: string[];
  readonly controller: Agent;
  /** The agent's /metrics body, fetched inside its pod namespace. */
  body(name: string): Promise<string>;
  scrape(name: string): Promise<Sample[]>;
  snapshot(): Promise<Snapshot>;
}

/** Every agent's samples at one moment. */
type Snapshot = Map<string, Sample[]>;

/** A sample of `origin`'s /metrics (0 when absent: counters start at zero). */
function value(s: Snapshot, origin: string, name: string, labels: Record<string, string>): number {
  return sampleValue(s.get(origin) ?? [], name, { origin_node: origin, ...labels }) ?? 0;
}

function grown(a: Snapshot, b: Snapshot, origin: string, name: string, labels: Record<string, string>): number {
  return value(b, origin, name, labels) - value(a, origin, name, labels);
}

/**
 * The cluster, the controller and the agents, once every agent probes every peer on both paths
 * (and, with MTU probes, has one ok MTU probe to each); undefined when the test was skipped.
 * `before` runs before any agent starts (a router must be in place before the pod's agent binds).
 */
async function setup(t: TestContext, opts: { before?: (mesh: MeshCluster) => Promise<void>; mtu?: boolean } = {}): Promise<Paths | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'mentat-paths-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const started = await startPodMesh(t, {
    agents: AGENTS,
    dir,
    env: { MENTAT_PROBE_INTERVAL: '500ms', MENTAT_MTU_PROBE_INTERVAL: opts.mtu ? `${MTU_INTERVAL_S}s` : '0s' },
    ...(opts.before ? { before: opts.before } : {}),
  });
  if (!started) return undefined;
  const { mesh, names, controller, body } = started;
  const scrape = async (name: string) => parseExposition(await body(name));
  const snapshot = async (): Promise<Snapshot> => new Map(await Promise.all(names.map(async (n) => [n, await scrape(n)] as const)));
  const since = Date.now();
  await until(
    `every agent probes every peer on both paths${opts.mtu ? ', MTU probes included' : ''}`,
    60_000,
    async () => {
      const s = await snapshot();
      for (const o of names) {
        for (const d of names.filter((n) => n !== o)) {
          for (const path of PATHS) {
            if (value(s, o, 'node_latency_probes_total', { destination_node: d, path, result: 'success' }) === 0) return undefined;
            if (opts.mtu && value(s, o, 'mentat_path_mtu_probes_total', { destination_node: d, path, result: 'ok' }) === 0) {
              // A router's pair is never ok: its first too_big will do.
              if (value(s, o, 'mentat_path_mtu_probes_total', { destination_node: d, path, result: 'too_big' }) === 0) return undefined;
            }
          }
        }
      }
      return true;
    },
    {
      everyMs: 1000,
      context: () => [`controller: ${controller.describe()}`, ...names.map((n) => `${n}: ${mesh.agents.get(n)!.describe()}`)].join('\n'),
    },
  );
  t.diagnostic(`${AGENTS} agents probe each other on both paths ${Date.now() - since} ms after they started`);
  return { mesh, names, controller, body, scrape, snapshot };
}

/** Polls every agent until `enough` holds of their samples; returns the snapshot where it did. */
function snapshotUntil(p: Paths, what: string, ms: number, enough: (now: Snapshot) => boolean): Promise<Snapshot> {
  return until(
    what,
    ms,
    async () => {
      const now = await p.snapshot();
      return enough(now) ? now : undefined;
    },
    { everyMs: 1000 },
  );
}

test(
  `a broken pod route to one of ${AGENTS} nodes: its path="pod" series lose every probe, its path="node" series and every other pair stay clean`,
  { timeout: 120_000 },
  async (t) => {
    const p = await setup(t);
    if (!p) return;
    const x = p.names.at(-1)!;
    const others = p.names.filter((n) => n !== x);
    const probes = (s: Snapshot, o: string, d: string, path: string, result: string) =>
      value(s, o, 'node_latency_probes_total', { destination_node: d, path, result });

    // Every node but the API server's drops what it would route to x's pod CIDR; x's node address still answers.
    await p.mesh.cluster.setPodRoute(x, 'broken', [p.mesh.infra.name]);
    await sleep(1500); // the probes in flight when the route went (timeout: the 500 ms interval)
    const before = await p.snapshot();
    const after = await snapshotUntil(p, `every peer loses 6 pod-path probes to ${x}`, 20_000, (now) =>
      others.every((o) => probes(now, o, x, 'pod', 'timeout') - probes(before, o, x, 'pod', 'timeout') >= 6),
    );
    const d = (o: string, dst: string, path: string, result: string) => probes(after, o, dst, path, result) - probes(before, o, dst, path, result);
    for (const o of others) {
      assert.ok(d(o, x, 'pod', 'timeout') >= 6, `${o} → ${x} pod: lost`);
      assert.equal(d(o, x, 'pod', 'success'), 0, `${o} → ${x} pod: nothing answered`);
      assert.equal(grown(before, after, o, 'node_latency_count', { destination_node: x, path: 'pod' }), 0, `${o} → ${x} pod: no RTT recorded`);
      assert.equal(d(o, x, 'node', 'timeout'), 0, `${o} → ${x} node: clean`);
      assert.ok(d(o, x, 'node', 'success') > 0, `${o} → ${x} node: answered`);
      assert.ok(grown(before, after, o, 'node_latency_count', { destination_node: x, path: 'node' }) > 0, `${o} → ${x} node: RTTs recorded`);
      for (const dst of others.filter((n) => n !== o)) {
        for (const path of PATHS) {
          assert.equal(d(o, dst, path, 'timeout'), 0, `${o} → ${dst} ${path}: clean`);
          assert.ok(d(o, dst, path, 'success') > 0, `${o} → ${dst} ${path}: answered`);
        }
      }
    }
    // x's own agent: the other pods' answers need the broken route; the nodes' answers come to x's node (masqueraded).
    for (const dst of others) {
      assert.ok(d(x, dst, 'pod', 'timeout') > 0, `${x} → ${dst} pod: lost`);
      assert.equal(d(x, dst, 'pod', 'success'), 0, `${x} → ${dst} pod: nothing answered`);
      assert.equal(d(x, dst, 'node', 'timeout'), 0, `${x} → ${dst} node: clean`);
      assert.ok(d(x, dst, 'node', 'success') > 0, `${x} → ${dst} node: answered`);
    }
    const strict = strictParse(await p.body(others[0]!));
    assert.ok(strict.names.includes('node_latency_probes_total'));
    assert.equal(promtoolParse(await p.body(others[0]!)) ?? '', '', 'promtool reads the exposition');

    // The route back: the pod path answers again.
    await p.mesh.cluster.setPodRoute(x, 'ok');
    const restored = await p.snapshot();
    await snapshotUntil(p, `every peer reaches ${x}'s pod again`, 10_000, (now) =>
      others.every((o) => probes(now, o, x, 'pod', 'success') > probes(restored, o, x, 'pod', 'success')),
    );
  },
);

test(
  `an MTU black hole: one of ${AGENTS} nodes' bridge port at ${SMALL_MTU}: its full-size probes are lost both ways, small probes and every other pair are fine`,
  { timeout: 120_000 },
  async (t) => {
    const p = await setup(t, { mtu: true });
    if (!p) return;
    const x = p.names.at(-1)!;
    const mtu = (s: Snapshot, o: string, dst: string, path: string, result: string) =>
      value(s, o, 'mentat_path_mtu_probes_total', { destination_node: dst, path, result });
    const pairs = p.names.flatMap((o) =>
      p.names.filter((dst) => dst !== o).flatMap((dst) => PATHS.map((path) => ({ o, dst, path, broken: o === x || dst === x }))),
    );

    await p.mesh.cluster.setBridgePortMtu(x, SMALL_MTU);
    await sleep((MTU_INTERVAL_S + 1) * 1000); // the MTU probes in flight, and a scheduled round, pass
    const before = await p.snapshot();
    const after = await snapshotUntil(p, `every pair with ${x} loses 2 MTU probes`, 6 * MTU_INTERVAL_S * 1000, (now) =>
      pairs.filter((q) => q.broken).every((q) => mtu(now, q.o, q.dst, q.path, 'lost') - mtu(before, q.o, q.dst, q.path, 'lost') >= 2),
    );
    const d = (o: string, dst: string, path: string, result: string) => mtu(after, o, dst, path, result) - mtu(before, o, dst, path, result);
    for (const { o, dst, path, broken } of pairs) {
      const what = `${o} → ${dst} ${path}`;
      if (broken) {
        assert.ok(d(o, dst, path, 'lost') >= 2, `${what}: full-size probes lost`);
        assert.equal(d(o, dst, path, 'ok'), 0, `${what}: no full-size probe answered`);
        // Small probes to and from x still succeed.
        const small = (result: string) =>
          value(after, o, 'node_latency_probes_total', { destination_node: dst, path, result }) -
          value(before, o, 'node_latency_probes_total', { destination_node: dst, path, result });
        assert.equal(small('timeout'), 0, `${what}: small probes not lost`);
        assert.ok(small('success') > 0, `${what}: small probes answered`);
      } else {
        assert.equal(d(o, dst, path, 'lost'), 0, `${what}: no full-size probe lost`);
        assert.ok(d(o, dst, path, 'ok') >= 1, `${what}: full-size probes answered`);
      }
      assert.equal(d(o, dst, path, 'too_big') + d(o, dst, path, 'error'), 0, `${what}: a black hole says nothing`);
      assert.equal(sampleValue(after.get(o)!, 'mentat_path_mtu_bytes', { origin_node: o, destination_node: dst, path }), undefined, `${what}: no MTU reported`);
    }
    t.diagnostic(
      `MTU probes lost, by origin, after the port went to ${SMALL_MTU}: ${p.names.map((o) => `${o}: ${pairs.filter((q) => q.o === o).reduce((a, q) => a + d(q.o, q.dst, q.path, 'lost'), 0)}`).join(', ')}`,
    );
    const strict = strictParse(await p.body(x));
    assert.ok(strict.names.includes('mentat_path_mtu_probes_total'));
  },
);

test(
  `fragmentation needed: a router with ${SMALL_MTU} on its far side before one of ${AGENTS} pods: mentat_path_mtu_bytes reads ${SMALL_MTU} and the probes count too_big`,
  { timeout: 120_000 },
  async (t) => {
    let x = '';
    const p = await setup(t, {
      mtu: true,
      before: async (mesh) => {
        x = [...mesh.nodes.keys()].at(-1)!;
        await mesh.cluster.insertPodRouter(x, SMALL_MTU);
      },
    });
    if (!p) return;
    const others = p.names.filter((n) => n !== x);
    const after = await snapshotUntil(p, `every peer counts 2 too_big to ${x}'s pod`, 6 * MTU_INTERVAL_S * 1000, (now) =>
      others.every((o) => value(now, o, 'mentat_path_mtu_probes_total', { destination_node: x, path: 'pod', result: 'too_big' }) >= 2),
    );
    for (const o of others) {
      const mtu = (dst: string, path: string, result: string) => value(after, o, 'mentat_path_mtu_probes_total', { destination_node: dst, path, result });
      const gauge = (dst: string, path: string) => sampleValue(after.get(o)!, 'mentat_path_mtu_bytes', { origin_node: o, destination_node: dst, path });
      assert.equal(gauge(x, 'pod'), SMALL_MTU, `${o} → ${x} pod: the MTU the router named`);
      assert.ok(mtu(x, 'pod', 'too_big') >= 2, `${o} → ${x} pod: too_big`);
      assert.equal(mtu(x, 'pod', 'ok') + mtu(x, 'pod', 'lost'), 0, `${o} → ${x} pod: never ok, never lost`);
      assert.ok(mtu(x, 'node', 'ok') >= 1, `${o} → ${x} node: the node path keeps its MTU`);
      assert.equal(gauge(x, 'node'), undefined, `${o} → ${x} node: no MTU reported`);
      for (const dst of others.filter((n) => n !== o)) {
        for (const path of PATHS) {
          assert.equal(mtu(dst, path, 'too_big') + mtu(dst, path, 'lost'), 0, `${o} → ${dst} ${path}: fine`);
          assert.equal(gauge(dst, path), undefined, `${o} → ${dst} ${path}: no MTU reported`);
        }
      }
      // Small probes through the router are answered.
      assert.ok(value(after, o, 'node_latency_probes_total', { destination_node: x, path: 'pod', result: 'success' }) > 0);
    }
    // x's own probes are sized to its pod's eth0 (the router's far side): they fit everywhere.
    for (const dst of others) {
      for (const path of PATHS) {
        assert.equal(value(after, x, 'mentat_path_mtu_probes_total', { destination_node: dst, path, result: 'too_big' }), 0, `${x} → ${dst} ${path}`);
      }
    }
    const body = await p.body(others[0]!);
    const strict = strictParse(body);
    assert.ok(strict.names.includes('mentat_path_mtu_bytes'), 'the gauge is on /metrics');
    assert.match(body, /^# UNIT mentat_path_mtu_bytes By$|^# TYPE mentat_path_mtu_bytes gauge$/m);
    assert.equal(promtoolParse(body) ?? '', '', 'promtool reads the exposition');
  },
);
