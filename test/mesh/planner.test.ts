/** The selection unit: schedules, routing of outcomes, outliers found by the sweep, gauges, the own node's state. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { silentLog } from '../../src/log.js';
import { MeshPlanner } from '../../src/mesh/planner.js';
import type { MeshNode, Outcome, Target } from '../../src/types.js';
import { ManualClock } from '../support/fake-clock.js';

const node = (i: number, extra: Partial<MeshNode> = {}): MeshNode => {
  const name = `n${i}`;
  const zone = i % 2 === 0 ? 'z1' : 'z2';
  return { name, zone, state: 'active', targets: i === 0 ? [] : [{ key: name, name, address: `198.18.0.${i}`, family: 4, zone }], ...extra };
};

function setup(env: Record<string, string> = {}, wallNow = () => 10 * 3_600_000) {
  const { config } = loadConfig({
    env: { NODE_NAME: 'n0', MENTAT_MESH: 'sampled', MENTAT_PEERS: '3', MENTAT_OUTLIER_HOLD: '1m', ...env },
    argv: [],
    hostname: 'h',
  });
  const clock = new ManualClock();
  const seen = {
    everyInterval: [] as Target[],
    sweep: [] as Target[],
    pairs: [] as string[],
    sweeps: [] as string[],
    retained: new Set<string>(),
    zones: [] as Array<string | undefined>,
  };
  const planner = new MeshPlanner({
    config,
    clock,
    wallNow,
    log: silentLog,
    sinks: {
      schedule: (everyInterval, sweep) => Object.assign(seen, { everyInterval, sweep }),
      recordPair: (t) => seen.pairs.push(t.name),
      retainPairs: (keys) => (seen.retained = new Set(keys)),
      recordSweep: (zone, _path, o) => seen.sweeps.push(`${zone}:${o.kind}`),
      originZone: (zone) => seen.zones.push(zone),
    },
  });
  return { planner, clock, seen };
}

const LOST: Outcome = { kind: 'timeout' };
const OK: Outcome = { kind: 'success', rttSeconds: 0.0003 };

test('peers are probed every interval with series of their own; the rest is swept into the zone series', () => {
  const { planner, seen } = setup();
  planner.setNodes(Array.from({ length: 20 }, (_, i) => node(i)));
  assert.equal(seen.everyInterval.length, 3);
  assert.equal(seen.sweep.length, 16);
  assert.deepEqual(seen.zones, ['z1']);
  const peer = seen.everyInterval[0]!;
  const swept = seen.sweep[0]!;
  planner.onResult(peer, OK);
  planner.onResult(swept, OK);
  planner.onResult({ ...swept, key: 'gone', name: 'gone' }, OK);
  assert.deepEqual(seen.pairs, [peer.name]);
  assert.deepEqual(seen.sweeps, [`${swept.zone}:success`], 'an outcome for a target no longer planned is dropped');
  assert.deepEqual([...seen.retained].sort(), seen.everyInterval.map((t) => t.key).sort());
  planner.stop();
});

test('a pair the sweep finds lossy gets series of its own within the confirmation, and loses them after the hold', () => {
  const { planner, seen, clock } = setup();
  planner.setNodes(Array.from({ length: 20 }, (_, i) => node(i)));
  const bad = seen.sweep[0]!;
  planner.onResult(bad, LOST);
  assert.ok(
    seen.everyInterval.some((t) => t.key === bad.key),
    'a suspect is probed every interval',
  );
  assert.ok(!seen.sweep.some((t) => t.key === bad.key));
  assert.ok(!seen.retained.has(bad.key), 'no series while only a suspect');
  assert.equal(planner.stats().targets.suspect, 1);
  planner.onResult(bad, LOST);
  planner.onResult(bad, LOST);
  assert.ok(seen.retained.has(bad.key), 'confirmed: an outlier with series');
  assert.equal(planner.stats().targets.outlier, 1);
  planner.onResult(bad, LOST);
  assert.equal(seen.pairs.filter((n) => n === bad.name).length, 1, "an outlier's outcomes are recorded per pair");
  for (let s = 0; s < 70; s++) {
    clock.advance(1000);
    planner.onResult(bad, OK);
  }
  assert.ok(!seen.retained.has(bad.key), 'normal for the hold time: its series go');
  assert.ok(
    seen.sweep.some((t) => t.key === bad.key),
    'and it is swept again',
  );
  assert.equal(planner.stats().targets.outlier, 0);
  planner.stop();
  assert.equal(clock.pendingTimers, 0, 'stop leaves no timer');
});

test('mentat_targets figures, and the own node: joining while young, then active; cordoned; leaving', () => {
  const now = 10 * 3_600_000;
  const { planner } = setup({ MENTAT_NODE_WARMUP: '10m' }, () => now);
  const nodes = Array.from({ length: 20 }, (_, i) => node(i, i === 7 ? { state: 'leaving' } : {}));
  planner.setNodes([{ ...nodes[0]!, createdAtMs: now - 60_000 }, ...nodes.slice(1)]);
  assert.deepEqual(planner.stats().targets, { known: 19, probed: 3, swept: 15, suspect: 0, outlier: 0, leaving: 1, over_cap: 0 });
  assert.equal(planner.selfState(), 'joining');
  planner.setNodes([{ ...nodes[0]!, createdAtMs: now - 3_600_000 }, ...nodes.slice(1)]);
  assert.equal(planner.selfState(), 'active');
  planner.setNodes([{ ...nodes[0]!, state: 'cordoned' }, ...nodes.slice(1)]);
  assert.equal(planner.selfState(), 'cordoned');
  planner.setNodes([{ ...nodes[0]!, state: 'leaving' }, ...nodes.slice(1)]);
  assert.equal(planner.stats().nodeState, 'leaving');
  assert.equal(planner.stats().targets.probed, 0, 'a leaving node probes nothing');
  planner.stop();
});
