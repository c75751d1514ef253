import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InFlightTable, SEQUENCE_SPACE, type InFlight } from '../../src/probe/in-flight.js';
import type { Slot } from '../../src/probe/schedule.js';

const slot = (): Slot => ({ due: 0, target: { key: 'k', name: 'k', address: '198.18.0.1', family: 4 }, schedule: 'continuous', active: true });

function probe(sequence: number, deadline: number, of = slot()): InFlight {
  return { slot: of, address: '198.18.0.1', sequence, deadline, sentAt: undefined, sentAfterMonotonic: 0, sentBeforeMonotonic: 0, done: false };
}

test('sequence numbers go round robin and skip those in flight', () => {
  const table = new InFlightTable();
  assert.equal(table.allocateSequence(), 0);
  table.add(probe(1, 10));
  assert.equal(table.allocateSequence(), 2, 'one in flight is skipped');
  for (let i = 3; i < SEQUENCE_SPACE; i++) table.allocateSequence();
  assert.equal(table.allocateSequence(), 0, 'wraps at 16 bits');
  assert.equal(table.allocateSequence(), 2);
});

test('with every sequence number in flight there is none to allocate', () => {
  const table = new InFlightTable();
  const first = probe(table.allocateSequence()!, 0);
  table.add(first);
  for (let i = 1; i < SEQUENCE_SPACE; i++) table.add(probe(table.allocateSequence()!, i));
  assert.equal(table.size, SEQUENCE_SPACE);
  assert.equal(table.allocateSequence(), undefined);
  table.end(first);
  assert.equal(table.allocateSequence(), 0, 'the one ended comes free');
});

test('expiry follows send order, skipping probes that ended', () => {
  const table = new InFlightTable();
  const probes = [probe(0, 10), probe(1, 20), probe(2, 30)];
  for (const p of probes) table.add(p);
  assert.equal(table.firstPendingExpiry(), probes[0]);
  table.end(probes[0]!);
  table.end(probes[1]!);
  assert.equal(probes[1]!.done, true);
  assert.equal(table.get(1), undefined);
  assert.equal(table.firstPendingExpiry(), probes[2]);
  table.end(probes[2]!);
  assert.equal(table.firstPendingExpiry(), undefined);
  assert.equal(table.size, 0);
});

test('expiry stays in order across the compaction of ended probes', () => {
  const table = new InFlightTable();
  for (let i = 0; i < 100_000; i++) {
    const p = probe(table.allocateSequence()!, i);
    table.add(p);
    table.end(p);
    assert.equal(table.firstPendingExpiry(), undefined);
  }
  const last = probe(table.allocateSequence()!, 1e6);
  table.add(last);
  assert.equal(table.firstPendingExpiry(), last);
});

test('ending the inactive ends only the probes of removed targets', () => {
  const table = new InFlightTable();
  const removed = slot();
  const kept = probe(1, 10);
  const gone = probe(2, 20, removed);
  table.add(kept);
  table.add(gone);
  removed.active = false;
  table.endInactive();
  assert.equal(gone.done, true);
  assert.equal(table.get(2), undefined);
  assert.equal(table.get(1), kept);
  assert.equal(table.firstPendingExpiry(), kept);
});
