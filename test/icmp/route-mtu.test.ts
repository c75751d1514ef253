import assert from 'node:assert/strict';
import { test } from 'node:test';
import { payloadForMtu, routeMtu, systemRoutes, type RouteSystem } from '../../src/icmp/route-mtu.js';

const system = (over: Partial<RouteSystem>): RouteSystem => ({
  sourceAddress: () => Promise.resolve('10.0.0.5'),
  interfaceOf: (a) => (a === '10.0.0.5' ? 'eth0' : undefined),
  interfaceMtu: (name) => Promise.resolve(name === 'eth0' ? 1450 : 0),
  ...over,
});

test('the MTU of the interface that holds the route source address', async () => {
  assert.equal(await routeMtu('10.0.1.9', 4, system({})), 1450);
  await assert.rejects(
    routeMtu('10.0.1.9', 4, system({ interfaceOf: () => undefined })),
    /no interface holds 10\.0\.0\.5, the source address of the route to 10\.0\.1\.9/,
  );
  await assert.rejects(routeMtu('10.0.1.9', 4, system({ interfaceMtu: () => Promise.resolve(NaN) })), /interface eth0 reports MTU NaN/);
  await assert.rejects(routeMtu('10.0.1.9', 4, system({ sourceAddress: () => Promise.reject(new Error('ENETUNREACH')) })), /ENETUNREACH/);
});

test('the payload of an echo that fills the MTU: IPv4 20 + 8 header bytes, IPv6 40 + 8', () => {
  assert.equal(payloadForMtu(1500, 4), 1472);
  assert.equal(payloadForMtu(1500, 6), 1452);
});

test('on this machine: the loopback route leaves by lo, whose MTU the kernel reports', async () => {
  const mtu = await routeMtu('127.0.0.1', 4, systemRoutes);
  assert.ok(Number.isInteger(mtu) && mtu >= 1500, `lo MTU ${mtu}`);
});
