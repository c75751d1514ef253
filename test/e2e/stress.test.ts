/**
 * Measurement under stress, in network namespaces: a frozen event loop loses no reply the kernel
 * received in time. Needs root and iproute2; skips without them, fails under CI=true.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgent, until, type AgentProcess } from '../support/agent-process.js';
import { FaultControl } from '../support/fault-client.js';
import type { Sample } from '../support/exposition.js';
import { createCluster, netnsSupported, startResponder, type Cluster, type ClusterNode } from '../support/netns.js';

const supported = netnsSupported();
if (!supported.ok && process.env['CI'] === 'true') throw new Error(`network namespaces are required under CI: ${supported.reason}`);

/** Sum of node_latency_probes_total for one result over the destinations whose name starts with `prefix`. */
const total = (s: Sample[], result: string, prefix = '') =>
  s
    .filter((x) => x.name === 'node_latency_probes_total' && x.labels['result'] === result && (x.labels['destination_node'] ?? '').startsWith(prefix))
    .reduce((sum, x) => sum + x.value, 0);

/** The tests of 'measurement under stress' share one cluster, made before them and destroyed after. */
const skip = !supported.ok && `network namespaces unavailable: ${supported.reason}`;
let cluster: Cluster;
let control: FaultControl;
let dir: string;
let n0: ClusterNode;
let n1: ClusterNode;
/** n1's own address and 99 more on its loopback. */
let addresses: string[];
const agents: AgentProcess[] = [];

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mentat-stress-'));
  cluster = await createCluster({ nodes: 2, prefix: 'mte' });
  [n0, n1] = cluster.nodes as [ClusterNode, ClusterNode];
  control = await FaultControl.start(cluster, n0.ns, dir);
  addresses = [n1.ipv4, ...(await cluster.addAddresses(n1.ns, 99))];
});

