/**
 * OTLP push, end to end: the real agent process (raw ICMP to 127.0.0.1 and ::1, static targets)
 * exporting to an in-process OTLP receiver that decodes with the opentelemetry-proto definitions.
 * Needs root (raw ICMP sockets). Every wait polls with a deadline; nothing sleeps as an assertion.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_BUCKETS_SECONDS } from '../../src/config.js';
import { freePort, MAIN, REPO, until } from '../support/agent-process.js';
import { OtlpReceiver, type MetricPoint, type ReceivedExport } from '../support/otlp-receiver.js';

/** The project's Node 24 (never the system Node), falling back to whatever runs the tests. */
const NODE = existsSync(join(REPO, 'node_modules', '.bin', 'node')) ? join(REPO, 'node_modules', '.bin', 'node') : process.execPath;

const NODE_NAME = 'otlp-test-node';
const DESTINATIONS = ['lo4', 'lo6'];
const CUMULATIVE = 'AGGREGATION_TEMPORALITY_CUMULATIVE';

interface LogLine {
  level?: number;
  msg?: string;
  [key: string]: unknown;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

interface RunningAgent {
  readonly child: ChildProcess;
  readonly metricsPort: number;
  /** stdout lines, parsed (pino JSON); a line that is not JSON is kept as { msg }. */
  readonly logs: LogLine[];
  stderr: string;
  readonly exited: Promise<Exit>;
  /** SIGKILL if still running, then wait for the exit. */
  kill(): Promise<void>;
  describe(): string;
}

/** GET without keep-alive, so no connection of ours holds up the agent's server close. */
function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts `node dist/src/main.js` with a clean environment (no inherited OTEL_* or MENTAT_*),
 * static loopback targets and fast probes, and waits for /readyz. The process is killed when
 * the test ends, whatever happened.
 */
async function startAgent(t: TestContext, otelEnv: Record<string, string>): Promise<RunningAgent> {
  const metricsPort = await freePort();
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/root',
    NODE_NAME,
    MENTAT_TARGETS: 'lo4=127.0.0.1,lo6=::1',
    MENTAT_PROBE_INTERVAL: '100ms',
    MENTAT_PROBE_TIMEOUT: '100ms',
    MENTAT_METRICS_HOST: '127.0.0.1',
    MENTAT_METRICS_PORT: String(metricsPort),
    MENTAT_LOG_LEVEL: 'info',
    ...otelEnv,
  };
  const child = spawn(NODE, [MAIN], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  const agent: RunningAgent = {
    child,
    metricsPort,
    logs,
    stderr: '',
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    describe() {
      const tail = logs.slice(-15).map((l) => JSON.stringify(l).slice(0, 300));
      return `agent pid ${child.pid} (exit ${child.exitCode ?? child.signalCode ?? 'running'}), last log lines:\n  ${tail.join('\n  ')}\nstderr: ${agent.stderr.slice(-1500)}`;
    },
  };
  t.after(() => agent.kill());
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ msg: line });
    }
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => (agent.stderr += c));

  await until(
    'the agent to answer /readyz with 200',
    10_000,
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('the agent exited during start-up');
      const { status } = await httpGet(`http://127.0.0.1:${metricsPort}/readyz`);
      return status === 200 ? true : undefined;
    },
    { everyMs: 50, context: () => agent.describe() },
  );
  return agent;
}

/** node_latency_count per destination from /metrics. */
async function scrapeCounts(agent: RunningAgent): Promise<Map<string, number>> {
  const { status, body } = await httpGet(`http://127.0.0.1:${agent.metricsPort}/metrics`);
  assert.equal(status, 200, '/metrics answers 200');
  const counts = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (!line.startsWith('node_latency_count{')) continue;
    const destination = /destination_node="([^"]*)"/.exec(line)?.[1] ?? '';
    counts.set(destination, Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}

const total = (counts: Map<string, number>): number => [...counts.values()].reduce((a, b) => a + b, 0);

