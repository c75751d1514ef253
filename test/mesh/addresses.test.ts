import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AddressFamilyPolicy } from '../../src/config.js';
import { targetsForAddresses } from '../../src/mesh/addresses.js';

const node = (name: string, addresses: Array<[string, string]>) => ({ name, addresses: addresses.map(([type, address]) => ({ type, address })) });
const targetsForNode = (n: ReturnType<typeof node>, policy: AddressFamilyPolicy) => targetsForAddresses(n.name, n.addresses, undefined, policy);

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

const badNodes: Array<[string, ReturnType<typeof node>, string]> = [
  ['no addresses', node('n', []), 'node has no addresses'],
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

test('the pod path: the agent pod address beside the node address, keyed apart, only where the list names one', () => {
  const addresses = [
    { type: 'InternalIP', address: '10.0.0.1' },
    { type: 'PodIP', address: '10.244.1.5' },
    { type: 'PodIP', address: 'fd00:244::5' },
  ];
  const both = targetsForAddresses('n1', addresses, 'z1', 'first', ['node', 'pod']);
  assert.ok(both.ok);
  assert.deepEqual(both.targets, [
    { key: 'n1', name: 'n1', address: '10.0.0.1', family: 4, zone: 'z1' },
    { key: 'n1/pod', name: 'n1', address: '10.244.1.5', family: 4, zone: 'z1', path: 'pod' },
  ]);
  const dual = targetsForAddresses('n1', [...addresses, { type: 'InternalIP', address: 'fd00::1' }], undefined, 'dual', ['node', 'pod']);
  assert.ok(dual.ok);
  assert.deepEqual(
    dual.targets.map((t) => t.key),
    ['n1/ipv4', 'n1/ipv6', 'n1/pod/ipv4', 'n1/pod/ipv6'],
  );
  const nodeOnly = targetsForAddresses('n1', addresses, undefined, 'first', ['node']);
  assert.ok(nodeOnly.ok);
  assert.deepEqual(
    nodeOnly.targets.map((t) => t.key),
    ['n1'],
    'MENTAT_PATHS=node: no pod target',
  );
  const noPod = targetsForAddresses('n1', [{ type: 'InternalIP', address: '10.0.0.1' }], undefined, 'first', ['node', 'pod']);
  assert.ok(noPod.ok);
  assert.deepEqual(
    noPod.targets.map((t) => t.key),
    ['n1'],
    'no agent pod known: the node network only',
  );
  const podOnly = targetsForAddresses('n1', [{ type: 'PodIP', address: '10.244.1.5' }], undefined, 'first', ['node', 'pod']);
  assert.equal(podOnly.ok, false, 'a pod address never stands in for the node address');
});