after(async () => {
  if (skip) return;
  for (const a of agents) {
    // Never leave a stopped process behind: SIGTERM would wait for a SIGCONT.
    if (a.child.pid !== undefined && a.child.exitCode === null) a.child.kill('SIGCONT');
    await a.stop(1000);
  }
  control?.close();
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

test('frozen for 1.5 s ten times with 1 s timeouts and 20 probes in flight: not one timeout', { skip, timeout: 60_000 }, async (t) => {
  // Every reply leaves 200 ms after its request: at 100 probes a second, 20 are in flight at any moment.
  const responder = await startResponder(cluster, n1.ns, { delayMs: 200, family: '4' });
  const agent = startAgent(
    cluster,
    n0.ns,
    control,
    {
      MENTAT_ICMP_MODE: 'dgram',
      MENTAT_TARGETS: addresses.map((a, i) => `d${i}=${a}`).join(','),
      MENTAT_PROBE_INTERVAL: '1s',
      MENTAT_PROBE_TIMEOUT: '1s',
      NODE_NAME: 'node0',
    },
    { port: 2301 },
  );
  agents.push(agent);
  const pid = agent.child.pid!;
  try {
    const warm = await until('every destination answered once', 15_000, async () => {
      if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.log()}`);
      const s = await agent.scrape();
      return total(s, 'success') >= 200 ? s : undefined;
    });
    assert.equal(total(warm, 'timeout'), 0, 'no timeout before the stalls either');
    for (let i = 0; i < 10; i++) {
      process.kill(pid, 'SIGSTOP');
      try {
        await sleep(1500);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      await sleep(1000);
    }
    // Let the probes sent last end.
    await sleep(1500);
    const s = await agent.scrape();
    const successes = total(s, 'success') - total(warm, 'success');
    const stats = await responder.stop();
    t.diagnostic(`${successes} successes across ten 1.5 s stalls; responder: ${JSON.stringify(stats)}`);
    assert.equal(total(s, 'timeout'), 0, 'a reply the kernel received 200 ms after its probe is never a timeout');
    assert.equal(total(s, 'error'), 0);
    // 11.5 s running at 100 a second, and each target once on waking from each stall: about 2150.
    assert.ok(successes > 1500, `probing went on across the stalls: ${successes} successes`);
  } finally {
    if (agent.child.exitCode === null) process.kill(pid, 'SIGCONT');
    await agent.stop();
    await responder.stop();
  }
});

test('ICMP errors from addresses without a neighbour land on their own probes, never on healthy ones', { skip, timeout: 60_000 }, async (t) => {
  // On the cluster's link, owned by nobody: ARP fails and the kernel answers each probe with host unreachable,
  // parking EHOSTUNREACH on the socket for whatever is sent next.
  const nobody = Array.from({ length: 20 }, (_, i) => `198.18.0.${230 + i}`);
  const healthy = addresses.slice(0, 20);
  const agent = startAgent(
    cluster,
    n0.ns,
    control,
    {
      MENTAT_ICMP_MODE: 'dgram',
      MENTAT_TARGETS: [...healthy.map((a, i) => `ok${i}=${a}`), ...nobody.map((a, i) => `void${i}=${a}`)].join(','),
      MENTAT_PROBE_INTERVAL: '200ms',
      MENTAT_PROBE_TIMEOUT: '200ms',
      NODE_NAME: 'node0',
    },
    { port: 2302 },
  );
  agents.push(agent);
  try {
    const s = await until(
      'errors from the unreachable addresses for a while',
      30_000,
      async () => {
        if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.log()}`);
        const x = await agent.scrape();
        return total(x, 'error', 'void') >= 50 && total(x, 'error', 'void') + total(x, 'timeout', 'void') >= 400 ? x : undefined;
      },
      { everyMs: 500, context: () => agent.log().slice(-1500) },
    );
    t.diagnostic(
      `healthy: ${total(s, 'success', 'ok')} successes; unreachable: ${total(s, 'error', 'void')} errors, ${total(s, 'timeout', 'void')} timeouts; ` +
        `not sent for a full send buffer: ${s.find((x) => x.name === 'mentat_probes_discarded_total' && x.labels['reason'] === 'send_buffer')?.value}`,
    );
    if (process.env['DBG'])
      console.error(
        agent
          .log()
          .split('\n')
          .filter((l) => l.includes('ok'))
          .slice(0, 10)
          .join('\n'),
      );
    assert.equal(total(s, 'error', 'ok'), 0, 'no error recorded for a healthy destination');
    assert.equal(total(s, 'timeout', 'ok'), 0, 'no timeout either');
    assert.ok(total(s, 'success', 'ok') >= 400, 'the healthy ones were probed all along');
    assert.equal(total(s, 'success', 'void'), 0);
  } finally {
    await agent.stop();
  }
});

test('a handler that throws in the datagram edge is caught and reported, and the socket goes on reading', { skip }, async () => {
  // A script of its own in node0: the agent's handlers never throw, so a test handler must.
  const script = `
    const { openDgramSocket } = await import(${JSON.stringify(new URL('../../src/icmp/dgram.js', import.meta.url).href)});
    const { encodeEchoRequest } = await import(${JSON.stringify(new URL('../../src/icmp/packet.js', import.meta.url).href)});
    const socket = openDgramSocket(4);
    const errors = [];
    let messages = 0;
    socket.onError((e) => errors.push(e.message));
    socket.onMessage(() => {
      if (messages++ === 0) throw new Error('boom');
    });
    for (const sequence of [1, 2]) {
      socket.send(encodeEchoRequest({ family: 4, identifier: 1, sequence, cookie: new Uint8Array(8), payloadBytes: 16 }), ${JSON.stringify(n1.ipv4)}, () => {});
      await new Promise((r) => setTimeout(r, 200));
    }
    console.log(JSON.stringify({ errors, messages }));
    await socket.close();
  `;
  const r = await cluster.execIn(n0.ns, process.execPath, ['--input-type=module', '-e', script], { timeoutMs: 10_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    errors: ['handling a datagram from the ICMPv4 socket threw: boom'],
    messages: 2,
  });
});
