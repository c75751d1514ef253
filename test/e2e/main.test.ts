/**
 * Survive faults and bad input, the part that needs no network namespace: the built agent running on
 * the loopback (unknown settings, HTTP abuse, hostile label values, SIGTERM during a slow OTLP export,
 * SIGINT twice) and discovery's backoff cap in-process against the fake API server. The process that
 * must not start (bad configuration, an old Node) is in main-startup.test.ts.
 * Loopback only; every process is killed when its test ends.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeClient } from '../../src/kube/client.js';
import { NodeWatch } from '../../src/kube/node-watch.js';
import { RateLimitedLog, type Log } from '../../src/log.js';
import { FakeApiServer, makeNode, waitFor } from '../fake-apiserver/index.js';
import { launchLocalAgent, until, type Agent } from '../support/fault-client.js';
import { OtlpReceiver } from '../support/otlp-receiver.js';
import { promtoolParse, strictParse } from '../support/strict-exposition.js';

const LOOPBACK = 'lo4=127.0.0.1,lo6=::1';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mentat-faults-unit-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function agentFor(t: TestContext, env: Record<string, string>): Promise<Agent> {
  const agent = await launchLocalAgent({ MENTAT_TARGETS: LOOPBACK, MENTAT_PROBE_INTERVAL: '100ms', MENTAT_PROBE_TIMEOUT: '100ms', ...env });
  t.after(() => agent.kill());
  await until(
    '/readyz 200',
    10_000,
    async () => {
      if (!agent.alive()) throw new Error('the agent exited');
      return (await agent.get('/readyz')).status === 200 ? true : undefined;
    },
    { context: () => agent.describe() },
  );
  return agent;
}

/** One raw HTTP/1.1 exchange: what we write is exactly what the server sees. */
function rawHttp(port: number, request: string | Buffer): Promise<{ status: number; headers: Record<string, string>; body: string; raw: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 5 s')), 5000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const [head = '', ...rest] = raw.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = head.split('\r\n');
      const headers = Object.fromEntries(headerLines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body: rest.join('\r\n\r\n'), raw });
    });
    socket.write(request);
    // Half-close: the server answers, then closes; nothing else keeps the socket open.
    socket.end();
  });
}

// First, so that the collector's held answers (6 s) run out while the other tests run.
test('SIGTERM while an OTLP export hangs on a slow collector: exit 0 within 5 s', { timeout: 30_000 }, async (t) => {
  const receiver = await OtlpReceiver.start({ protocol: 'http/protobuf' });
  t.after(() => receiver.stop());
  // Each answer takes 6 s; an export times out after its 2 s interval, and the shutdown flush after 2 s.
  receiver.setSlow(6000);
  const agent = await agentFor(t, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_METRIC_EXPORT_INTERVAL: '2000' });
  await until('an export request held by the collector', 10_000, () => (receiver.requests >= 1 ? true : undefined));
  const stopped = await agent.stop();
  const deadline = agent.lines().some((l) => /shutdown took too long/.test(String(l.msg)));
  t.diagnostic(
    `exit ${stopped.code} after ${stopped.ms} ms; ${receiver.requests} export requests arrived, none answered${deadline ? '; through the 4.5 s shutdown deadline' : ''}`,
  );
  assert.equal(stopped.code, 0, agent.describe());
  assert.equal(stopped.signal, null);
  assert.ok(stopped.ms < 5000, `exited ${stopped.ms} ms after SIGTERM`);
  assert.ok(
    agent.lines().some((l) => l.msg === 'mentat stopped'),
    `orderly stop:\n${agent.describe()}`,
  );
  assert.ok(!deadline, 'the final flush is bounded by itself, not by the deadline');
});

test('an unknown MENTAT_* variable is one warning line naming it; the agent runs', { timeout: 20_000 }, async (t) => {
  const agent = await agentFor(t, { MENTAT_PROBE_INTERVALL: '1s', MENTAT_FROBNICATE: 'yes' });
  const warnings = agent.warnings();
  assert.deepEqual(
    warnings.map((l) => l.msg).sort(),
    [
      'unknown setting MENTAT_FROBNICATE is ignored; run with --help to list the settings',
      'unknown setting MENTAT_PROBE_INTERVALL is ignored; run with --help to list the settings',
    ],
    agent.describe(),
  );
  assert.equal((await agent.stop()).code, 0);
});
test(
  'HTTP: 405 for POST/PUT/DELETE, 413 for a request body, 431 for oversized headers, 404 for unknown paths; /metrics still served',
  { timeout: 20_000 },
  async (t) => {
    const agent = await agentFor(t, {});
    const port = agent.port;
    // Ready does not mean probed yet: the last check below must see series that existed before the abuse.
    await until('a probe on /metrics', 10_000, async () => (/node_latency_probes_total\{/.test((await agent.get('/metrics')).body) ? true : undefined));
    const req = (head: string, body = '') =>
      rawHttp(port, `${head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n${body === '' ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`}\r\n${body}`);
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      for (const path of ['/metrics', '/healthz']) {
        const r = await req(`${method} ${path} HTTP/1.1`, method === 'DELETE' ? '' : 'x=1');
        assert.equal(r.status, 405, `${method} ${path}: ${r.raw.slice(0, 200)}`);
        assert.equal(r.headers['allow'], 'GET, HEAD', `${method} ${path}: Allow header`);
      }
    }
    const withBody = await req('GET /metrics HTTP/1.1', 'hello');
    assert.equal(withBody.status, 413, `GET with a body: ${withBody.raw.slice(0, 200)}`);
    const chunked = await rawHttp(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(chunked.status, 413, `GET with a chunked body: ${chunked.raw.slice(0, 200)}`);
    const huge = await rawHttp(port, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    assert.equal(huge.status, 431, `16 KiB header: ${huge.raw.slice(0, 200)}`);
    const many = await rawHttp(
      port,
      `GET /metrics HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'b'.repeat(30)}`).join('\r\n')}\r\n\r\n`,
    );
    assert.equal(many.status, 431, `400 headers: ${many.raw.slice(0, 200)}`);
    for (const path of ['/nope', '/metrics/../../etc/passwd', '/metricsx', '/.env']) {
      const r = await req(`GET ${path} HTTP/1.1`);
      assert.equal(r.status, 404, `${path}: ${r.raw.slice(0, 200)}`);
      assert.ok(!r.body.includes('node_latency'), `${path}: no metrics in a 404`);
    }
    const head = await req('HEAD /metrics HTTP/1.1');
    assert.equal(head.status, 200);
    assert.equal(head.body, '', 'HEAD has no body');
    const ok = await agent.get('/metrics');
    assert.equal(ok.status, 200, 'still serving after all that');
    assert.match(ok.body, /node_latency_probes_total\{/);
    assert.ok(agent.alive());
    assert.equal((await agent.stop()).code, 0);
  },
);

