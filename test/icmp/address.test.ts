/** The address helpers as tables: canonical spelling, family, and which addresses name one remote host, for untrusted input too. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalAddress, familyOf, isRemoteUnicast } from '../../src/icmp/address.js';
import type { Family } from '../../src/types.js';

test('canonicalAddress: IPv6 compressed and lower-case, zone dropped, IPv4 as given', () => {
  const cases: Array<[input: string, canonical: string]> = [
    ['10.0.0.1', '10.0.0.1'],
    ['255.255.255.255', '255.255.255.255'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:1:0:0:0:0:0', '2001:db8:1::'],
    ['FE80::ABCD', 'fe80::abcd'],
    // The zone id is dropped, however it is spelled (as in a URL too).
    ['fe80::1%eth0', 'fe80::1'],
    ['fe80::1%25eth0', 'fe80::1'],
    ['::1%lo', '::1'],
    ['fe80::1%', 'fe80::1'],
    ['fe80::1%eth0%x', 'fe80::1'],
    // IPv4-mapped: one spelling, hex, whether the dotted form or the hex form came in.
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['::FFFF:a00:1', '::ffff:a00:1'],
    ['::ffff:127.0.0.1', '::ffff:7f00:1'],
    ['::ffff:1.2.3.4%eth0', '::ffff:102:304'],
    ['::127.0.0.1', '::7f00:1'],
  ];
  for (const [input, canonical] of cases) assert.equal(canonicalAddress(input), canonical, input);
  // Two spellings of one address compare equal once canonical.
  assert.equal(canonicalAddress('2001:DB8:0::1'), canonicalAddress('2001:db8::0:1'));
  assert.equal(canonicalAddress('::ffff:192.0.2.1'), canonicalAddress('::ffff:c000:201'));
});

test('canonicalAddress: what is not an IP address comes back as given (less a zone), never throws', () => {
  const unchanged = ['', 'localhost', ' 10.0.0.1', '10.0.0.1 ', '10.0.0.1\n', '010.0.0.1', '10.0.0.1/24', '256.1.1.1', '0x7f.0.0.1', '1'.repeat(10_000)];
  for (const input of unchanged) assert.equal(canonicalAddress(input), input, JSON.stringify(input.slice(0, 20)));
  // The zone is split off before anything else: an IPv4 "zone" and a bare zone go too.
  assert.equal(canonicalAddress('1.2.3.4%eth0'), '1.2.3.4');
  assert.equal(canonicalAddress('%eth0'), '');
  // With a colon too: these once reached new URL() and threw (a pod IP from the API server is untrusted).
  const colons = ['fe80::/10', '2001:db8::1/64', '[::1]', '[fe80::1]', '1:2:3:4:5:6:7:8:9', 'a:'.repeat(300) + '1', ':::', 'g::1', 'x:y'];
  for (const input of colons) assert.equal(canonicalAddress(input), input, input.slice(0, 20));
});

test('familyOf: 4 or 6 for IP addresses, undefined for anything else', () => {
  const cases: Array<[input: string, family: Family | undefined]> = [
    ['0.0.0.0', 4],
    ['10.0.0.1', 4],
    ['127.0.0.1', 4],
    ['255.255.255.255', 4],
    ['::', 6],
    ['::1', 6],
    ['2001:db8::1', 6],
    ['2001:DB8::1', 6],
    ['::ffff:10.0.0.1', 6],
    ['fe80::1%eth0', 6],
    ['fe80::1%25eth0', 6],
    ['1:2:3:4:5:6:7:8', 6],
    // Not addresses: empty, padded, leading zeros, short or long forms, CIDR, brackets, names.
    ['', undefined],
    [' ', undefined],
    [' 10.0.0.1', undefined],
    ['10.0.0.1 ', undefined],
    ['10.0.0.1\n', undefined],
    ['\t::1', undefined],
    ['010.0.0.1', undefined],
    ['10.0.0.01', undefined],
    ['00.0.0.0', undefined],
    ['1.2.3', undefined],
    ['1.2.3.4.5', undefined],
    ['256.1.1.1', undefined],
    ['0x7f.0.0.1', undefined],
    ['10.0.0.1/24', undefined],
    ['2001:db8::/32', undefined],
    ['[::1]', undefined],
    ['1.2.3.4%eth0', undefined],
    ['fe80::1%', undefined],
    ['fe80::1%eth0%x', undefined],
    ['1:2:3:4:5:6:7:8:9', undefined],
    [':::', undefined],
    ['localhost', undefined],
    ['1'.repeat(100_000), undefined],
    ['a:'.repeat(10_000) + '1', undefined],
  ];
  for (const [input, family] of cases) assert.equal(familyOf(input), family, JSON.stringify(input.slice(0, 20)));
});

test('isRemoteUnicast: IPv4 ranges at their edges', () => {
  const cases: Array<[input: string, remote: boolean]> = [
    ['10.0.0.1', true],
    ['1.0.0.0', true],
    ['192.168.1.1', true],
    ['223.255.255.255', true],
    // 0/8: unspecified and "this network".
    ['0.0.0.0', false],
    ['0.1.2.3', false],
    // 127/8, not only 127.0.0.1.
    ['127.0.0.1', false],
    ['127.255.255.254', false],
    ['126.255.255.255', true],
    ['128.0.0.0', true],
    // 169.254/16 link-local, and its neighbours.
    ['169.254.0.0', false],
    ['169.254.255.255', false],
    ['169.253.255.255', true],
    ['169.255.0.0', true],
    ['168.254.0.1', true],
    // 224/4 multicast, 240/4 reserved, broadcast.
    ['224.0.0.0', false],
    ['224.0.0.1', false],
    ['239.255.255.255', false],
    ['240.0.0.1', false],
    ['255.255.255.255', false],
  ];
  for (const [input, remote] of cases) assert.equal(isRemoteUnicast(input), remote, input);
});

test('isRemoteUnicast: IPv6 ranges at their edges, however spelled', () => {
  const cases: Array<[input: string, remote: boolean]> = [
    ['2001:db8::1', true],
    ['2001:DB8::1', true],
    ['fd00::1', true],
    ['fe7f:ffff::1', true],
    ['fec0::1', true],
    ['feff::1', true],
    ['::2', true],
    ['::', false],
    ['0:0:0:0:0:0:0:0', false],
    ['::1', false],
    ['0:0:0:0:0:0:0:1', false],
    ['0000:0000:0000:0000:0000:0000:0000:0001', false],
    // fe80::/10: fe80 to febf.
    ['fe80::1', false],
    ['FE80::1', false],
    ['febf:ffff::1', false],
    ['fe80::1%eth0', false],
    // ff00::/8 multicast.
    ['ff00::', false],
    ['ff02::1', false],
    ['FF05::2', false],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', false],
    // A zone on a global address does not hide it.
    ['2001:db8::1%eth0', true],
  ];
  for (const [input, remote] of cases) assert.equal(isRemoteUnicast(input), remote, input);
});

test('isRemoteUnicast: an IPv4-mapped IPv6 address is judged as the IPv4 address it carries', () => {
  const cases: Array<[input: string, remote: boolean]> = [
    ['::ffff:10.0.0.1', true],
    ['::ffff:a00:1', true],
    ['::FFFF:223.255.255.255', true],
    ['::ffff:127.0.0.1', false],
    ['::ffff:7f00:1', false],
    ['::ffff:0.0.0.0', false],
    ['::ffff:169.254.0.1', false],
    ['::ffff:224.0.0.1', false],
    ['::ffff:255.255.255.255', false],
    ['::ffff:169.253.0.1', true],
  ];
  for (const [input, remote] of cases) assert.equal(isRemoteUnicast(input), remote, input);
});

test('isRemoteUnicast: anything that is not one IP address is not a remote host, and never throws', () => {
  const hostile = [
    '',
    ' ',
    ' 10.0.0.1',
    '10.0.0.1 ',
    '10.0.0.1\n',
    '010.0.0.1',
    '10.0.0.01',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '0x7f.0.0.1',
    '10.0.0.0/8',
    '10.0.0.1/32',
    '2001:db8::/32',
    '2001:db8::1/128',
    '[2001:db8::1]',
    '[::1]',
    'fe80::/10',
    '1.2.3.4%eth0',
    '2001:db8::1%',
    '%eth0',
    'localhost',
    'node-1.example.com',
    '1'.repeat(100_000),
    'a:'.repeat(10_000) + '1',
  ];
  for (const input of hostile) assert.equal(isRemoteUnicast(input), false, JSON.stringify(input.slice(0, 20)));
});
