/**
 * Proves the network-namespace harness and the user-space echo responder:
 * real kernel ICMP between namespaces, injected delay/jitter/loss/duplication/
 * corruption, thousands of /32 targets, pods behind nodes (a broken pod route, a bridge port's MTU
 * black hole, a router's fragmentation needed), and cleanup. Needs root, iproute2 and
 * iputils-ping (fping optional). Skips without them, fails under CI=true.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { median } from '../../bench/stats.js';
import { createCluster, netnsSupported, requireNetns, startResponder, sweepLeftovers, type Cluster, type ClusterNode } from '../support/netns.js';

const support = netnsSupported();
const hasPing = spawnSync('ping', ['-V'], { stdio: 'ignore' }).status === 0;
const hasFping = spawnSync('fping', ['-v'], { stdio: 'ignore' }).status === 0;
const RAW_SOCKET = createRequire(import.meta.url).resolve('raw-socket');
const ourPrefix = `mtt-${process.pid.toString(36)}-`;

/** Like requireNetns, plus iputils ping (same skip-or-fail-in-CI rule). */
function ready(t: TestContext): boolean {
  if (!requireNetns(t)) return false;
  if (hasPing) return true;
  if (process.env.CI === 'true') throw new Error('iputils-ping is required under CI');
  t.skip('iputils-ping not installed');
  return false;
}

interface PingResult {
  transmitted: number;
  received: number;
  duplicates: number;
  /** RTTs of non-duplicate replies, ms. */
  rtts: number[];
  /** Source addresses of replies. */
  froms: string[];
  truncated: number;
  out: string;
}

function parsePing(out: string): PingResult {
  const rtts: number[] = [];
  const froms: string[] = [];
  let truncated = 0;
  for (const line of out.split('\n')) {
    const m = /bytes from ([0-9a-f.:]+?):? icmp_seq=/.exec(line);
    if (!m) continue;
    froms.push(m[1]!);
    if (line.includes('truncated')) truncated++;
    const time = /time=([\d.]+) ms/.exec(line);
    if (time && !line.includes('DUP!')) rtts.push(Number(time[1]));
  }
  const s = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(out);
  return {
    transmitted: Number(s?.[1] ?? 0),
    received: Number(s?.[2] ?? 0),
    duplicates: Number(s?.[3] ?? 0),
    rtts,
    froms,
    truncated,
    out,
  };
}

async function ping(c: Cluster, from: ClusterNode, to: string, args: string[]): Promise<PingResult> {
  const r = await c.execIn(from.ns, 'ping', [...(to.includes(':') ? ['-6'] : []), '-n', ...args, to], { timeoutMs: 30_000 });
  return parsePing(r.stdout + r.stderr);
}

/**
 * Sends echo requests from a raw socket inside `ns` and reports every reply
 * byte-level, which iputils ping cannot (datagram ping sockets never see
 * replies with a wrong identifier or a bad checksum).
 */
const PROBE = `
const raw = require(process.argv[1]);
const [dst, count] = [process.argv[2], Number(process.argv[3])];
const s = raw.createSocket({ protocol: raw.Protocol.ICMP });
const replies = [];
s.on('message', (b) => {
  const ihl = (b[0] & 15) * 4;
  if (b[ihl] !== 0) return;
  const icmp = b.subarray(ihl);
  replies.push({ from: [...b.subarray(12, 16)].join('.'), id: icmp.readUInt16BE(4), seq: icmp.readUInt16BE(6),
    len: icmp.length, checksumOk: raw.createChecksum(icmp) === 0 });
});
for (let i = 0; i < count; i++) {
  const p = Buffer.alloc(8 + 32, 0x6d);
  p[0] = 8; p[1] = 0; p.writeUInt16BE(0, 2); p.writeUInt16BE(0x1234, 4); p.writeUInt16BE(i, 6);
  raw.writeChecksum(p, 2, raw.createChecksum(p));
  s.send(p, 0, p.length, dst, () => {});
}
setTimeout(() => { console.log(JSON.stringify(replies)); process.exit(0); }, 400);
`;

interface ProbeReply {
  from: string;
  id: number;
  seq: number;
  len: number;
  checksumOk: boolean;
}

