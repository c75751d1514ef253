import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEngine, type EngineInfo, type ProbeEngine } from '../../src/probe/engine.js';
import { IcmpPermissionError } from '../../src/icmp/socket.js';

class FakeEngine implements ProbeEngine {
  stopped = false;
  constructor(
    private readonly name: string,
    private readonly failure?: Error,
  ) {}
  start(): Promise<EngineInfo> {
    if (this.failure) return Promise.reject(this.failure);
    return Promise.resolve({ sockets: [`${this.name}/ipv4`], missing: [] });
  }
  setTargets(): void {}
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
}

const denied = (what: string) => new IcmpPermissionError(`${what} denied`);

test('auto prefers the datagram engine', async () => {
  const { info } = await startEngine('auto', { dgram: () => new FakeEngine('dgram'), raw: () => new FakeEngine('raw') });
  assert.deepEqual(info.sockets, ['dgram/ipv4']);
});

test('auto falls back to raw when datagram ICMP is not allowed, and stops the failed engine', async () => {
  const failed = new FakeEngine('dgram', denied('dgram'));
  const { info } = await startEngine('auto', { dgram: () => failed, raw: () => new FakeEngine('raw') });
  assert.deepEqual(info.sockets, ['raw/ipv4']);
  assert.equal(failed.stopped, true);
});

test('auto with neither allowed names both remedies', async () => {
  await assert.rejects(
    startEngine('auto', { dgram: () => new FakeEngine('dgram', denied('dgram')), raw: () => new FakeEngine('raw', denied('raw')) }),
    (err: Error) => {
      assert.equal(err.name, 'IcmpPermissionError');
      assert.match(err.message, /net\.ipv4\.ping_group_range/);
      assert.match(err.message, /CAP_NET_RAW/);
      assert.match(err.message, /Datagram: dgram denied\. Raw: raw denied/);
      return true;
    },
  );
});

test('the refusal of both kinds of socket says each reason once, in one line of reasonable length', async () => {
  const dgram = new IcmpPermissionError(
    'opening an unprivileged ICMPv4 datagram socket was denied (EACCES): the process group is outside net.ipv4.ping_group_range',
    'set it to cover the group (a long remedy)',
  );
  const raw = new IcmpPermissionError(
    'opening a raw ICMPv4 socket was denied (Operation not permitted): the process lacks CAP_NET_RAW',
    'grant it (a long remedy)',
  );
  await assert.rejects(startEngine('auto', { dgram: () => new FakeEngine('dgram', dgram), raw: () => new FakeEngine('raw', raw) }), (err: Error) => {
    assert.ok(!err.message.includes('a long remedy'), 'the remedies of each kind are replaced by one');
    assert.equal(err.message.split('ping_group_range').length - 1, 2, 'the datagram reason, and the one remedy');
    assert.ok(err.message.length < 500, `${err.message.length} characters`);
    assert.ok(!err.message.includes('\n'));
    return true;
  });
});

test('an explicit mode never falls back', async () => {
  await assert.rejects(startEngine('dgram', { dgram: () => new FakeEngine('dgram', denied('dgram')), raw: () => new FakeEngine('raw') }), /dgram denied/);
  await assert.rejects(startEngine('raw', { dgram: () => new FakeEngine('dgram'), raw: () => new FakeEngine('raw', denied('raw')) }), /raw denied/);
});
