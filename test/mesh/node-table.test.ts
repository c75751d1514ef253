import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NodeTable } from '../../src/mesh/node-table.js';
import type { NodeEntry } from '../../src/types.js';

const node = (name: string, addresses: Array<[string, string]>): NodeEntry => ({
  name,
  state: 'active',
  addresses: addresses.map(([type, address]) => ({ type, address })),
});
const probed = (table: NodeTable) => table.nodes().flatMap((n) => n.targets);

test('NodeTable skips itself, reports a broken node once, follows changes and deletes', () => {
  const table = new NodeTable('first', 'self', false, new Set(['10.0.0.99']));
  const self = node('self', [['InternalIP', '10.0.0.1']]);
  const a = node('a', [['InternalIP', '10.0.0.2']]);
  const imposter = node('c', [['InternalIP', '10.0.0.99']]);
  assert.deepEqual(table.setEntries([self, a, node('b', []), imposter]), [
    { name: 'b', problem: 'node has no addresses' },
    { name: 'c', problem: "node's address 10.0.0.99 is this agent's own address" },
  ]);
  assert.deepEqual(table.setEntries([self, a, node('b', []), imposter]), [], 'the same problem is reported once');
  assert.deepEqual(
    probed(table).map((t) => t.key),
    ['a'],
  );
  table.setEntries([self, node('a', [['InternalIP', '10.0.0.22']]), node('b', [['InternalIP', '10.0.0.3']])]);
  assert.deepEqual(
    probed(table).map((t) => `${t.key}=${t.address}`),
    ['a=10.0.0.22', 'b=10.0.0.3'],
  );
  assert.deepEqual(table.setEntries([self, node('a', []), node('b', [['InternalIP', '10.0.0.3']])]), [{ name: 'a', problem: 'node has no addresses' }]);
  assert.deepEqual(
    probed(table).map((t) => t.key),
    ['b'],
    'a node that loses its address stops being probed',
  );
  table.setEntries([self]);
  assert.equal(probed(table).length, 0);
  assert.deepEqual(
    table.nodes().map((n) => n.name),
    ['self'],
    'the own node is kept for its zone and state',
  );
  const withSelf = new NodeTable('first', 'self', true);
  withSelf.setEntries([self]);
  assert.equal(probed(withSelf).length, 1, 'probe_self includes the own node');
});

test("a node that claims this host's address is skipped, whatever its IPv6 spelling", () => {
  const table = new NodeTable('first', 'self', false, new Set(['fd00::5']));
  assert.match(table.setEntries([node('imposter', [['InternalIP', 'FD00:0:0::5']])])[0]!.problem, /this agent's own address/);
  assert.equal(probed(table).length, 0);
});