async function probe(c: Cluster, from: ClusterNode, dst: string, count: number): Promise<ProbeReply[]> {
  const r = await c.execIn(from.ns, process.execPath, ['-e', PROBE, RAW_SOCKET, dst, String(count)]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ProbeReply[];
}

describe('netns harness', () => {
  let cluster: Cluster | undefined;
  const c = (): Cluster => {
    assert.ok(cluster, 'cluster not created');
    return cluster;
  };

  before(async () => {
    if (support.ok) cluster = await createCluster({ nodes: 3, ipv6: true });
  });
  after(async () => {
    await cluster?.destroy();
  });

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

  it('responder adds the configured delay (30 ms) on both families, and stop() restores kernel replies', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    const resp = await startResponder(c(), n1.ns, { delayMs: 30 });
    let stopped = false;
    try {
      const [v4, v6] = await Promise.all([ping(c(), n0, n1.ipv4, ['-c', '5', '-i', '0.2']), ping(c(), n0, n1.ipv6!, ['-c', '5', '-i', '0.2'])]);
      for (const r of [v4, v6]) {
        assert.equal(r.received, 5, r.out);
        // No reply comes before its delay; a busy machine may hold any single one back, so only the median must be on time.
        for (const rtt of r.rtts) assert.ok(rtt >= 30, `rtt ${rtt} below the 30 ms delay\n${r.out}`);
        assert.ok(median(r.rtts) <= 40, `median RTT ${median(r.rtts)} above 40 ms\n${r.out}`);
      }
      t.diagnostic(`delay 30 ms -> v4 RTTs ${v4.rtts.join(', ')}; v6 RTTs ${v6.rtts.join(', ')}`);
      const stats = await resp.stop();
      stopped = true;
      assert.equal(stats.requestsV4, 5);
      assert.equal(stats.requestsV6, 5);
      assert.equal(stats.replies, 10);
      assert.equal(stats.pending, 0);
      const sysctl = await c().execIn(n1.ns, 'cat', ['/proc/sys/net/ipv4/icmp_echo_ignore_all', '/proc/sys/net/ipv6/icmp/echo_ignore_all']);
      assert.equal(sysctl.stdout, '0\n0\n');
      const back = await ping(c(), n0, n1.ipv4, ['-c', '1', '-W', '2']);
      assert.equal(back.received, 1, back.out);
      assert.ok(back.rtts[0]! < 5, back.out);
    } finally {
      if (!stopped) await resp.stop().catch(() => {});
    }
  });

  it('jitter spreads RTTs: none before the delay, the median within delay + jitter', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    const resp = await startResponder(c(), n1.ns, { delayMs: 5, jitterMs: 20, seed: 7 });
    try {
      const r = await ping(c(), n0, n1.ipv4, ['-c', '20', '-i', '0.05']);
      assert.equal(r.received, 20, r.out);
      for (const rtt of r.rtts) assert.ok(rtt >= 5, `rtt ${rtt} below the 5 ms delay\n${r.out}`);
      assert.ok(median(r.rtts) <= 30, `median RTT ${median(r.rtts)} above delay + jitter + 5 ms\n${r.out}`);
      assert.ok(Math.max(...r.rtts) - Math.min(...r.rtts) > 5, `no spread: ${r.rtts.join(', ')}`);
    } finally {
      await resp.stop();
    }
  });

  it('loss 0.3 over 200 pings stays within binomial bounds and matches the responder count', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    const resp = await startResponder(c(), n1.ns, { lossRatio: 0.3, seed: 12345 });
    let stats;
    let r: PingResult;
    try {
      // -W 1: don't linger for the lost tail after the last request.
      r = await ping(c(), n0, n1.ipv4, ['-c', '200', '-i', '0.01', '-W', '1', '-q']);
    } finally {
      stats = await resp.stop();
    }
    assert.equal(r.transmitted, 200, r.out);
    const loss = 1 - r.received / r.transmitted;
    t.diagnostic(`configured loss 0.3 -> observed ${loss.toFixed(3)} (${r.received}/200 received)`);
    // sd = sqrt(200 * 0.3 * 0.7) ≈ 6.5 packets; ±0.1 is about ±3 sd.
    assert.ok(loss >= 0.2 && loss <= 0.4, `loss ${loss}`);
    assert.equal(stats.requests, 200);
    assert.equal(stats.dropped, 200 - r.received);
  });

  it('duplicate and corrupt modes produce the advertised replies', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    const dst = n1.ipv4;

    let resp = await startResponder(c(), n1.ns, { duplicate: true });
    let dupStats;
    try {
      const r = await ping(c(), n0, dst, ['-c', '3', '-i', '0.1', '-W', '1']);
      assert.equal(r.received, 3, r.out);
      // ping exits on the 3rd reply, usually before its copy arrives.
      assert.ok(r.duplicates >= 2, r.out);
    } finally {
      dupStats = await resp.stop();
    }
    assert.equal(dupStats.duplicates, 3);
    assert.equal(dupStats.replies, 6);

    resp = await startResponder(c(), n1.ns, { corrupt: 'checksum' });
    try {
      const replies = await probe(c(), n0, dst, 3);
      assert.equal(replies.length, 3);
      assert.ok(
        replies.every((x) => !x.checksumOk && x.id === 0x1234 && x.from === dst),
        JSON.stringify(replies),
      );
      // The kernel drops bad checksums before datagram ping sockets see them.
      const r = await ping(c(), n0, dst, ['-c', '2', '-i', '0.1', '-W', '1']);
      assert.equal(r.received, 0, r.out);
    } finally {
      await resp.stop();
    }

    resp = await startResponder(c(), n1.ns, { corrupt: 'truncate' });
    try {
      const replies = await probe(c(), n0, dst, 3);
      assert.equal(replies.length, 3);
      // 40-byte request -> 20-byte reply with a valid checksum.
      assert.ok(
        replies.every((x) => x.checksumOk && x.len === 20 && x.id === 0x1234),
        JSON.stringify(replies),
      );
    } finally {
      await resp.stop();
    }

    resp = await startResponder(c(), n1.ns, { corrupt: 'identifier' });
    try {
      const replies = await probe(c(), n0, dst, 3);
      assert.equal(replies.length, 3);
      assert.ok(
        replies.every((x) => x.checksumOk && x.id === (0x1234 ^ 0xffff)),
        JSON.stringify(replies),
      );
    } finally {
      await resp.stop();
    }

    // IPv6: the kernel validates ICMPv6 checksums for every socket type, so a
    // corrupted reply must simply never arrive — while the responder did send it.
    resp = await startResponder(c(), n1.ns, { corrupt: 'checksum', family: '6' });
    const r6 = await ping(c(), n0, n1.ipv6!, ['-c', '2', '-i', '0.1', '-W', '1']);
    const s6 = await resp.stop();
    assert.equal(r6.received, 0, r6.out);
    assert.equal(s6.replies, 2);
    assert.equal(s6.corrupted, 2);
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

    const resp = await startResponder(c(), n2.ns, { delayMs: 2 });
    let stats;
    try {
      // The reply must come *from* the pinged /32, not the node's main address.
      const sample = [addrs[0]!, addrs[999]!, addrs[1999]!];
      const singles = await Promise.all(sample.map((a) => ping(c(), n0, a, ['-c', '1', '-W', '2'])));
      singles.forEach((r, i) => assert.deepEqual(r.froms, [sample[i]], r.out));
      if (hasFping) {
        const f0 = performance.now();
        // All 2000 targets, 1 ms apart; -a prints the alive ones.
        const r = await c().execIn(n0.ns, 'fping', ['-a', '-q', '-i', '1', '-r', '1', '-t', '500'], { input: addrs.join('\n'), timeoutMs: 30_000 });
        const alive = r.stdout.split('\n').filter((l) => l !== '');
        t.diagnostic(`fping: ${alive.length}/2000 alive in ${(performance.now() - f0).toFixed(0)} ms`);
        assert.equal(alive.length, 2000, r.stderr.slice(0, 2000));
      } else {
        t.diagnostic('fping not installed; pinged a sample only');
      }
    } finally {
      stats = await resp.stop();
    }
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
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    assert.ok(!list.includes(added.ns), list);
  });

  it('destroy() removes every namespace and child; leftovers of dead runs are swept', async (t) => {
    if (!requireNetns(t)) return;
    const extra = await createCluster({ nodes: 2 });
    const sleeper = extra.spawnIn(extra.nodes[0]!.ns, 'sleep', ['300']);
    const exited = new Promise<void>((res) => sleeper.once('exit', () => res()));
    await extra.destroy();
    await extra.destroy(); // idempotent
    await exited;
    await cluster?.destroy();
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    assert.ok(!list.includes(ourPrefix), list);

    // Simulate a crashed run: a namespace named after a pid that no longer
    // exists, with a process still inside it.
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
    assert.ok(!spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(stale));
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
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    assert.ok(![x.ns, x.pod!.ns, router].some((n) => list.includes(n)), list);
  });
});
