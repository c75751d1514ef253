/** The assembled agent in-process: discovery over real HTTP, selection, metrics and HTTP endpoints, with a fake engine. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { Agent } from '../src/agent.js';
import { loadKubeClient } from '../src/kube/client.js';
import { loadConfig } from '../src/config.js';
import type { EngineInfo, ProbeEngine } from '../src/probe/engine.js';
import { silentLog } from '../src/log.js';
import type { Outcome, Target } from '../src/types.js';
import { FakeApiServer, makeNode, waitFor } from './fake-apiserver/index.js';
import { parseExposition } from './support/exposition.js';
import { ManualClock } from './support/fake-clock.js';

class RecordingEngine implements ProbeEngine {
  targets: Target[] = [];
  sweep: Target[] = [];
  updates = 0;
  stopped = false;
  start(): Promise<EngineInfo> {
    return Promise.resolve({ sockets: ['fake/ipv4'], missing: [] });
  }
  setTargets(targets: readonly Target[], sweep: readonly Target[] = []): void {
    this.targets = [...targets];
    this.sweep = [...sweep];
    this.updates++;
  }
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
}

async function startAgent(env: Record<string, string>, server: FakeApiServer, dir: string) {
  const kc = new KubeConfig();
  kc.loadFromFile(await server.writeKubeconfig(dir));
  const { config } = loadConfig({ env: { MENTAT_METRICS_PORT: '0', MENTAT_METRICS_HOST: '127.0.0.1', NODE_NAME: 'self', ...env }, argv: [], hostname: 'h' });
  const engine = new RecordingEngine();
  let record: (t: Target, o: Outcome) => void = () => {};
  const clock = new ManualClock();
  const agent = await Agent.start({
    config,
    log: silentLog,
    clock,
    startEngine: async (_settings, events) => {
      record = events.onResult;
      return { engine, info: await engine.start() };
    },
    kube: { client: await loadKubeClient(), kubeConfig: kc },
    resource: resourceFromAttributes({ 'service.name': 'mentat' }),
    randomBytes: (n) => new Uint8Array(n).fill(7),
    delay: async () => {},
  });
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${agent.port}${path}`);
    return { status: res.status, body: await res.text() };
  };
  return { agent, engine, clock, get, record: (t: Target, o: Outcome) => record(t, o) };
}

test('a sampled mesh: k peers every interval, the rest swept, zone labels on every series', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mentat-agent-'));
  const server = await FakeApiServer.start();
  const zone = (i: number) => ({ 'topology.kubernetes.io/zone': i % 2 === 0 ? 'z1' : 'z2' });
  const self = makeNode('self', '198.18.0.1', zone(0));
  server.upsertNode({ ...self, metadata: { ...self.metadata, creationTimestamp: new Date(Date.now() - 3_600_000).toISOString() } });
  for (let i = 1; i < 20; i++) server.upsertNode(makeNode(`n${i}`, `198.18.1.${i}`, zone(i)));
  const a = await startAgent({ MENTAT_ZONE_ATTRIBUTES: 'true', MENTAT_MESH: 'sampled', MENTAT_PEERS: '3' }, server, dir);
  try {
    assert.equal((await a.get('/readyz')).status, 503, 'not ready before the first list');
    await waitFor(() => a.engine.targets.length === 3, 5000, 'first plan');
    assert.equal((await a.get('/readyz')).status, 200);
    assert.equal(a.engine.sweep.length, 16, 'every other node is swept');
    assert.ok(
      a.engine.targets.some((t) => t.zone === 'z2'),
      'a peer in the other zone',
    );
    for (const t of a.engine.targets) a.record(t, { kind: 'success', rttSeconds: 0.001 });
    for (const t of a.engine.sweep) a.record(t, { kind: 'success', rttSeconds: 0.0004 });
    const samples = parseExposition((await a.get('/metrics')).body);
    assert.deepEqual(
      samples
        .filter((s) => s.name === 'node_latency_count')
        .map((s) => `${s.labels['origin_zone']}->${s.labels['destination_node']}@${s.labels['destination_zone']}`)
        .sort(),
      a.engine.targets.map((t) => `z1->${t.name}@${t.zone}`).sort(),
      'per-pair series for the peers only',
    );
    const sweep = samples.filter((s) => s.name === 'node_latency_sweep_count');
    const swept = (z: string) => a.engine.sweep.filter((t) => t.zone === z).length;
    assert.deepEqual(
      sweep.map((s) => `${s.labels['origin_zone']}->${s.labels['destination_zone']}=${s.value}`).sort(),
      [`z1->z1=${swept('z1')}`, `z1->z2=${swept('z2')}`],
      'the sweep by zone',
    );
    const gauges = samples.filter((s) => s.name === 'mentat_targets');
    assert.deepEqual(gauges.map((g) => `${g.labels['state']}=${g.value}`).sort(), [
      'known=19',
      'leaving=0',
      'outlier=0',
      'over_cap=0',
      'probed=3',
      'suspect=0',
      'swept=16',
    ]);
    assert.deepEqual(
      samples.filter((s) => s.name === 'mentat_node_state' && s.value === 1).map((s) => s.labels['state']),
      ['active'],
      'created an hour ago',
    );
  } finally {
    await a.agent.stop();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the target cap leaves nodes out, says so in mentat_targets, and the budget shows in mentat_probe_interval_seconds', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mentat-agent-'));
  const server = await FakeApiServer.start();
  for (let i = 0; i < 30; i++) server.upsertNode(makeNode(`n${i}`, `198.18.2.${i}`));
  const a = await startAgent({ MENTAT_MAX_TARGETS: '20', MENTAT_MAX_PPS: '10' }, server, dir);
  try {
    await waitFor(() => a.engine.targets.length === 20, 5000);
    for (const t of a.engine.targets) a.record(t, { kind: 'timeout' });
    const text = (await a.get('/metrics')).body;
    const samples = parseExposition(text);
    const states = samples.filter((s) => s.name === 'mentat_targets').map((g) => `${g.labels['state']}=${g.value}`);
    assert.ok(states.includes('over_cap=10') && states.includes('probed=20'), states.join(' '));
    assert.equal(samples.find((s) => s.name === 'mentat_probe_interval_seconds')?.value, 2, '20 targets at 10 per second: every 2 s');
    assert.equal(new Set(samples.filter((s) => s.name === 'node_latency_probes_total').map((s) => s.labels['destination_node'])).size, 20);
    server.deleteNode('n0');
    server.deleteNode('n1');
    await waitFor(() => a.engine.updates >= 2 && a.engine.targets.length === 20, 5000);
  } finally {
    await a.agent.stop();
    assert.equal(a.engine.stopped, true);
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the HTTP server answers only GET and HEAD, without bodies, and 404s unknown paths', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mentat-agent-'));
  const server = await FakeApiServer.start();
  const a = await startAgent({}, server, dir);
  try {
    const url = `http://127.0.0.1:${a.agent.port}`;
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    assert.equal((await fetch(`${url}/metrics`, { method: 'HEAD' })).status, 200);
    const post = await fetch(`${url}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal((await fetch(`${url}/nope`)).status, 404);
    const withBody = await new Promise<number>((resolve, reject) => {
      const req = request(`${url}/metrics`, { method: 'GET', headers: { 'content-length': '5' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('hello');
    });
    assert.equal(withBody, 413);
  } finally {
    await a.agent.stop();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
