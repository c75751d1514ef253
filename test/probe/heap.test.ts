import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MinHeap } from '../../src/probe/heap.js';

test('pops in order of due, whatever the order of pushes, ties and pushes between pops included', () => {
  const heap = new MinHeap<{ due: number }>();
  assert.equal(heap.pop(), undefined);
  assert.equal(heap.peek(), undefined);
  // A fixed linear congruential sequence, with many ties: the same every run.
  let x = 12345;
  const next = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31) % 100;
  const model: number[] = [];
  const popAndCheck = (): void => {
    model.sort((a, b) => a - b);
    assert.equal(heap.peek()!.due, model[0]);
    assert.equal(heap.pop()!.due, model.shift());
    assert.equal(heap.size, model.length);
  };
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 20; i++) {
      const due = next();
      heap.push({ due });
      model.push(due);
    }
    for (let i = 0; i < 10; i++) popAndCheck();
  }
  while (model.length > 0) popAndCheck();
  assert.equal(heap.pop(), undefined);
});
