import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IcmpPermissionError } from '../../src/icmp/socket.js';
import type { ProbeSettings } from '../../src/probe/engine.js';
import { ProcessEngine } from '../../src/probe/process-engine.js';
import type { Outcome } from '../../src/types.js';

const settings: ProbeSettings = {
  intervalMs: 50,
  sweepIntervalMs: 1000,
  maxProbesPerSecond: 0,
  timeoutMs: 50,
  payloadBytes: 24,
  identifier: 0x4243,
  cookie: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
};

test('the probe process probes with raw sockets, sends outcomes back, and stops when told (without CAP_NET_RAW: refuses as IcmpPermissionError)', async () => {
  const outcomes: Array<[string, Outcome]> = [];
  const crashes: Error[] = [];
  const engine = new ProcessEngine({ settings }, { onResult: (t, o) => outcomes.push([t.key, o]), onSocketError: () => {} }, (err) => crashes.push(err));
  let info;
  try {
    info = await engine.start();
  } catch (err) {
    assert.ok(process.getuid?.() !== 0, `as root the probe process must start: ${String(err)}`);
    assert.ok(err instanceof IcmpPermissionError, 'the refusal crosses the process boundary as what it was');
    await engine.stop();
    return;
  }
  try {
    assert.ok(info.sockets.includes('raw/ipv4'), info.sockets.join());
    engine.setTargets([{ key: 'lo', name: 'lo', address: '127.0.0.1', family: 4 }]);
    const deadline = Date.now() + 5000;
    while (!outcomes.some(([, o]) => o.kind === 'success') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    assert.ok(outcomes.length > 0 && outcomes.every(([key]) => key === 'lo'));
    assert.ok(
      outcomes.some(([, o]) => o.kind === 'success'),
      JSON.stringify(outcomes),
    );
  } finally {
    const stopped = engine.stop();
    assert.equal(engine.stop(), stopped, 'one stop');
    await stopped;
  }
  assert.deepEqual(crashes, [], 'a stop asked for is not a crash');
});
