/**
 * The agent as the OTLP e2e tests run it: the real process (raw ICMP to 127.0.0.1 and ::1, static
 * targets, fast probes) started with only the OTEL_* settings a test gives, its /metrics read back,
 * and the checks every export of it must pass. Needs root (raw ICMP sockets).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { DEFAULT_BUCKETS_SECONDS } from '../../src/config.js';
import { freePort, MAIN, REPO, until } from './agent-process.js';
import type { Exit, LogLine } from './fault-client.js';
import type { MetricPoint } from './otlp-points.js';
import type { OtlpReceiver } from './otlp-receiver.js';

/** The project's Node 24 (never the system Node), falling back to whatever runs the tests. */
const NODE = existsSync(join(REPO, 'node_modules', '.bin', 'node')) ? join(REPO, 'node_modules', '.bin', 'node') : process.execPath;

const NODE_NAME = 'otlp-test-node';
/** The static targets the agent probes: MENTAT_TARGETS below. */
export const DESTINATIONS = ['lo4', 'lo6'];
const CUMULATIVE = 'AGGREGATION_TEMPORALITY_CUMULATIVE';

export interface RunningAgent {
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
export async function startAgent(t: TestContext, otelEnv: Record<string, string>): Promise<RunningAgent> {
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
export async function scrapeCounts(agent: RunningAgent): Promise<Map<string, number>> {
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

/** The sum of the per-destination counts. */
export const total = (counts: Map<string, number>): number => [...counts.values()].reduce((a, b) => a + b, 0);

/** Log lines at warn or above that are about OTLP export. */
export function exportFailureLines(logs: readonly LogLine[]): LogLine[] {
  return logs.filter((l) => (l.level ?? 0) >= 40 && /OpenTelemetry|OTLP|export/i.test(`${l.msg ?? ''} ${JSON.stringify(l['detail'] ?? '')}`));
}

/** The node_latency points of the last accepted export, once it has both destinations with samples. */
export function latestLatency(receiver: OtlpReceiver): MetricPoint[] | undefined {
  const points = receiver.latestPoints('node_latency');
  const withSamples = new Set(points.filter((p) => (p.count ?? 0) > 0).map((p) => p.attributes['destination_node']));
  return DESTINATIONS.every((d) => withSamples.has(d)) ? points : undefined;
}

/**
 * Cumulative series in arrival order: the same start time, and a count that never goes down
 * (a lower count after a higher one reads as a counter reset to a backend; Prometheus drops it as out of order).
 */
export function assertCumulativeInOrder(receiver: OtlpReceiver): void {
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
export function assertAgentExport(receiver: OtlpReceiver, otelResource: Record<string, string>, options: { inOrder: boolean } = { inOrder: true }): void {
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
