import assert from 'node:assert/strict';
import { test } from 'node:test';
import { entryOf, trimNode } from '../../src/kube/node.js';

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
