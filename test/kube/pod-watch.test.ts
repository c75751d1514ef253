import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { podAddressesByNode, trimPod, withPodAddresses } from '../../src/kube/pod-watch.js';
import type { NodeEntry } from '../../src/types.js';

const pod = (name: string, node: unknown, ips: unknown[], extra: { phase?: string; hostNetwork?: boolean; deleting?: boolean; created?: string } = {}): V1Pod =>
  ({
    metadata: { name, creationTimestamp: extra.created ?? '2026-12-01T00:00:00Z', ...(extra.deleting ? { deletionTimestamp: '2026-12-05T00:00:00Z' } : {}) },
    spec: { nodeName: node, hostNetwork: extra.hostNetwork ?? false, containers: [{ name: 'mentat', image: 'x'.repeat(10_000) }] },
    status: { phase: extra.phase ?? 'Running', podIPs: ips.map((ip) => ({ ip })) },
  }) as unknown as V1Pod;

test('trimPod keeps what the pod path reads, bounded: a few hundred bytes of a pod of any size', () => {
  const big = pod('p', 'n'.repeat(5000), ['10.244.0.1', 'fd00::1', '10.244.0.2', 'x'.repeat(1000)]);
  const trimmed = trimPod(big);
  assert.equal(trimmed.spec?.nodeName?.length, 253);
  assert.deepEqual(trimmed.status?.podIPs, [{ ip: '10.244.0.1' }, { ip: 'fd00::1' }], 'at most one address per family');
  assert.ok(JSON.stringify(trimmed).length < 1000, `trimmed to ${JSON.stringify(trimmed).length} bytes`);
});

test('hostile and transitional pods: only running, not deleting, not host-network pods name a node; the newest wins', () => {
  const table: Array<[string, V1Pod[], Record<string, string[]>]> = [
    ['running', [pod('a', 'n1', ['10.244.1.5'])], { n1: ['10.244.1.5'] }],
    ['pending', [pod('a', 'n1', ['10.244.1.5'], { phase: 'Pending' })], {}],
    ['deleting', [pod('a', 'n1', ['10.244.1.5'], { deleting: true })], {}],
    ['host network', [pod('a', 'n1', ['10.0.0.1'], { hostNetwork: true })], {}],
    ['no node', [pod('a', undefined, ['10.244.1.5']), pod('b', '', ['10.244.1.6']), pod('c', 42, ['10.244.1.7'])], {}],
    ['no address', [pod('a', 'n1', []), pod('b', 'n2', [null, 7, ''])], {}],
    [
      'addresses that are not IPs',
      [pod('a', 'n1', ['x:y', '10.244.1.5']), pod('b', 'n2', ['[::1]', 'not-an-ip']), pod('c', 'n3', ['fe80::/64', '10.244.1.6/24'])],
      { n1: ['10.244.1.5'] },
    ],
    [
      'a rolling update: the newer pod',
      [pod('old', 'n1', ['10.244.1.5'], { created: '2026-12-01T00:00:00Z' }), pod('new', 'n1', ['10.244.1.9'], { created: '2026-12-02T00:00:00Z' })],
      { n1: ['10.244.1.9'] },
    ],
    ['a bad timestamp', [pod('a', 'n1', ['10.244.1.5'], { created: 'yesterday' })], { n1: ['10.244.1.5'] }],
  ];
  for (const [what, pods, expected] of table) {
    assert.deepEqual(Object.fromEntries(podAddressesByNode(pods.map(trimPod))), expected, what);
  }
});

test("pod addresses join their node's entry, never twice, never past 16 addresses, never for an unknown node", () => {
  const entries: NodeEntry[] = [
    { name: 'n1', state: 'active', addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] },
    { name: 'n2', state: 'active', addresses: [{ type: 'InternalIP', address: '10.0.0.2' }] },
    { name: 'n3', state: 'active', addresses: Array.from({ length: 16 }, (_, i) => ({ type: 'Hostname', address: `h${i}` })) },
  ];
  const byNode = new Map([
    ['n1', ['10.244.1.5']],
    ['n2', ['10.0.0.2']],
    ['n3', ['10.244.3.5']],
    ['ghost', ['10.244.9.9']],
  ]);
  const out = withPodAddresses(entries, byNode);
  assert.deepEqual(out[0]!.addresses, [
    { type: 'InternalIP', address: '10.0.0.1' },
    { type: 'PodIP', address: '10.244.1.5' },
  ]);
  assert.equal(out[1], entries[1], 'a host-network pod has its node address: nothing added');
  assert.equal(out[2], entries[2], 'no room left');
  assert.equal(out.length, 3);
});
