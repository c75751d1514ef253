/**
 * Proves the network-namespace harness itself: real kernel ICMP between namespaces, thousands of
 * /32 targets, nodes added and removed at runtime, pods behind nodes (a broken pod route, a bridge
 * port's MTU black hole, a router's fragmentation needed), and cleanup. The echo responder's
 * faults are in netns-responder*.test.ts. Needs root, iproute2 and iputils-ping (fping optional).
 * Skips without them, fails under CI=true.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createCluster, requireNetns, sweepLeftovers, type Cluster, type ClusterNode } from '../support/netns.js';
import { ping, ready, useCluster, withResponder } from '../support/netns-ping.js';

const hasFping = spawnSync('fping', ['-v'], { stdio: 'ignore' }).status === 0;
const ourPrefix = `mtt-${process.pid.toString(36)}-`;

/** None of `names` is in `ip netns list`. */
function assertNoNetns(...names: string[]): void {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.ok(!names.some((n) => list.includes(n)), list);
}

/** A sample of `addrs` answers from its own address; with fping, every one answers. */
async function allAnswer(t: TestContext, c: Cluster, from: ClusterNode, addrs: readonly string[]): Promise<void> {
  // The reply must come *from* the pinged /32, not the node's main address.
  const sample = [addrs[0]!, addrs[999]!, addrs[1999]!];
  const singles = await Promise.all(sample.map((a) => ping(c, from, a, ['-c', '1', '-W', '2'])));
  singles.forEach((r, i) => assert.deepEqual(r.froms, [sample[i]], r.out));
  if (!hasFping) {
    t.diagnostic('fping not installed; pinged a sample only');
    return;
  }
  const f0 = performance.now();
  // All 2000 targets, 1 ms apart; -a prints the alive ones.
  const r = await c.execIn(from.ns, 'fping', ['-a', '-q', '-i', '1', '-r', '1', '-t', '500'], { input: addrs.join('\n'), timeoutMs: 30_000 });
  const alive = r.stdout.split('\n').filter((l) => l !== '');
  t.diagnostic(`fping: ${alive.length}/2000 alive in ${(performance.now() - f0).toFixed(0)} ms`);
  assert.equal(alive.length, 2000, r.stderr.slice(0, 2000));
}

/** A crashed run simulated (a namespace named after a pid that no longer exists, a process still inside) is swept. */
async function assertDeadRunSwept(): Promise<void> {
  const dead = spawnSync('true').pid;
  const stale = `mtt-${dead.toString(36)}-0n0`;
  assert.equal(spawnSync('ip', ['netns', 'add', stale]).status, 0);
  const orphan = spawn('ip', ['netns', 'exec', stale, 'sleep', '300'], { stdio: 'ignore', detached: true });
  orphan.unref();
  const orphanExited = new Promise<void>((res) => orphan.once('exit', () => res()));
  await new Promise((res) => setTimeout(res, 100)); // let it enter the namespace
  const removed = sweepLeftovers('mtt');
  assert.ok(removed.includes(stale), `removed ${removed.join(', ')}`);
  await orphanExited;
  assertNoNetns(stale);
}

describe('netns harness', () => {
  const c = useCluster({ nodes: 3, ipv6: true });

  it('kernel ping works between namespaces over IPv4 and IPv6', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    const [v4, v6] = await Promise.all([
      ping(c(), n0, n1.ipv4, ['-c', '3', '-i', '0.2', '-W', '2']),
      ping(c(), n0, n1.ipv6!, ['-c', '3', '-i', '0.2', '-W', '2']),
    ]);
    assert.equal(v4.received, 3, v4.out);
    assert.equal(v6.received, 3, v6.out);
    // Kernel replies over a veth/bridge are far below a millisecond.
    assert.ok(Math.max(...v4.rtts, ...v6.rtts) < 5, `${v4.out}\n${v6.out}`);
  });

  it('2000 /32 addresses are set up fast and all answer through the responder', async (t) => {
    if (!ready(t)) return;
    const [n0, , n2] = c().nodes as [ClusterNode, ClusterNode, ClusterNode];
    const t0 = performance.now();
    const addrs = await c().addAddresses(n2.ns, 2000);
    const setupMs = performance.now() - t0;
    t.diagnostic(`addAddresses(2000) took ${setupMs.toFixed(0)} ms`);
    assert.equal(addrs.length, 2000);
    assert.equal(new Set(addrs).size, 2000);
    assert.ok(setupMs < 10_000);
    const { stats } = await withResponder(c(), n2.ns, { delayMs: 2 }, () => allAnswer(t, c(), n0, addrs));
    assert.equal(stats.sendErrors, 0);
    assert.ok(stats.requestsV4 >= (hasFping ? 2003 : 3));
  });

  it('addNode/removeNode at runtime, including routes to existing address blocks', async (t) => {
    if (!ready(t)) return;
    const n0 = c().nodes[0]!;
    const added = await c().addNode();
    assert.equal(added.name, 'node3');
    assert.equal(c().nodes.length, 4);
    const r = await ping(c(), added, n0.ipv4, ['-c', '1', '-W', '2']);
    assert.equal(r.received, 1, r.out);
    // node2 carries 198.18.16.0/20 from the scale test; the new node routes to it.
    const r2 = await ping(c(), added, '198.18.16.1', ['-c', '1', '-W', '2']);
    assert.equal(r2.received, 1, r2.out);
    await c().removeNode(added.name);
    assert.equal(c().nodes.length, 3);
    assertNoNetns(added.ns);
  });

  it('destroy() removes every namespace and child; leftovers of dead runs are swept', async (t) => {
    if (!requireNetns(t)) return;
    const extra = await createCluster({ nodes: 2 });
    const sleeper = extra.spawnIn(extra.nodes[0]!.ns, 'sleep', ['300']);
    const exited = new Promise<void>((res) => sleeper.once('exit', () => res()));
    await extra.destroy();
    await extra.destroy(); // idempotent
    await exited;
    await c().destroy();
    assertNoNetns(ourPrefix);
    await assertDeadRunSwept();
  });
});

