import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IcmpPermissionError, SocketFailure } from '../../src/icmp/socket.js';
import type { EngineEvents, ProbeSettings } from '../../src/probe/engine.js';
import { LocalEngine } from '../../src/probe/local-engine.js';
import type { Family, Outcome, Target } from '../../src/types.js';
import { ManualClock } from '../support/fake-clock.js';
import { FakeSocket } from '../support/fake-socket.js';

const settings: ProbeSettings = {
  intervalMs: 1000,
  sweepIntervalMs: 10_000,
  maxProbesPerSecond: 0,
  timeoutMs: 500,
  payloadBytes: 24,
  identifier: 0x4242,
  cookie: Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2]),
};

const t = (key: string, address: string, family: Family = 4): Target => ({ key, name: key, address, family });

function setup() {
  const clock = new ManualClock();
  const sockets = new Map<Family, FakeSocket>([[4, new FakeSocket(4, () => clock.now())]]);
  const seen = { results: [] as Array<[string, Outcome]>, discards: [] as Array<[string, number]>, errors: [] as string[], failures: [] as string[] };
  const events: EngineEvents = {
    onResult: (target, outcome) => seen.results.push([target.key, outcome]),
    onDiscard: (reason, count) => seen.discards.push([reason, count]),
    onSocketError: (message) => seen.errors.push(message),
    onSocketFailure: (message) => seen.failures.push(message),
  };
  let opens = 0;
  const engine = new LocalEngine(
    () => {
      opens++;
      return { sockets, missing: [{ family: 6, reason: 'no IPv6' }] };
    },
    settings,
    clock,
    events,
  );
  return { clock, s4: sockets.get(4)!, seen, engine, opens: () => opens };
}

/** Stops the engine, letting the probes in flight time out. */
async function stopAll(engine: LocalEngine, clock: ManualClock): Promise<void> {
  const stopped = engine.stop();
  clock.advance(settings.timeoutMs);
  await stopped;
}

test('start opens the sockets and says which; targets are probed and their outcomes reported', async () => {
  const { clock, s4, seen, engine, opens } = setup();
  engine.setTargets([t('early', '198.18.0.9')]);
  assert.equal(opens(), 0, 'nothing is opened before start');
  const info = await engine.start();
  assert.deepEqual(info, { sockets: ['raw/ipv4'], missing: [{ family: 6, reason: 'no IPv6' }] });
  engine.setTargets([t('a', '198.18.0.1')], [t('s', '198.18.1.1')]);
  clock.advance(1000);
  assert.ok(s4.sent.some((s) => s.address === '198.18.0.1'));
  assert.ok(!s4.sent.some((s) => s.address === '198.18.0.9'), 'targets set before start are not kept');
  assert.ok(seen.results.some(([key, outcome]) => key === 'a' && outcome.kind === 'timeout'));
  await stopAll(engine, clock);
});

test('a discarded probe is reported one at a time, by its reason', async () => {
  const { clock, s4, seen, engine } = setup();
  await engine.start();
  s4.sendError = Object.assign(new Error('buffer full'), { code: 'EAGAIN' });
  engine.setTargets([t('a', '198.18.0.1')]);
  clock.advance(999);
  assert.deepEqual(seen.discards, [['send_buffer', 1]]);
  await stopAll(engine, clock);
});

test('socket errors are reported with their family; a socket that stopped reading is a failure', async () => {
  const { s4, seen, engine } = setup();
  await engine.start();
  s4.emitError(new Error('recv failed'));
  s4.emitError(new SocketFailure('poll failed'));
  assert.deepEqual(seen.errors, ['ICMPv4 socket: recv failed']);
  assert.deepEqual(seen.failures, ['ICMPv4 socket: poll failed']);
  await engine.stop();
});

test('sockets that cannot be opened reject start, never throw; stop after that resolves', async () => {
  const denied = new IcmpPermissionError('raw denied');
  const engine = new LocalEngine(
    () => {
      throw denied;
    },
    settings,
    new ManualClock(),
    { onResult: () => {}, onSocketError: () => {} },
  );
  const started = engine.start();
  await assert.rejects(started, (err) => err === denied);
  await engine.stop();
});

test('stop closes every socket once probes in flight have ended, and is idempotent', async () => {
  const { clock, s4, engine } = setup();
  await engine.start();
  engine.setTargets([t('a', '198.18.0.1')]);
  clock.advance(1100);
  const stopped = engine.stop();
  assert.equal(engine.stop(), stopped, 'one stop');
  await Promise.resolve();
  assert.equal(s4.closed, false, 'the probe in flight is waited for');
  clock.advance(1000);
  await stopped;
  assert.equal(s4.closed, true);
});
