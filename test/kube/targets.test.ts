import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explainApiError } from '../../src/kube/discovery.js';
import { NodeTable, trimNode } from '../../src/kube/node-table.js';
import { findKubeSource } from '../../src/kube/source.js';
import { targetsForNode, type NodeLike } from '../../src/kube/targets.js';
import { staticTargets } from '../../src/targets.js';

const node = (name: string | undefined, addresses: Array<[string, string]>): NodeLike => ({
  metadata: name === undefined ? {} : { name },
  status: { addresses: addresses.map(([type, address]) => ({ type, address })) },
});

test('InternalIP is preferred, ExternalIP is the fallback', () => {
  assert.deepEqual(
    targetsForNode(
      node('n', [
        ['ExternalIP', '203.0.113.5'],
        ['InternalIP', '10.0.0.5'],
        ['Hostname', 'n'],
      ]),
      'first',
    ),
    {
      ok: true,
      targets: [{ key: 'n', name: 'n', address: '10.0.0.5', family: 4 }],
    },
  );
  assert.deepEqual(targetsForNode(node('n', [['ExternalIP', '203.0.113.5']]), 'first'), {
    ok: true,
    targets: [{ key: 'n', name: 'n', address: '203.0.113.5', family: 4 }],
  });
});

test('address family policies: first, ipv4, ipv6, dual', () => {
  const dual = node('n', [
    ['InternalIP', 'fd00::5'],
    ['InternalIP', '10.0.0.5'],
  ]);
  assert.deepEqual(targetsForNode(dual, 'first'), { ok: true, targets: [{ key: 'n', name: 'n', address: 'fd00::5', family: 6 }] });
  assert.deepEqual(targetsForNode(dual, 'ipv4'), { ok: true, targets: [{ key: 'n', name: 'n', address: '10.0.0.5', family: 4 }] });
  assert.deepEqual(targetsForNode(dual, 'ipv6'), { ok: true, targets: [{ key: 'n', name: 'n', address: 'fd00::5', family: 6 }] });
  assert.deepEqual(targetsForNode(dual, 'dual'), {
    ok: true,
    targets: [
      { key: 'n/ipv4', name: 'n', address: '10.0.0.5', family: 4 },
      { key: 'n/ipv6', name: 'n', address: 'fd00::5', family: 6 },
    ],
  });
  assert.deepEqual(targetsForNode(node('n', [['InternalIP', '10.0.0.5']]), 'ipv6'), { ok: false, problem: 'node has no IPv6 address' });
});

const badNodes: Array<[string, NodeLike, string]> = [
  ['no name', node(undefined, [['InternalIP', '10.0.0.1']]), 'node has no name'],
  ['no addresses', node('n', []), 'node has no addresses'],
  ['no status', { metadata: { name: 'n' } }, 'node has no addresses'],
  [
    'unparsable address',
    node('n', [
      ['InternalIP', '10.0.0.300'],
      ['ExternalIP', 'example.com'],
    ]),
    'node has no InternalIP or ExternalIP that is a valid IP address',
  ],
  ['hostname only', node('n', [['Hostname', 'n']]), 'node has no InternalIP or ExternalIP that is a valid IP address'],
  ['enormous name', node('x'.repeat(300), [['InternalIP', '10.0.0.1']]), 'node name is 300 characters long (at most 253)'],
];
for (const [name, n, problem] of badNodes) {
  test(`a node with ${name} is skipped with a reason`, () => {
    assert.deepEqual(targetsForNode(n, 'first'), { ok: false, problem });
  });
}

test('NodeTable skips itself, reports a broken node once, follows changes and deletes', () => {
  const table = new NodeTable('first', 'self', false, new Set(['10.0.0.99']));
  assert.equal(table.upsert(node('self', [['InternalIP', '10.0.0.1']])), undefined);
  assert.equal(table.upsert(node('a', [['InternalIP', '10.0.0.2']])), undefined);
  assert.equal(table.upsert(node('b', [])), 'node has no addresses');
  assert.equal(table.upsert(node('b', [])), undefined, 'the same problem is reported once');
  assert.equal(table.upsert(node('c', [['InternalIP', '10.0.0.99']])), "node's address 10.0.0.99 is this agent's own address");
  assert.deepEqual(
    table.targets().map((t) => t.key),
    ['a'],
  );
  table.upsert(node('a', [['InternalIP', '10.0.0.22']]));
  table.upsert(node('b', [['InternalIP', '10.0.0.3']]));
  assert.deepEqual(
    table.targets().map((t) => `${t.key}=${t.address}`),
    ['a=10.0.0.22', 'b=10.0.0.3'],
  );
  table.upsert(node('a', []));
  assert.deepEqual(
    table.targets().map((t) => t.key),
    ['b'],
    'a node that loses its address stops being probed',
  );
  table.remove('b');
  assert.equal(table.nodeCount, 0);
  const withSelf = new NodeTable('first', 'self', true);
  withSelf.upsert(node('self', [['InternalIP', '10.0.0.1']]));
  assert.equal(withSelf.nodeCount, 1, 'probe_self includes the own node');
});

test('static targets keep their names; dual mode keys them per family', () => {
  assert.deepEqual(staticTargets([{ name: 'a', address: '::1' }], 'first'), [{ key: 'a', name: 'a', address: '::1', family: 6 }]);
  assert.deepEqual(staticTargets([{ name: 'a', address: '::1' }], 'dual'), [{ key: 'a/ipv6', name: 'a', address: '::1', family: 6 }]);
});

test('API errors say what to fix', () => {
  assert.match(
    explainApiError({ code: 403 }, 'https://k', 'system:serviceaccount:mentat:mentat'),
    /403 Forbidden\): grant system:serviceaccount:mentat:mentat get, list and watch on "nodes"/,
  );
  assert.match(explainApiError({ statusCode: 401 }, 'https://k', 'sa'), /401 Unauthorized\): check the service account token/);
  assert.match(explainApiError({ statusCode: 500, message: 'Internal Server Error' }, 'https://k', 'sa'), /answered 500 \(Internal Server Error\); retrying/);
  assert.match(
    explainApiError(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }), 'https://k', 'sa'),
    /cannot reach the API server at https:\/\/k \(ECONNREFUSED\)/,
  );
});

test('kube config is found in-cluster, then KUBECONFIG, then ~/.kube/config', () => {
  const none = () => false;
  const all = () => true;
  assert.deepEqual(findKubeSource({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, kubeconfig: '/k', home: '/h', exists: all }), { kind: 'in-cluster' });
  assert.deepEqual(findKubeSource({ env: {}, kubeconfig: '/k:/other', home: '/h', exists: none }), { kind: 'file', path: '/k' });
  assert.deepEqual(findKubeSource({ env: {}, kubeconfig: undefined, home: '/h', exists: (p) => p === '/h/.kube/config' }), {
    kind: 'file',
    path: '/h/.kube/config',
  });
  assert.deepEqual(findKubeSource({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, kubeconfig: undefined, home: '/h', exists: none }), { kind: 'none' });
});

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

test("a node that claims this host's address is skipped, whatever its IPv6 spelling", () => {
  const table = new NodeTable('first', 'self', false, new Set(['fd00::5']));
  assert.match(table.upsert(node('imposter', [['InternalIP', 'FD00:0:0::5']]))!, /this agent's own address/);
  assert.equal(table.nodeCount, 0);
});
