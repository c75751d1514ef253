/**
 * Leader election with the fake clock and an in-memory lock that can hold any call open: client-go's
 * semantics (take a free or expired lease, renew every retry period, stop leading at the renew
 * deadline, a 409 decides nothing), and the races: a renew never overlaps another write, a release
 * waits for the renew in flight, a stop during an election leads to nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KubeApiError } from '../../src/kube/api.js';
import { LeaderElector, type LeaseLock, type LeaseRecord } from '../../src/kube/leader-election.js';
import { silentLog } from '../../src/log.js';
import { ManualClock } from '../support/fake-clock.js';

/** A Lease in memory with resourceVersion semantics; `hold` makes the next calls wait until released. */
class MemoryLock implements LeaseLock {
  readonly description = 'test/lease';
  record: LeaseRecord | undefined;
  version = 0;
  inFlight = 0;
  maxInFlight = 0;
  writes: LeaseRecord[] = [];
  failWith: Error | undefined;
  private held: Array<() => void> | undefined;

  hold(): void {
    this.held = [];
  }
  release(): void {
    const waiting = this.held ?? [];
    this.held = undefined;
    for (const go of waiting) go();
  }
  private async enter<T>(fn: () => T): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.held) await new Promise<void>((go) => this.held!.push(go));
      if (this.failWith) throw this.failWith;
      return fn();
    } finally {
      this.inFlight--;
    }
  }
  get() {
    return this.enter(() => (this.record ? { record: this.record, version: String(this.version) } : undefined));
  }
  create(record: LeaseRecord) {
    return this.enter(() => {
      if (this.record) throw new KubeApiError(409, 'exists');
      return this.put(record);
    });
  }
  update(record: LeaseRecord, version: string) {
    return this.enter(() => {
      if (version !== String(this.version)) throw new KubeApiError(409, 'conflict');
      return this.put(record);
    });
  }
  private put(record: LeaseRecord): string {
    this.record = record;
    this.writes.push(record);
    return String(++this.version);
  }
}

const LEASE_MS = 15_000;
function candidate(lock: LeaseLock, clock: ManualClock, identity: string, events: string[] = []) {
  let wall = 1_700_000_000_000;
  const elector = new LeaderElector({
    lock,
    identity,
    leaseDurationMs: LEASE_MS,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2000,
    clock,
    wallNow: () => (wall += 1),
    random: () => 0.5,
    log: silentLog,
    onStartedLeading: () => events.push(`${identity} started`),
    onStoppedLeading: () => events.push(`${identity} stopped`),
  });
  return { elector, events };
}

/** Lets every promise the lock and the elector chained settle. */
const settle = () => new Promise((r) => setImmediate(r));
async function advance(clock: ManualClock, ms: number, stepMs = 500): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(Math.min(stepMs, ms - t));
    await settle();
  }
}

test('takes an absent lease, renews it every retry period; a second candidate waits while it is renewed', async () => {
  const clock = new ManualClock();
  const lock = new MemoryLock();
  const a = candidate(lock, clock, 'a');
  const b = candidate(lock, clock, 'b', a.events);
  a.elector.run();
  await advance(clock, 100);
  b.elector.run();
  await advance(clock, 60_000);
  assert.deepEqual(a.events, ['a started']);
  assert.equal(a.elector.isLeader, true);
  assert.equal(b.elector.isLeader, false);
  assert.equal(lock.record?.holderIdentity, 'a');
  const renewals = lock.writes.filter((w) => w.holderIdentity === 'a').length;
  assert.ok(renewals >= 29 && renewals <= 31, `a renewal every 2 s for 60 s: ${renewals}`);
  assert.equal(lock.maxInFlight, 1, 'never two calls at once');
  assert.equal(lock.record?.leaseTransitions, 0);
});

test('a lease nobody renews is taken after the lease duration, judged on the candidate own clock', async () => {
  const clock = new ManualClock();
  const lock = new MemoryLock();
  lock.record = { holderIdentity: 'gone', leaseDurationSeconds: 15, acquireTime: 'x', renewTime: 'x', leaseTransitions: 3 };
  const b = candidate(lock, clock, 'b');
  b.elector.run();
  await advance(clock, LEASE_MS - 1000);
  assert.equal(b.elector.isLeader, false, 'not before the lease duration');
  await advance(clock, 4000);
  assert.equal(b.elector.isLeader, true, 'taken within a retry period after it');
  assert.equal(lock.record.leaseTransitions, 4);
});