/** Log lines at warn or above that are about OTLP export. */
function exportFailureLines(logs: readonly LogLine[]): LogLine[] {
  return logs.filter((l) => (l.level ?? 0) >= 40 && /OpenTelemetry|OTLP|export/i.test(`${l.msg ?? ''} ${JSON.stringify(l['detail'] ?? '')}`));
}

/** The node_latency points of the last accepted export, once it has both destinations with samples. */
function latestLatency(receiver: OtlpReceiver): MetricPoint[] | undefined {
  const points = receiver.latestPoints('node_latency');
  const withSamples = new Set(points.filter((p) => (p.count ?? 0) > 0).map((p) => p.attributes['destination_node']));
  return DESTINATIONS.every((d) => withSamples.has(d)) ? points : undefined;
}

/**
 * Cumulative series in arrival order: the same start time, and a count that never goes down
 * (a lower count after a higher one reads as a counter reset to a backend; Prometheus drops it as out of order).
 */
function assertCumulativeInOrder(receiver: OtlpReceiver): void {
  for (const destination of DESTINATIONS) {
    const series = receiver.points('node_latency').filter((p) => p.attributes['destination_node'] === destination);
    for (let i = 1; i < series.length; i++) {
      assert.equal(series[i]!.startTimeUnixNano, series[0]!.startTimeUnixNano, `${destination}: cumulative series keep their start time`);
      assert.ok(
        series[i]!.count! >= series[i - 1]!.count!,
        `${destination}: cumulative count never decreases from one export to the next; counts in arrival order: ${series.map((p) => p.count).join(' ')}`,
      );
    }
  }
}

/** Everything an export of the agent must carry: node_latency, node_latency_probes, the resource. */
function assertAgentExport(receiver: OtlpReceiver, otelResource: Record<string, string>, options: { inOrder: boolean } = { inOrder: true }): void {
  const latency = latestLatency(receiver);
  assert.ok(latency, `an export with node_latency samples for ${DESTINATIONS.join(', ')}; ${receiver.summary()}`);

  assert.deepEqual(new Set(latency.map((p) => p.attributes['destination_node'])), new Set(DESTINATIONS), 'one series per target, nothing else');
  for (const p of latency) {
    const where = `node_latency{destination_node=${JSON.stringify(p.attributes['destination_node'])}}`;
    assert.equal(p.type, 'histogram', `${where} is an explicit-bucket histogram`);
    assert.equal(p.unit, 's', `${where} unit`);
    assert.equal(p.temporality, CUMULATIVE, `${where} temporality`);
    // Static targets have no zone: the zone attributes (on by default) say so.
    assert.deepEqual(
      p.attributes,
      { origin_node: NODE_NAME, destination_node: p.attributes['destination_node'], path: 'node', origin_zone: 'unknown', destination_zone: 'unknown' },
      `${where} attributes`,
    );
    assert.equal(p.scope.name, 'mentat', `${where} scope`);
    assert.ok(p.count! > 0, `${where} count > 0`);
    assert.ok(p.sum !== undefined && p.sum > 0, `${where} sum > 0 (got ${p.sum})`);
    assert.ok(p.sum < p.count! * 0.1, `${where} loopback RTTs are below the 100 ms timeout (sum ${p.sum}, count ${p.count})`);
    assert.deepEqual(p.explicitBounds, [...DEFAULT_BUCKETS_SECONDS], `${where} explicit bounds are the default buckets`);
    assert.equal(p.bucketCounts!.length, DEFAULT_BUCKETS_SECONDS.length + 1, `${where} one bucket count per bound, plus +Inf`);
    assert.equal(
      p.bucketCounts!.reduce((a, b) => a + b, 0),
      p.count,
      `${where} bucket counts add up to count`,
    );
    assert.ok(p.startTimeUnixNano > 0 && p.startTimeUnixNano <= p.timeUnixNano, `${where} start <= time`);
  }

  if (options.inOrder) assertCumulativeInOrder(receiver);

  const exportIndex = latency[0]!.exportIndex;
  const probes = receiver.points(
    'node_latency_probes',
    receiver.exports.filter((e) => e.index === exportIndex),
  );
  assert.ok(probes.length > 0, 'node_latency_probes is in the same export');
  for (const p of probes) {
    assert.equal(p.type, 'sum', 'node_latency_probes is a sum');
    assert.equal(p.isMonotonic, true, 'node_latency_probes is monotonic (a counter)');
    assert.equal(p.temporality, CUMULATIVE, 'node_latency_probes temporality');
    assert.equal(p.attributes['origin_node'], NODE_NAME);
  }
  for (const destination of DESTINATIONS) {
    const byResult = new Map(probes.filter((p) => p.attributes['destination_node'] === destination).map((p) => [p.attributes['result'], p.value]));
    assert.deepEqual(new Set(byResult.keys()), new Set(['success', 'timeout', 'error']), `${destination}: probes by result, all three from the start`);
    assert.ok(byResult.get('success')! > 0, `${destination}: successful probes counted`);
  }

  for (const resource of receiver.resources()) {
    assert.equal(resource['service.name'], 'mentat', 'resource service.name');
    assert.equal(resource['k8s.node.name'], NODE_NAME, 'resource k8s.node.name = NODE_NAME');
    assert.equal(resource['host.name'], hostname(), 'resource host.name');
    for (const [key, value] of Object.entries(otelResource)) assert.equal(resource[key], value, `resource ${key} from OTEL_RESOURCE_ATTRIBUTES`);
  }
  assert.deepEqual(receiver.decodeErrors, [], 'every request decodes as an ExportMetricsServiceRequest');
  assert.deepEqual(receiver.strayPaths, [], 'no request on another path');
}

