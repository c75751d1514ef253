/**
 * ICMP in real network namespaces: both socket modes, the locked-down user,
 * accuracy against iputils ping through a delaying responder, injected loss,
 * late replies, and ICMP errors.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parsePing, ROOT_NET_RAW_ONLY, startAgent, until, type AgentProcess } from '../support/agent-process.js';
import { FaultControl } from '../support/fault-client.js';
import { sampleValue, type Sample } from '../support/exposition.js';
import { createCluster, netnsSupported, startResponder, type Cluster, type ClusterNode } from '../support/netns.js';

const supported = netnsSupported();
if (!supported.ok && process.env['CI'] === 'true') throw new Error(`network namespaces are required under CI: ${supported.reason}`);

const probes = (s: Sample[], node: string, result: string) => sampleValue(s, 'node_latency_probes_total', { destination_node: node, result }) ?? 0;
const count = (s: Sample[], node: string) => sampleValue(s, 'node_latency_count', { destination_node: node }) ?? 0;
const sum = (s: Sample[], node: string) => sampleValue(s, 'node_latency_sum', { destination_node: node }) ?? 0;

/** The tests of 'ICMP in network namespaces' share one cluster, made before them and destroyed after. */
const skip = !supported.ok && `network namespaces unavailable: ${supported.reason}`;
let cluster: Cluster;
let control: FaultControl;
let dir: string;
let n0: ClusterNode;
let n1: ClusterNode;
let n2: ClusterNode;
const agents: AgentProcess[] = [];

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mentat-icmp-'));
  cluster = await createCluster({ nodes: 3, ipv6: true, prefix: 'mte' });
  [n0, n1, n2] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  control = await FaultControl.start(cluster, n0.ns, dir);
});