test('label values from hostile static target names, NODE_NAME and resource attributes are escaped per the text format', { timeout: 20_000 }, async (t) => {
  const names = ['q"uote', 'back\\slash', 'new\nline', 'br}ace{', 'trailing\\', 'ünïcødé ✓'];
  const nodeName = 'origin"\\\nnode';
  const agent = await agentFor(t, {
    MENTAT_TARGETS: names.map((n, i) => `${n}=${i % 2 === 0 ? '127.0.0.1' : '::1'}`).join(','),
    NODE_NAME: nodeName,
    // Percent-encoded per the OTel spec: deployment.environment = a"b\c<newline>d
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=a%22b%5Cc%0Ad',
  });
  const body = await until(
    'every target on /metrics',
    10_000,
    async () => {
      const b = (await agent.get('/metrics')).body;
      return (b.match(/^node_latency_count\{/gm) ?? []).length === names.length ? b : undefined;
    },
    { context: () => agent.describe() },
  );
  const { samples } = strictParse(body);
  const dests = [...new Set(samples.filter((s) => s.name === 'node_latency_count').map((s) => s.labels['destination_node']!))].sort();
  assert.deepEqual(dests, [...names].sort(), 'every name round-trips through the escaping');
  assert.deepEqual([...new Set(samples.filter((s) => s.name.startsWith('node_latency')).map((s) => s.labels['origin_node']))], [nodeName]);
  const info = samples.find((s) => s.name === 'target_info');
  assert.equal(info?.labels['deployment_environment'], 'a"b\\c\nd', 'resource attributes too');
  assert.equal(info?.labels['k8s_node_name'], nodeName);
  const promtool = promtoolParse(body);
  if (promtool !== undefined) assert.equal(promtool, '', 'promtool (the Prometheus parser) reads the exposition');
  t.diagnostic(`escaped lines look like: ${body.split('\n').find((l) => l.startsWith('node_latency_count{') && l.includes('new'))}`);
});

test('discovery backoff doubles from 1 s, is capped at 30 s, logs one line, and starts over after a successful list', { timeout: 20_000 }, async () => {
  const server = await FakeApiServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(dir));
  const lines: Array<{ level: string; message: string }> = [];
  const record = (level: string) => (_fields: object, message: string) => lines.push({ level, message });
  const log: Log = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
  let targets = 0;
  const delays: number[] = [];
  const discovery = new NodeWatch({
    client: await loadKubeClient(),
    kubeConfig: kc,
    onEntries: (entries) => (targets = entries.length),
    log,
    warnings: new RateLimitedLog(log, 60_000, () => Date.now()),
    delay: async (ms) => {
      delays.push(ms);
      await new Promise((r) => setTimeout(r, 5));
    },
  });
  try {
    server.upsertNode(makeNode('a', '198.18.0.2'));
    server.setAuth(401);
    discovery.start();
    await waitFor(() => delays.length >= 9, 10_000, 'nine retries');
    assert.deepEqual(delays.slice(0, 9), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000], 'doubling, capped at 30 s');
    assert.equal(lines.filter((l) => l.level === 'error').length, 1, 'one line for nine refusals');
    server.setAuth('ok');
    await waitFor(() => discovery.synced && targets === 1, 10_000, 'synced after the fix');
    // The next failure starts from 1 s again: the list succeeded.
    const before_ = delays.length;
    server.setAuth(401);
    server.cutWatches();
    await waitFor(() => delays.length > before_, 10_000, 'a retry after the cut');
    assert.equal(delays[before_], 1000, `backoff starts over after a successful list: ${delays.slice(before_).join(', ')}`);
    assert.equal(targets, 1, 'the last known node is kept while refused');
  } finally {
    await discovery.stop();
    await server.stop();
  }
});
test('SIGINT twice (the terminal and npm each send one on Ctrl-C): one orderly stop, exit 0', { timeout: 20_000 }, async (t) => {
  const agent = await agentFor(t, {});
  agent.child.kill('SIGINT');
  agent.child.kill('SIGINT');
  const { code, signal } = await agent.exited;
  assert.equal(signal, null, agent.describe());
  assert.equal(code, 0, agent.describe());
  assert.equal(agent.lines().filter((l) => l.msg === 'mentat stopped').length, 1, agent.describe());
  assert.equal(agent.lines().filter((l) => l.msg === 'shutting down').length, 1, 'the second signal starts nothing new');
});
