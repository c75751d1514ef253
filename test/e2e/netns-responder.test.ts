/** The echo responder's delay (both families, kernel replies back after stop), jitter and loss on a real namespace path; needs root and iputils-ping. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { median } from '../../bench/stats.js';
import type { ClusterNode } from '../support/netns.js';
import { ping, ready, useCluster, withResponder } from '../support/netns-ping.js';

describe('netns harness', () => {
  const c = useCluster({ nodes: 3, ipv6: true });

  it('responder adds the configured delay (30 ms) on both families, and stop() restores kernel replies', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    const {
      result: [v4, v6],
      stats,
    } = await withResponder(c(), n1.ns, { delayMs: 30 }, () =>
      Promise.all([ping(c(), n0, n1.ipv4, ['-c', '5', '-i', '0.2']), ping(c(), n0, n1.ipv6!, ['-c', '5', '-i', '0.2'])]),
    );
    for (const r of [v4, v6]) {
      assert.equal(r.received, 5, r.out);
      // No reply comes before its delay; a busy machine may hold any single one back, so only the median must be on time.
      for (const rtt of r.rtts) assert.ok(rtt >= 30, `rtt ${rtt} below the 30 ms delay\n${r.out}`);
      assert.ok(median(r.rtts) <= 40, `median RTT ${median(r.rtts)} above 40 ms\n${r.out}`);
    }
    t.diagnostic(`delay 30 ms -> v4 RTTs ${v4.rtts.join(', ')}; v6 RTTs ${v6.rtts.join(', ')}`);
    assert.equal(stats.requestsV4, 5);
    assert.equal(stats.requestsV6, 5);
    assert.equal(stats.replies, 10);
    assert.equal(stats.pending, 0);
    const sysctl = await c().execIn(n1.ns, 'cat', ['/proc/sys/net/ipv4/icmp_echo_ignore_all', '/proc/sys/net/ipv6/icmp/echo_ignore_all']);
    assert.equal(sysctl.stdout, '0\n0\n');
    const back = await ping(c(), n0, n1.ipv4, ['-c', '1', '-W', '2']);
    assert.equal(back.received, 1, back.out);
    assert.ok(back.rtts[0]! < 5, back.out);
  });

  it('jitter spreads RTTs: none before the delay, the median within delay + jitter', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    const { result: r } = await withResponder(c(), n1.ns, { delayMs: 5, jitterMs: 20, seed: 7 }, () => ping(c(), n0, n1.ipv4, ['-c', '20', '-i', '0.05']));
    assert.equal(r.received, 20, r.out);
    for (const rtt of r.rtts) assert.ok(rtt >= 5, `rtt ${rtt} below the 5 ms delay\n${r.out}`);
    assert.ok(median(r.rtts) <= 30, `median RTT ${median(r.rtts)} above delay + jitter + 5 ms\n${r.out}`);
    assert.ok(Math.max(...r.rtts) - Math.min(...r.rtts) > 5, `no spread: ${r.rtts.join(', ')}`);
  });

  it('loss 0.3 over 200 pings stays within binomial bounds and matches the responder count', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    // -W 1: don't linger for the lost tail after the last request.
    const { result: r, stats } = await withResponder(c(), n1.ns, { lossRatio: 0.3, seed: 12345 }, () =>
      ping(c(), n0, n1.ipv4, ['-c', '200', '-i', '0.01', '-W', '1', '-q']),
    );
    assert.equal(r.transmitted, 200, r.out);
    const loss = 1 - r.received / r.transmitted;
    t.diagnostic(`configured loss 0.3 -> observed ${loss.toFixed(3)} (${r.received}/200 received)`);
    // sd = sqrt(200 * 0.3 * 0.7) ≈ 6.5 packets; ±0.1 is about ±3 sd.
    assert.ok(loss >= 0.2 && loss <= 0.4, `loss ${loss}`);
    assert.equal(stats.requests, 200);
    assert.equal(stats.dropped, 200 - r.received);
  });
});
