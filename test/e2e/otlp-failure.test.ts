/**
 * OTLP push, end to end, when the collector fails or is gone, and at shutdown: the real agent process
 * against an in-process receiver answering 503, against a closed port, and flushing a final export on
 * SIGTERM. Needs root (raw ICMP sockets). Every wait polls with a deadline; nothing sleeps as an assertion.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, until } from '../support/agent-process.js';
import { assertAgentExport, assertCumulativeInOrder, DESTINATIONS, exportFailureLines, scrapeCounts, startAgent, total } from '../support/otlp-agent.js';
import { OtlpReceiver, type ReceivedExport } from '../support/otlp-receiver.js';

test('collector answering 503: /metrics keeps counting, failures are logged a few times (not per export), exports resume', { timeout: 25_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'http/protobuf' });
  t.after(() => receiver.stop());
  receiver.setFailing(503);
  const agent = await startAgent(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_METRIC_EXPORT_INTERVAL: '200',
  });

  // ~5 s of outage at 200 ms per export: about 25 failed exports.
  const windowMs = 5000;
  const windowEnd = Date.now() + windowMs;
  const samples: number[] = [];
  while (Date.now() < windowEnd) {
    samples.push(total(await scrapeCounts(agent)));
    await sleep(250);
  }
  const lastScrape = await scrapeCounts(agent);
  samples.push(total(lastScrape));
  for (let i = 1; i < samples.length; i++) assert.ok(samples[i]! >= samples[i - 1]!, `node_latency_count never decreases on /metrics: ${samples.join(' ')}`);
  assert.ok(samples.at(-1)! > samples[0]! + 10, `node_latency_count grows during the outage: ${samples.join(' ')}`);
  assert.deepEqual(new Set(lastScrape.keys()), new Set(DESTINATIONS), '/metrics serves both targets');

  const attempts = receiver.requests;
  assert.ok(attempts >= 10, `the agent kept trying to export during the outage (${attempts} requests in ${windowMs} ms)`);
  assert.equal(receiver.accepted.length, 0);
  const failureLines = exportFailureLines(agent.logs);
  assert.ok(failureLines.length >= 1, `the export failure is logged:\n${agent.describe()}`);
  assert.ok(
    failureLines.length <= 5,
    `a handful of failure lines, not one per export (${failureLines.length} lines for ${attempts} failed requests):\n  ${failureLines.map((l) => l.msg).join('\n  ')}`,
  );
  t.diagnostic(
    `outage: ${attempts} failed export requests, ${failureLines.length} log line(s): ${failureLines.map((l) => String(l.msg).slice(0, 120)).join(' | ')}`,
  );

  receiver.setFailing(false);
  const recoveredAt = Date.now();
  // Fresh data, not only a retried request from the outage: counts at least those /metrics showed before recovery.
  const isFresh = (e: ReceivedExport): boolean => {
    const points = receiver.points('node_latency', [e]);
    return DESTINATIONS.every((d) => (points.find((p) => p.attributes['destination_node'] === d)?.count ?? -1) >= lastScrape.get(d)!);
  };
  await receiver.waitFor((r) => r.accepted.some(isFresh), 5000, 'an accepted export with fresh data after the collector recovered');
  t.diagnostic(`first fresh accepted export ${Date.now() - recoveredAt} ms after recovery`);
  assertAgentExport(receiver, {}, { inOrder: false });

  // Watch ten fresh exports (~2 s) after recovery, long enough for requests retried from the outage to land.
  await receiver.waitFor((r) => r.accepted.filter(isFresh).length >= 10, 5000, 'ten fresh exports after recovery');
  const arrivals = receiver.accepted.map((e) => receiver.points('node_latency', [e]).find((p) => p.attributes['destination_node'] === 'lo4')?.count ?? '-');
  t.diagnostic(`lo4 node_latency count per accepted export, in arrival order: ${arrivals.join(' ')}`);
  await t.test('after the outage no older cumulative point arrives after a newer one', () => {
    assertCumulativeInOrder(receiver);
  });
});

test('collector unreachable (closed port): /metrics keeps counting, one failure line, SIGTERM still exits 0 within 5 s', { timeout: 20_000 }, async (t) => {
  const closed = await freePort();
  const agent = await startAgent(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`,
    OTEL_METRIC_EXPORT_INTERVAL: '200',
  });
  const first = total(await scrapeCounts(agent));
  const grown = await until('node_latency_count to grow while the collector is unreachable', 5000, async () => {
    const now = total(await scrapeCounts(agent));
    return now > first + 10 ? now : undefined;
  });
  const failures = await until(
    'an export failure log line',
    5000,
    () => {
      const lines = exportFailureLines(agent.logs);
      return lines.length > 0 ? lines : undefined;
    },
    { everyMs: 50, context: () => agent.describe() },
  );
  assert.ok(failures.length <= 3, `failure lines are rate-limited: ${failures.map((l) => l.msg).join(' | ')}`);
  t.diagnostic(`count ${first} -> ${grown}; failure line: ${String(failures[0]!.msg).slice(0, 160)}`);

  const signalledAt = Date.now();
  agent.child.kill('SIGTERM');
  const exit = await Promise.race([agent.exited, sleep(5000).then(() => undefined)]);
  assert.ok(exit, `the agent exits within 5 s of SIGTERM with the collector down:\n${agent.describe()}`);
  assert.equal(exit.code, 0, `exit code 0:\n${agent.describe()}`);
  assert.equal(exit.signal, null);
  const took = exit.at - signalledAt;
  const deadlineHit = agent.logs.some((l) => /shutdown took too long/.test(l.msg ?? ''));
  t.diagnostic(`exit after ${took} ms${deadlineHit ? ' (through the shutdown deadline: the final flush did not end by itself)' : ''}`);
  await t.test('the stop is orderly, not the 4.5 s deadline', () => {
    assert.ok(!deadlineHit, `stopped by the deadline after ${took} ms`);
    assert.ok(
      agent.logs.some((l) => l.msg === 'mentat stopped'),
      '"mentat stopped" is logged',
    );
  });
});

test('SIGTERM: a final export is flushed, then the agent exits 0 within 5 s', { timeout: 20_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'http/protobuf' });
  t.after(() => receiver.stop());
  // One export a minute: within this test, only the shutdown flush can reach the receiver.
  const agent = await startAgent(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_METRIC_EXPORT_INTERVAL: '60000',
  });
  const before = await until('samples for both targets on /metrics', 5000, async () => {
    const counts = await scrapeCounts(agent);
    return DESTINATIONS.every((d) => (counts.get(d) ?? 0) > 0) ? counts : undefined;
  });
  assert.equal(receiver.requests, 0, 'no periodic export yet');

  const signalledAt = Date.now();
  agent.child.kill('SIGTERM');
  const exit = await Promise.race([agent.exited, sleep(5000).then(() => undefined)]);
  assert.ok(exit, `the agent exits within 5 s of SIGTERM:\n${agent.describe()}`);
  assert.equal(exit.code, 0, `exit code 0:\n${agent.describe()}`);
  assert.equal(exit.signal, null);
  t.diagnostic(`exit ${exit.at - signalledAt} ms after SIGTERM`);

  assert.equal(receiver.requests, 1, `exactly one export, the final flush; ${receiver.summary()}`);
  const flushed = receiver.accepted[0]!;
  assert.ok(flushed.receivedAt >= signalledAt, 'the export came after the signal');
  const points = receiver.points('node_latency');
  for (const destination of DESTINATIONS) {
    const p = points.find((x) => x.attributes['destination_node'] === destination);
    assert.ok(p, `the final export has node_latency for ${destination}`);
    assert.ok(
      p.count! >= before.get(destination)!,
      `${destination}: the flush carries everything recorded before the signal (${p.count} >= ${before.get(destination)})`,
    );
  }
  assert.ok(receiver.points('node_latency_probes').length > 0, 'the final export has node_latency_probes');
  assert.ok(
    agent.logs.some((l) => l.msg === 'mentat stopped'),
    `orderly stop logged:\n${agent.describe()}`,
  );
  assert.ok(!agent.logs.some((l) => /shutdown took too long/.test(l.msg ?? '')), 'no deadline exit');
});
