import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mtuResultOf, PathMtuProbes, type MtuResult } from '../../src/probe/path-mtu.js';
import type { Family, Target } from '../../src/types.js';
import { ManualClock } from '../support/fake-clock.js';
import { FakeSocket } from '../support/fake-socket.js';

const target = (name: string, address: string, path?: 'pod'): Target => ({
  key: path ? `${name}/pod` : name,
  name,
  address,
  family: 4,
  ...(path ? { path } : {}),
});
const flush = () => new Promise((resolve) => setImmediate(resolve));
/** Probes in flight end by their timeout, on the test's clock. */
async function stopAll(probes: PathMtuProbes, clock: ManualClock): Promise<void> {
  const stopping = probes.stop();
  clock.advance(2000);
  await stopping;
}

function setup(mtuOf: (address: string) => number | Error, mtuBytes = 0) {
  const clock = new ManualClock();
  const sockets: FakeSocket[] = [];
  const results: string[] = [];
  const skipped: string[] = [];
  const probes = new PathMtuProbes({
    intervalMs: 30_000,
    timeoutMs: 1000,
    mtuBytes,
    identifier: 7,
    cookie: new Uint8Array(8).fill(3),
    openSockets: () => {
      const socket = new FakeSocket(4, () => clock.now());
      sockets.push(socket);
      return new Map<Family, FakeSocket>([[4, socket]]);
    },
    clock,
    routeMtu: (address) => {
      const mtu = mtuOf(address);
      return mtu instanceof Error ? Promise.reject(mtu) : Promise.resolve(mtu);
    },
    onResult: (t: Target, result: MtuResult, reported?: number) => results.push(`${t.key}:${result}${reported === undefined ? '' : `:${reported}`}`),
    onSkipped: (t, why) => skipped.push(`${t.key}: ${why}`),
  });
  return { clock, sockets, results, skipped, probes };
}

test('outcomes of a full-size probe: answered is ok, unanswered is lost, a fragmentation needed is too_big with its MTU', () => {
  assert.deepEqual(mtuResultOf({ kind: 'success', rttSeconds: 0.001 }), { result: 'ok' });
  assert.deepEqual(mtuResultOf({ kind: 'timeout' }), { result: 'lost' });
  assert.deepEqual(mtuResultOf({ kind: 'error', reason: 'fragmentation needed', nextHopMtu: 1400 }), { result: 'too_big', reportedMtu: 1400 });
  assert.deepEqual(mtuResultOf({ kind: 'error', reason: 'host unreachable' }), { result: 'error' });
});

test('each peer gets one probe per interval, exactly as large as its route MTU, on sockets of its size', async () => {
  const mtus: Record<string, number> = { '198.18.0.1': 1500, '198.18.0.2': 1450, '198.18.0.3': 1400, '198.18.0.4': 1350 };
  const { clock, sockets, results, skipped, probes } = setup((a) => mtus[a]!);
  probes.setTargets([
    target('a', '198.18.0.1'),
    target('b', '198.18.0.2', 'pod'),
    target('c', '198.18.0.3'),
    target('d', '198.18.0.4'),
    target('self', '127.0.0.1'),
  ]);
  await flush();
  assert.equal(sockets.length, 4, 'one socket per probe size; none for the loopback');
  const [a, b, c, d] = sockets as [FakeSocket, FakeSocket, FakeSocket, FakeSocket];
  a.echoAfterMs = 0.3;
  // b: a black hole; c: a router answers fragmentation needed; d: the first hop refuses the frame.
  c.afterSyscall = () => {
    const sent = c.sent.at(-1)!;
    clock.setTimer(() => c.deliverIcmpError(sent.packet, sent.address, 'fragmentation needed', '198.18.9.9', 1300), 2);
  };
  d.sendError = Object.assign(new Error('sendto: No buffer space available'), { code: 'ENOBUFS' });
  clock.advance(30_000);
  for (const s of [a, c, d]) s.deliverQueued();
  clock.advance(2000);
  a.deliverQueued();
  assert.deepEqual(
    [a, b, c].map((s) => s.sent[0]!.packet.length),
    [1480, 1430, 1380],
    'ICMP header and payload: the MTU less the 20-byte IPv4 header',
  );
  assert.deepEqual([...new Set(results)].sort(), ['a:ok', 'b/pod:lost', 'c:too_big:1300', 'd:lost']);
  assert.deepEqual(skipped, []);
  const before = a.sent.length;
  clock.advance(30_000);
  a.deliverQueued();
  assert.equal(a.sent.length, before + 1, 'one probe per interval');
  await stopAll(probes, clock);
  assert.ok(
    sockets.every((s) => s.closed),
    'stop closes every socket',
  );
});

test('MENTAT_MTU replaces the route lookup; a failed lookup skips the peer once, with what to set', async () => {
  const fixed = setup(() => new Error('must not be asked'), 1280);
  fixed.probes.setTargets([target('a', '198.18.0.1')]);
  await flush();
  fixed.clock.advance(30_000);
  assert.equal(fixed.sockets[0]!.sent[0]!.packet.length, 1260);
  await stopAll(fixed.probes, fixed.clock);

  const broken = setup((a) => (a === '198.18.0.2' ? new Error('no route') : 1500));
  broken.probes.setTargets([target('a', '198.18.0.1'), target('b', '198.18.0.2')]);
  await flush();
  broken.probes.setTargets([target('a', '198.18.0.1'), target('b', '198.18.0.2')]);
  await flush();
  assert.equal(broken.skipped.length, 1, 'said once, not at every replan');
  assert.match(broken.skipped[0]!, /^b: the route's MTU could not be read \(no route\); set MENTAT_MTU/);
  broken.clock.advance(30_000);
  assert.deepEqual(new Set(broken.sockets.flatMap((s) => s.sent.map((x) => x.address))), new Set(['198.18.0.1']));
  await stopAll(broken.probes, broken.clock);
});

test('a size no peer needs any more has its socket closed; a replan in flight is superseded by the next', async () => {
  const mtus: Record<string, number> = { '198.18.0.1': 1500, '198.18.0.2': 1400 };
  const { sockets, probes, clock } = setup((a) => mtus[a]!);
  probes.setTargets([target('a', '198.18.0.1'), target('b', '198.18.0.2')]);
  probes.setTargets([target('a', '198.18.0.1')]);
  await flush();
  assert.equal(sockets.length, 1, 'the first plan never ran: only a is probed');
  probes.setTargets([target('b', '198.18.0.2')]);
  await flush();
  assert.equal(sockets.length, 2);
  assert.ok(sockets[0]!.closed && !sockets[1]!.closed);
  await stopAll(probes, clock);
});
