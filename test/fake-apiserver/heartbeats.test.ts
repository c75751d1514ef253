/**
 * Kubelet-like node status updates (heartbeats.ts): each node once per period, spread evenly over
 * it, each a MODIFIED event with a later lastHeartbeatTime; deleted nodes dropped and new ones
 * joining; stop; and 5000 kubelet-sized nodes to two watchers at well under a millisecond an update.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { setImmediate as yieldToIo } from 'node:timers/promises';
import { Watch } from '@kubernetes/client-node';
import { ManualClock } from '../support/fake-clock.js';
import { startNodeHeartbeats } from './heartbeats.js';
import { makeNode, makeRealisticNode, sumLoad, waitFor, type StoredNode } from './index.js';
import { nodeName, rawWatch, seed, setup } from './test-helpers.js';

test('node heartbeats: each node once per period, spread evenly, each a MODIFIED event with a new lastHeartbeatTime; churn and stop', async (t) => {
  const { server, kc } = await setup(t);
  seed(server, 50);
  const clock = new ManualClock();
  const beatsAt = new Map<string, number[]>();
  const spy: Parameters<typeof startNodeHeartbeats>[0] = {
    nodeNames: () => server.nodeNames(),
    updateObject: (resource, namespace, name, fn) => {
      beatsAt.set(name, [...(beatsAt.get(name) ?? []), clock.now()]);
      return server.updateObject(resource, namespace, name, fn);
    },
  };
  const events: Array<{ type: string; name: string; heartbeat: string }> = [];
  // Watch hands over the JSON as it came: times are strings, not Dates.
  const ctl = await new Watch(kc).watch(
    '/api/v1/nodes',
    { resourceVersion: server.resourceVersion },
    (type: string, obj: StoredNode) => {
      events.push({ type, name: obj.metadata.name, heartbeat: String(obj.status?.conditions?.[0]?.['lastHeartbeatTime']) });
    },
    () => undefined,
  );
  t.after(() => ctl.abort());
  const rv0 = Number(server.resourceVersion);

  const hb = startNodeHeartbeats(spy, { periodMs: 1000, clock });
  clock.advance(999);
  assert.equal(hb.beats, 50, 'one period: every node once');
  assert.equal(Number(server.resourceVersion), rv0 + 50, 'each beat is a new resourceVersion');
  const first = [...beatsAt.values()].map((ts) => ts[0] ?? -1).sort((a, b) => a - b);
  assert.deepEqual(
    first,
    Array.from({ length: 50 }, (_, i) => i * 20),
    'spread evenly over the period',
  );
  clock.advance(1000);
  assert.equal(hb.beats, 100);
  for (const [name, ts] of beatsAt) assert.equal((ts[1] ?? 0) - (ts[0] ?? 0), 1000, `${name} once per period`);

  await waitFor(() => events.length === 100, 2000, '100 MODIFIED events on the watch');
  assert.ok(events.every((e) => e.type === 'MODIFIED'));
  const byNode = new Map<string, string[]>();
  for (const e of events) byNode.set(e.name, [...(byNode.get(e.name) ?? []), e.heartbeat]);
  for (const [name, [a = '', b = '']] of byNode) assert.ok(b > a, `${name}: heartbeat advances (${a} -> ${b})`);

  // A deleted node is dropped, a new one joins at the next period.
  server.deleteNode(nodeName(0));
  server.upsertNode(makeNode('newcomer', '10.9.0.1'));
  clock.advance(1000);
  assert.equal(hb.beats, 150);
  assert.equal(beatsAt.get('newcomer')?.length, 1);
  assert.equal(server.getNode(nodeName(0)), undefined, 'not recreated');

  hb.stop();
  hb.stop();
  clock.advance(5000);
  assert.equal(hb.beats, 150);
  assert.equal(clock.pendingTimers, 0);
});

test('node heartbeats drive 5000 kubelet-sized nodes to two watchers, each update costing well under a millisecond', async (t) => {
  const { server } = await setup(t, { maxHistory: 20_000 });
  server.upsertNodes(Array.from({ length: 5000 }, (_, i) => makeRealisticNode(nodeName(i), `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, i)));
  server.addToken('token-w', 'watcher');
  const from = server.resourceVersion;
  const watches = await Promise.all([0, 1].map(() => rawWatch(t, `${server.url}/api/v1/nodes?watch=true&resourceVersion=${from}`, 'token-w', false)));
  await server.waitFor((s) => s.openWatches === 2, 2000, 'watches open');
  // Both heads have arrived (rawWatch resolves on them) and nothing else was sent: count from here.
  server.resetLoad();
  const base = watches.reduce((n, w) => n + w.bytesRead(), 0);

  const clock = new ManualClock();
  const hb = startNodeHeartbeats(server, { periodMs: 60_000, clock });
  let busyMs = 0;
  for (let step = 0; step < 20; step++) {
    const started = performance.now();
    clock.advance(step === 19 ? 2999 : 3000);
    busyMs += performance.now() - started;
    // Let the sockets drain between bursts, as a real period would.
    await yieldToIo();
  }
  hb.stop();
  assert.equal(hb.beats, 5000);
  await waitFor(() => watches.every((w) => w.count() === 5000), 20_000, 'every update on both watches');
  const bytes = sumLoad(server.load(), { user: 'watcher', kind: 'watch' }).bytes;
  assert.equal(bytes, watches.reduce((n, w) => n + w.bytesRead(), 0) - base, 'accounted bytes are the bytes the watchers read');
  t.diagnostic(
    `5000 status updates in ${busyMs.toFixed(0)} ms of server time (${((busyMs / 5000) * 1000).toFixed(0)} µs each), ${(bytes / 2 / 5000 / 1024).toFixed(1)} KiB per event per watcher`,
  );
  assert.ok(busyMs / 5000 < 1, `${(busyMs / 5000).toFixed(3)} ms per update`);
});
