import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boundList, describeProblems, entryOf, LIST_BOUNDS, trimNode, type ListProblems } from '../../src/kube/node.js';
import type { NodeEntry } from '../../src/types.js';

test('the informer caches trimmed nodes: name, version, zone label and addresses only, bounded', () => {
  const huge = {
    metadata: { name: 'n', resourceVersion: '42', uid: 'u', labels: { 'topology.kubernetes.io/zone': 'z1', big: 'x'.repeat(60_000) }, managedFields: [{}] },
    spec: { podCIDR: '10.0.0.0/24' },
    status: { addresses: [{ type: 'InternalIP', address: '10.0.0.5' }], images: Array.from({ length: 100 }, () => ({ names: ['img'], sizeBytes: 1 })) },
  };
  const trimmed = trimNode(huge);
  assert.deepEqual(trimmed, {
    metadata: { name: 'n', resourceVersion: '42', labels: { 'topology.kubernetes.io/zone': 'z1' } },
    status: { addresses: [{ type: 'InternalIP', address: '10.0.0.5' }] },
  });
  assert.ok(JSON.stringify(trimmed).length < 200);
});

test('an entry is what an agent uses of a Node; a Node without a name has none', () => {
  assert.equal(entryOf({ metadata: {}, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] } }), undefined);
  assert.deepEqual(entryOf({ metadata: { name: 'n' } }), { name: 'n', addresses: [], state: 'active' });
  assert.deepEqual(
    entryOf({
      metadata: { name: 'n', labels: { 'topology.kubernetes.io/zone': 'z1' }, creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: { unschedulable: true },
      status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] },
    }),
    { name: 'n', addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], state: 'cordoned', zone: 'z1', createdAtS: 1767225600 },
  );
});

const entry = (name: string, address: string, zone?: string): NodeEntry => ({
  name,
  state: 'active',
  addresses: [{ type: 'InternalIP', address }],
  ...(zone === undefined ? {} : { zone }),
});

const hostileLists: Array<[string, NodeEntry[], (kept: NodeEntry[]) => void, ListProblems]> = [
  [
    'addresses no node has (loopback, link-local, multicast, unspecified, broadcast, mapped loopback)',
    ['127.0.0.1', '::1', '169.254.1.1', 'fe80::1', '224.0.0.1', 'ff02::1', '0.0.0.0', '::', '255.255.255.255', '::ffff:127.0.0.1'].map((a, i) =>
      entry(`n${i}`, a),
    ),
    (kept) => assert.ok(kept.every((e) => e.addresses.length === 0)),
    { addresses: 10 },
  ],
  [
    '90 entries on one address',
    Array.from({ length: 90 }, (_, i) => entry(`fake-${String(i).padStart(2, '0')}`, '198.51.100.7')),
    (kept) =>
      assert.deepEqual(
        kept.filter((e) => e.addresses.length > 0).map((e) => e.name),
        ['fake-00'],
      ),
    { sharedAddresses: 89 },
  ],
  [
    '10 000 zones',
    Array.from({ length: 10_000 }, (_, i) => entry(`n${i}`, `10.${i >> 8}.${i & 255}.1`, `zone-${i}`)),
    (kept) => assert.equal(new Set(kept.map((e) => e.zone).filter(Boolean)).size, LIST_BOUNDS.maxZones),
    { overZones: 10_000 - LIST_BOUNDS.maxZones },
  ],
  [
    'names that are not DNS names, or twice',
    [entry('UPPER', '10.0.0.1'), entry('a'.repeat(254), '10.0.0.2'), entry('ok', '10.0.0.3'), entry('ok', '10.0.0.4'), entry('-x', '10.0.0.5')],
    (kept) =>
      assert.deepEqual(
        kept.map((e) => e.name),
        ['ok'],
      ),
    { names: 4 },
  ],
  [
    'zones that are not label values',
    [entry('a', '10.0.0.1', 'z'.repeat(64)), entry('b', '10.0.0.2', 'bad zone'), entry('c', '10.0.0.3', 'eu-west-1a')],
    (kept) =>
      assert.deepEqual(
        kept.map((e) => e.zone ?? '-'),
        ['-', '-', 'eu-west-1a'],
      ),
    { zones: 2 },
  ],
];
for (const [what, list, check, problems] of hostileLists) {
  test(`a list with ${what} is bounded, one summary, no node lost for it`, () => {
    const startedAt = performance.now();
    const bounded = boundList(list);
    assert.ok(performance.now() - startedAt < 1000, 'bounded in well under a second');
    check(bounded.entries);
    assert.deepEqual(bounded.problems, problems);
    assert.ok(describeProblems(bounded.problems)!.startsWith('dropped '));
  });
}

test('a list past 110 000 nodes keeps the first 110 000 by name', () => {
  const list = Array.from({ length: LIST_BOUNDS.maxNodes + 5 }, (_, i) => ({
    name: `n${String(i).padStart(6, '0')}`,
    state: 'active' as const,
    addresses: [],
  }));
  const bounded = boundList(list);
  assert.equal(bounded.entries.length, LIST_BOUNDS.maxNodes);
  assert.deepEqual(bounded.problems, { overNodes: 5 });
});

test('a clean list passes through unchanged', () => {
  const list = [entry('a', '10.0.0.1', 'z1'), entry('b', 'fd00::2', 'z2')];
  assert.deepEqual(boundList(list), { entries: list, problems: {} });
  assert.equal(describeProblems({}), undefined);
});

test('a Node cannot speak for a pod: PodIP in its own addresses is dropped; in a list, pod addresses are bounded like node addresses', () => {
  const entry = entryOf({
    metadata: { name: 'n1' },
    status: {
      addresses: [
        { type: 'InternalIP', address: '10.0.0.1' },
        { type: 'PodIP', address: '203.0.113.9' },
      ],
    },
  });
  assert.deepEqual(entry?.addresses, [{ type: 'InternalIP', address: '10.0.0.1' }]);
  const { entries, problems } = boundList([
    {
      name: 'a',
      state: 'active',
      addresses: [
        { type: 'InternalIP', address: '10.0.0.1' },
        { type: 'PodIP', address: '10.244.0.5' },
      ],
    },
    {
      name: 'b',
      state: 'active',
      addresses: [
        { type: 'InternalIP', address: '10.0.0.2' },
        { type: 'PodIP', address: '10.244.0.5' },
      ],
    },
    {
      name: 'c',
      state: 'active',
      addresses: [
        { type: 'InternalIP', address: '10.0.0.3' },
        { type: 'PodIP', address: '127.0.0.1' },
      ],
    },
    {
      name: 'd',
      state: 'active',
      addresses: [
        { type: 'InternalIP', address: '10.0.0.4' },
        { type: 'PodIP', address: '10.0.0.1' },
      ],
    },
  ]);
  assert.deepEqual(
    entries.map((e) => e.addresses.filter((x) => x.type === 'PodIP').map((x) => x.address)),
    [['10.244.0.5'], [], [], []],
    "one owner per address, node's or pod's; no loopback",
  );
  assert.deepEqual(problems, { sharedAddresses: 2, addresses: 1 });
});