test('OTLP http/protobuf: OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/metrics appended; histogram, counter and resource arrive', { timeout: 20_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'http/protobuf' });
  t.after(() => receiver.stop());
  const agent = await startAgent(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_METRIC_EXPORT_INTERVAL: '200',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
  });

  await receiver.waitFor(
    (r) => latestLatency(r) !== undefined && r.points('node_latency').length >= 2 * DESTINATIONS.length,
    5000,
    'two exports with node_latency samples for both targets',
  );
  assertAgentExport(receiver, { 'deployment.environment': 'test' });
  for (const e of receiver.exports) {
    assert.equal(e.path, '/v1/metrics');
    assert.equal(e.contentType, 'application/x-protobuf');
  }
  assert.equal(exportFailureLines(agent.logs).length, 0, `no export failure logged:\n${agent.describe()}`);
});

test('OTLP http/protobuf: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is used as is and wins over OTEL_EXPORTER_OTLP_ENDPOINT', { timeout: 20_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'http/protobuf', path: '/tenant-a/v1/metrics' });
  t.after(() => receiver.stop());
  const nobody = await freePort();
  await startAgent(t, {
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.metricsUrl,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${nobody}`,
    OTEL_METRIC_EXPORT_INTERVAL: '200',
  });

  await receiver.waitFor((r) => latestLatency(r) !== undefined, 5000, 'an export with node_latency samples at /tenant-a/v1/metrics');
  assert.deepEqual(receiver.strayPaths, [], 'nothing appended to the signal-specific URL');
  assert.deepEqual(new Set(receiver.exports.map((e) => e.path)), new Set(['/tenant-a/v1/metrics']));
  assertAgentExport(receiver, {});
});

test('OTLP grpc: OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports to MetricsService/Export', { timeout: 20_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'grpc' });
  t.after(() => receiver.stop());
  const agent = await startAgent(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    // The export timeout is the interval (at most 10 s): 1 s leaves the first export, which also
    // opens the HTTP/2 channel, room on a busy machine, where 200 ms once ran out (DEADLINE_EXCEEDED).
    OTEL_METRIC_EXPORT_INTERVAL: '1000',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
  });

  await receiver.waitFor(
    (r) => latestLatency(r) !== undefined && r.points('node_latency').length >= 2 * DESTINATIONS.length,
    8000,
    'two gRPC exports with node_latency samples',
  );
  assertAgentExport(receiver, { 'deployment.environment': 'test' });
  for (const e of receiver.exports) assert.equal(e.path, '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export');
  assert.equal(exportFailureLines(agent.logs).length, 0, `no export failure logged:\n${agent.describe()}`);
});

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