describe('netns harness: pods behind nodes', () => {
  it('a pod per node, routed through its node; a broken pod route, a bridge port MTU black hole and a router that answers fragmentation needed', async (t) => {
    if (!ready(t)) return;
    const c = await createCluster({ nodes: 4, pods: (i) => i > 0 });
    t.after(() => c.destroy());
    const [infra, a, b, x] = c.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    assert.equal(infra.pod, undefined, 'no pod where none was asked for');
    assert.deepEqual(a.pod, { ns: `${a.ns.slice(0, -2)}p1`, ipv4: '198.19.1.2', gateway: '198.19.1.1', cidr: '198.19.1.0/24' });
    const podOf = (n: ClusterNode): ClusterNode => ({ ...n, ns: n.pod!.ns });
    const reach = async (from: ClusterNode, to: string, size = 56, extra: string[] = []) =>
      (await ping(c, from, to, ['-c', '2', '-i', '0.2', '-W', '1', '-s', String(size), '-M', 'do', ...extra])).received;

    // Pod to pod, pod to node, and the API server's node to a pod: an extra hop each way.
    assert.equal(await reach(podOf(a), x.pod!.ipv4), 2);
    assert.equal(await reach(podOf(a), x.ipv4), 2);
    assert.equal(await reach(infra, x.pod!.ipv4), 2);
    // Two routers on the way, the own node and the peer's: a TTL of 2 expires at the peer's node.
    const trace = await c.execIn(a.pod.ns, 'ping', ['-n', '-c', '1', '-W', '1', '-t', '2', x.pod!.ipv4]);
    assert.match(trace.stdout, new RegExp(`From ${x.ipv4.replaceAll('.', '\\.')} icmp_seq=1 Time to live exceeded`), trace.stdout);
    assert.equal(await reach(podOf(a), x.pod!.ipv4, 56, ['-t', '3']), 2);

    // The pod route to x broken on every node but infra: x's pod is lost from a and b, its node address is not.
    await c.setPodRoute(x.name, 'broken', [infra.name]);
    assert.equal(await reach(podOf(a), x.pod!.ipv4), 0);
    assert.equal(await reach(b, x.pod!.ipv4), 0);
    assert.equal(await reach(podOf(a), x.ipv4), 2);
    assert.equal(await reach(infra, x.pod!.ipv4), 2, 'spared');
    assert.equal(await reach(podOf(x), a.ipv4), 2, "x's pod reaches node addresses: masqueraded, the answer comes to x's node");
    assert.equal(await reach(podOf(x), a.pod.ipv4), 0, "x's pod hears no other pod: the answer needs the broken route");
    assert.equal(await reach(podOf(a), b.pod!.ipv4), 2, 'other pods untouched');
    await c.setPodRoute(x.name, 'ok');
    assert.equal(await reach(podOf(a), x.pod!.ipv4), 2);

    // x's bridge port at 1400: small packets pass both ways, full-size do-not-fragment ones are lost silently.
    await c.setBridgePortMtu(x.name, 1400);
    assert.equal(await reach(podOf(a), x.pod!.ipv4), 2);
    assert.equal(await reach(podOf(a), x.pod!.ipv4, 1472), 0);
    assert.equal(await reach(podOf(x), a.pod.ipv4, 1472), 0);
    assert.equal(await reach(podOf(a), x.pod!.ipv4, 1372), 2);
    assert.equal(await reach(podOf(a), b.pod!.ipv4, 1472), 2);
    await c.setBridgePortMtu(x.name, 1500);
    assert.equal(await reach(podOf(a), x.pod!.ipv4, 1472), 2);

    // A router between x and its pod, 1400 on its far side: the kernel answers fragmentation needed.
    const router = await c.insertPodRouter(x.name, 1400);
    assert.match(router, /r3$/);
    assert.equal(await reach(podOf(a), x.pod!.ipv4), 2);
    assert.equal(await reach(podOf(a), x.ipv4, 1472), 2, 'the node path keeps 1500');
    const big = await c.execIn(a.pod.ns, 'ping', ['-n', '-c', '2', '-i', '0.2', '-W', '1', '-s', '1472', '-M', 'do', x.pod!.ipv4]);
    assert.match(big.stdout + big.stderr, /[Ff]rag needed and DF set \(mtu = 1400\)|mtu = 1400|message too long, mtu=1400/, big.stdout + big.stderr);
    assert.equal(await reach(podOf(x), a.pod.ipv4, 1372), 2, 'the pod reaches out at its own MTU');
    await c.removeNode(x.name);
    assertNoNetns(x.ns, x.pod!.ns, router);
  });
});