test('a lease that claims an hour is judged by the candidate own duration', async () => {
  const clock = new ManualClock();
  const lock = new MemoryLock();
  lock.record = { holderIdentity: 'forged', leaseDurationSeconds: 3600, acquireTime: 'x', renewTime: 'x', leaseTransitions: 0 };
  const b = candidate(lock, clock, 'b');
  b.elector.run();
  await advance(clock, LEASE_MS + 3000);
  assert.equal(b.elector.isLeader, true);
});

test('a 409 decides nothing: the next round reads the lease again', async () => {
  const clock = new ManualClock();
  const lock = new MemoryLock();
  const a = candidate(lock, clock, 'a');
  a.elector.run();
  await advance(clock, 100);
  // Someone else writes between a's read and its update: a's renew conflicts once, then succeeds on a fresh read.
  const original = lock.update.bind(lock);
  let conflicts = 0;
  lock.update = async (record, version) => {
    if (conflicts === 0) {
      conflicts++;
      lock.version++;
    }
    return original(record, version);
  };
  await advance(clock, 2500);
  assert.equal(conflicts, 1);
  assert.equal(a.elector.isLeader, true, 'still the leader: its own lease, re-read');
  await advance(clock, 2500);
  assert.equal(lock.record?.holderIdentity, 'a');
  assert.deepEqual(a.events, ['a started']);
});

test('a leader that cannot renew stops leading at the renew deadline, and writes nothing after', async () => {
  const clock = new ManualClock();
  const lock = new MemoryLock();
  const a = candidate(lock, clock, 'a');
  a.elector.run();
  await advance(clock, 100);
  lock.failWith = new Error('503 Service Unavailable');
  await advance(clock, 8000);
  assert.equal(a.elector.isLeader, true, 'before the deadline');
  await advance(clock, 3000);
  assert.equal(a.elector.isLeader, false, 'after the 10 s deadline');
  assert.deepEqual(a.events, ['a started', 'a stopped']);
  lock.failWith = undefined;
  const writes = lock.writes.length;
  await advance(clock, 2000);
  // It may take the lease back (it is its own, unexpired): then it leads again, through onStartedLeading.
  if (lock.writes.length > writes) assert.deepEqual(a.events, ['a started', 'a stopped', 'a started']);
});

test('another holder seen by the leader: it stops leading at once', async () => {
  const clock = new ManualClock();
  const lock = new MemoryLock();
  const a = candidate(lock, clock, 'a');
  a.elector.run();
  await advance(clock, 100);
  lock.record = { ...lock.record!, holderIdentity: 'usurper' };
  lock.version++;
  await advance(clock, 2500);
  assert.equal(a.elector.isLeader, false);
  assert.deepEqual(a.events, ['a started', 'a stopped']);
});

test('a release waits for the renew in flight, then gives the lease up', async () => {
  const clock = new ManualClock();
  const lock = new MemoryLock();
  const a = candidate(lock, clock, 'a');
  a.elector.run();
  await advance(clock, 100);
  lock.hold();
  clock.advance(2000); // the renew starts, and hangs in the lock
  await settle();
  assert.equal(lock.inFlight, 1);
  const stopping = a.elector.stop();
  await settle();
  assert.equal(lock.inFlight, 1, 'the release is not sent beside the renew');
  lock.release();
  await stopping;
  assert.equal(lock.maxInFlight, 1);
  assert.equal(lock.record?.holderIdentity, '', 'released after the renew');
  assert.deepEqual(a.events, ['a started', 'a stopped']);
});

test('a stop during an election: no leading starts, and a lease taken meanwhile is given back', async () => {
  const clock = new ManualClock();
  const lock = new MemoryLock();
  const a = candidate(lock, clock, 'a');
  lock.hold();
  a.elector.run();
  clock.advance(0);
  await settle();
  const stopping = a.elector.stop();
  lock.release();
  await stopping;
  await advance(clock, 10_000);
  assert.deepEqual(a.events, [], 'onStartedLeading never ran');
  assert.equal(a.elector.isLeader, false);
  assert.equal(lock.record?.holderIdentity, '', 'the lease it took while stopping is released');
  assert.equal(clock.pendingTimers, 0, 'nothing scheduled after stop');
});

test('durations out of client-go order are refused, naming the one to change', () => {
  const base = { lock: new MemoryLock(), identity: 'a', clock: new ManualClock(), wallNow: Date.now, random: Math.random, log: silentLog };
  const cb = { onStartedLeading() {}, onStoppedLeading() {} };
  assert.throws(
    () => new LeaderElector({ ...base, ...cb, leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2000 }),
    /lease duration must be longer than the renew deadline/,
  );
  assert.throws(
    () => new LeaderElector({ ...base, ...cb, leaseDurationMs: 15_000, renewDeadlineMs: 2000, retryPeriodMs: 2000 }),
    /renew deadline must be longer than 1.2 retry periods/,
  );
});
