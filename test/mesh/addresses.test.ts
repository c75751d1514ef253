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