after(async () => {
  if (skip) return;
  for (const a of agents) await a.stop(1000);
  control?.close();
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

const run = (env: Record<string, string>, opts?: { lockedDown?: boolean; setpriv?: readonly string[]; port?: number }) => {
  const agent = startAgent(cluster, n0.ns, control, { MENTAT_LOG_LEVEL: 'debug', ...env }, opts);
  agents.push(agent);
  return agent;
};

test('as uid 65532 with every capability dropped and no_new_privs, datagram ICMP measures IPv4 and IPv6', { skip }, async () => {
  const agent = run(
    { MENTAT_TARGETS: `n1=${n1.ipv4},n1v6=${n1.ipv6!}`, MENTAT_PROBE_INTERVAL: '100ms', MENTAT_PROBE_TIMEOUT: '100ms', NODE_NAME: 'node0' },
    { lockedDown: true, port: 2201 },
  );
  const s = await until('probes from the locked-down agent', 10_000, async () => {
    const x = await agent.scrape();
    return count(x, 'n1') >= 5 && count(x, 'n1v6') >= 5 ? x : undefined;
  });
  assert.equal(probes(s, 'n1', 'timeout') + probes(s, 'n1v6', 'timeout'), 0);
  const started = agent.lines().find((l) => l['msg'] === 'mentat started')!;
  assert.deepEqual(started['icmp'], ['dgram/ipv4', 'dgram/ipv6'], 'auto picked the unprivileged sockets');
  const stopped = await agent.stop();
  assert.equal(stopped.code, 0);
  assert.ok(stopped.ms < 5000, `stopped in ${stopped.ms} ms`);
});

test('raw mode as root measures too', { skip }, async () => {
  const agent = run(
    { MENTAT_ICMP_MODE: 'raw', MENTAT_TARGETS: `n2=${n2.ipv4},n2v6=${n2.ipv6!}`, MENTAT_PROBE_INTERVAL: '100ms', MENTAT_PROBE_TIMEOUT: '100ms' },
    { port: 2202 },
  );
  await until('raw probes', 10_000, async () => {
    const x = await agent.scrape();
    return count(x, 'n2') >= 5 && count(x, 'n2v6') >= 5 ? true : undefined;
  });
  assert.deepEqual(agent.lines().find((l) => l['msg'] === 'mentat started')!['icmp'], ['raw/ipv4', 'raw/ipv6']);
  assert.equal((await agent.stop()).code, 0);
});

test(
  'as the host-network overlay runs it (root with only NET_RAW, auto): datagram where the host allows every group, raw and the reason where it does not',
  { skip },
  async () => {
    const asOverlay = { MENTAT_TARGETS: `n1=${n1.ipv4}`, MENTAT_PROBE_INTERVAL: '100ms', NODE_NAME: 'node0' };
    const modeOf = async (port: number) => {
      const agent = run(asOverlay, { setpriv: ROOT_NET_RAW_ONLY, port });
      await until('probes', 10_000, async () => (count(await agent.scrape(), 'n1') >= 3 ? true : undefined));
      const started = agent.lines().find((l) => l['msg'] === 'mentat started')!;
      const fallback = agent.lines().find((l) => /datagram ICMP is not allowed here, so raw sockets are used/.test(String(l['msg'])));
      assert.equal((await agent.stop()).code, 0);
      return { icmp: started['icmp'], fallback };
    };
    // systemd >= 243 sets this on hosts: every group may open datagram ICMP sockets.
    const allowed = await modeOf(2204);
    assert.deepEqual(allowed.icmp, ['dgram/ipv4', 'dgram/ipv6'], 'datagram ICMP (kernel timestamps) where the host allows it');
    assert.equal(allowed.fallback, undefined);
    await cluster.execIn(n0.ns, 'sysctl', ['-qw', 'net.ipv4.ping_group_range=1 0']);
    try {
      const refused = await modeOf(2205);
      assert.deepEqual(refused.icmp, ['raw/ipv4', 'raw/ipv6'], 'raw with NET_RAW where it does not');
      assert.match(String(refused.fallback?.['reason']), /datagram socket was denied \(EACCES\): the process group is outside net\.ipv4\.ping_group_range/);
    } finally {
      await cluster.execIn(n0.ns, 'sysctl', ['-qw', 'net.ipv4.ping_group_range=0 2147483647']);
    }
  },
);

test('with neither ICMP permission the agent exits 1 and names both remedies', { skip }, async () => {
  await cluster.execIn(n0.ns, 'sysctl', ['-qw', 'net.ipv4.ping_group_range=1 0']);
  try {
    const agent = run({ MENTAT_TARGETS: `n1=${n1.ipv4}` }, { lockedDown: true, port: 2203 });
    const { code } = await agent.exited;
    assert.equal(code, 1);
    const fatal = agent.lines().find((l) => l['level'] === 60)!;
    assert.match(String(fatal['msg']), /no ICMP socket is allowed/);
    assert.match(String(fatal['msg']), /ping_group_range/);
    assert.match(String(fatal['msg']), /CAP_NET_RAW/);
  } finally {
    await cluster.execIn(n0.ns, 'sysctl', ['-qw', 'net.ipv4.ping_group_range=0 2147483647']);
  }
});

for (const mode of ['dgram', 'raw'] as const) {
  test(`${mode}: RTT through a 20 ms responder matches iputils ping in the same run`, async (t) => {
    const responder = await startResponder(cluster, n1.ns, { delayMs: 20 });
    const port = mode === 'dgram' ? 2204 : 2205;
    const agent = run({ MENTAT_ICMP_MODE: mode, MENTAT_TARGETS: `n1=${n1.ipv4}`, MENTAT_PROBE_INTERVAL: '50ms', MENTAT_PROBE_TIMEOUT: '50ms' }, { port });
    try {
      const first = await until('first probes', 10_000, async () => {
        const x = await agent.scrape();
        return count(x, 'n1') >= 3 ? x : undefined;
      });
      // ping and the agent measure the same path over the same 5 s.
      const ping = await cluster.execIn(n0.ns, 'ping', ['-n', '-q', '-i', '0.05', '-c', '100', n1.ipv4]);
      const pingVerbose = parsePing(ping.stdout);
      const last = await agent.scrape();
      const agentMeanMs = ((sum(last, 'n1') - sum(first, 'n1')) / (count(last, 'n1') - count(first, 'n1'))) * 1000;
      const pingMean = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(ping.stdout);
      assert.ok(pingMean, `ping summary: ${ping.stdout}`);
      const pingMeanMs = Number(pingMean[1]);
      const errorUs = (agentMeanMs - pingMeanMs) * 1000;
      t.diagnostic(
        `${mode}: agent mean ${agentMeanMs.toFixed(3)} ms over ${count(last, 'n1') - count(first, 'n1')} probes, ping mean ${pingMeanMs.toFixed(3)} ms over ${pingVerbose.received}, error ${errorUs.toFixed(0)} us`,
      );
      assert.ok(agentMeanMs > 19.5 && agentMeanMs < 25, `the agent sees the injected 20 ms: ${agentMeanMs}`);
      // The benchmark reports the error; this bound only catches a broken clock or a queueing bug.
      assert.ok(Math.abs(errorUs) < 1000, `agent vs ping: ${errorUs.toFixed(0)} us`);
    } finally {
      await agent.stop();
      await responder.stop();
    }
  });
}

test('injected loss shows as timeouts within binomial error; late replies are never successes', { skip }, async (t) => {
  const responder = await startResponder(cluster, n1.ns, { lossRatio: 0.3, seed: 7 });
  const late = await startResponder(cluster, n2.ns, { delayMs: 80 });
  const agent = run({ MENTAT_TARGETS: `lossy=${n1.ipv4},late=${n2.ipv4}`, MENTAT_PROBE_INTERVAL: '20ms', MENTAT_PROBE_TIMEOUT: '20ms' }, { port: 2206 });
  try {
    const s = await until(
      '400 probes to the lossy node',
      30_000,
      async () => {
        const x = await agent.scrape();
        const all = probes(x, 'lossy', 'success') + probes(x, 'lossy', 'timeout');
        return all >= 400 ? x : undefined;
      },
      250,
    );
    const timeouts = probes(s, 'lossy', 'timeout');
    const all = timeouts + probes(s, 'lossy', 'success');
    const ratio = timeouts / all;
    const sigma = Math.sqrt((0.3 * 0.7) / all);
    t.diagnostic(`loss ${ratio.toFixed(3)} over ${all} probes (injected 0.3, 3 sigma = ${(3 * sigma).toFixed(3)})`);
    assert.ok(Math.abs(ratio - 0.3) < 3 * sigma + 0.01, `loss ${ratio} vs 0.3`);
    assert.equal(probes(s, 'lossy', 'error'), 0);
    assert.equal(probes(s, 'late', 'success'), 0, 'an 80 ms reply to a 20 ms timeout is loss');
    assert.ok(probes(s, 'late', 'timeout') > 50);
    assert.equal(count(s, 'late'), 0, 'no latency recorded for late replies');
  } finally {
    await agent.stop();
    await responder.stop();
    await late.stop();
  }
});

for (const mode of ['dgram', 'raw'] as const) {
  test(`${mode}: an ICMP error quoting the probe counts as error, with the reason logged`, async () => {
    // node1 answers every echo request with "destination unreachable (communication administratively prohibited)".
    const responder = await startResponder(cluster, n1.ns, { corrupt: 'unreachable', family: '4' });
    const agent = run(
      { MENTAT_ICMP_MODE: mode, MENTAT_TARGETS: `void=${n1.ipv4}`, MENTAT_PROBE_INTERVAL: '100ms', MENTAT_PROBE_TIMEOUT: '100ms' },
      { port: mode === 'dgram' ? 2207 : 2208 },
    );
    try {
      const s = await until('error results', 10_000, async () => {
        if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.log()}`);
        const x = await agent.scrape();
        return probes(x, 'void', 'error') >= 10 ? x : undefined;
      });
      assert.equal(probes(s, 'void', 'success'), 0);
      assert.ok(probes(s, 'void', 'timeout') <= 1, 'errors are errors, not timeouts');
      const warning = agent.lines().find((l) => l['msg'] === 'probe failed');
      assert.ok(warning, agent.log());
      assert.match(String(warning['reason']), new RegExp(`destination unreachable \\(code 13\\) from ${n1.ipv4.replaceAll('.', '\\.')}`));
    } finally {
      await agent.stop();
      await responder.stop();
    }
  });
}

test('raw mode ignores replies to a concurrent ping and duplicated replies: never more successes than probes', { skip }, async () => {
  const responder = await startResponder(cluster, n1.ns, { duplicate: true });
  const agent = run({ MENTAT_ICMP_MODE: 'raw', MENTAT_TARGETS: `n1=${n1.ipv4}`, MENTAT_PROBE_INTERVAL: '50ms', MENTAT_PROBE_TIMEOUT: '50ms' }, { port: 2209 });
  try {
    await until('agent running', 10_000, async () => ((await agent.scrape()).length > 0 ? true : undefined));
    const before = await agent.scrape();
    // A flood of someone else's echo replies lands on the agent's raw socket.
    const ping = await cluster.execIn(n0.ns, 'ping', ['-n', '-q', '-i', '0.002', '-c', '1000', n1.ipv4]);
    const after_ = await agent.scrape();
    const successes = probes(after_, 'n1', 'success') - probes(before, 'n1', 'success');
    const all = successes + probes(after_, 'n1', 'timeout') - probes(before, 'n1', 'timeout');
    assert.match(ping.stdout, /1000 packets transmitted/);
    assert.ok(all > 0 && all < 1000 / 5, `the agent counted only its own ${all} probes, not ping's 1000`);
    assert.equal(successes, count(after_, 'n1') - count(before, 'n1'), 'one latency per success, duplicates dropped');
    // A reply matched to the wrong probe would show as a timeout of the right one; a busy machine
    // can delay the user-space responder past 50 ms now and then, so a few are not a failure.
    const timeouts = probes(after_, 'n1', 'timeout');
    assert.ok(timeouts <= Math.max(1, all / 10), `the duplicates did not disturb matching: ${timeouts} timeouts of ${all} probes`);
  } finally {
    await agent.stop();
    await responder.stop();
  }
});
