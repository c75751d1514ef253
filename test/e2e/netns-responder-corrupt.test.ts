/** The echo responder's duplicate and corrupt modes on a real namespace path, seen by ping and by a raw-socket probe; needs root and iputils-ping. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import type { Cluster, ClusterNode, CorruptMode } from '../support/netns.js';
import { ping, ready, useCluster, withResponder } from '../support/netns-ping.js';

const RAW_SOCKET = createRequire(import.meta.url).resolve('raw-socket');

/**
 * Sends echo requests from a raw socket inside `ns` and reports every reply
 * byte-level, which iputils ping cannot (datagram ping sockets never see
 * replies with a wrong identifier or a bad checksum).
 */
const PROBE = `
const raw = require(process.argv[1]);
const [dst, count] = [process.argv[2], Number(process.argv[3])];
const s = raw.createSocket({ protocol: raw.Protocol.ICMP });
const replies = [];
s.on('message', (b) => {
  const ihl = (b[0] & 15) * 4;
  if (b[ihl] !== 0) return;
  const icmp = b.subarray(ihl);
  replies.push({ from: [...b.subarray(12, 16)].join('.'), id: icmp.readUInt16BE(4), seq: icmp.readUInt16BE(6),
    len: icmp.length, checksumOk: raw.createChecksum(icmp) === 0 });
});
for (let i = 0; i < count; i++) {
  const p = Buffer.alloc(8 + 32, 0x6d);
  p[0] = 8; p[1] = 0; p.writeUInt16BE(0, 2); p.writeUInt16BE(0x1234, 4); p.writeUInt16BE(i, 6);
  raw.writeChecksum(p, 2, raw.createChecksum(p));
  s.send(p, 0, p.length, dst, () => {});
}
setTimeout(() => { console.log(JSON.stringify(replies)); process.exit(0); }, 400);
`;

interface ProbeReply {
  from: string;
  id: number;
  seq: number;
  len: number;
  checksumOk: boolean;
}

async function probe(c: Cluster, from: ClusterNode, dst: string, count: number): Promise<ProbeReply[]> {
  const r = await c.execIn(from.ns, process.execPath, ['-e', PROBE, RAW_SOCKET, dst, String(count)]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ProbeReply[];
}

/** The raw-socket probe's replies to 3 requests to `to` while its responder corrupts every reply as `corrupt` says. */
async function probeCorrupted(c: Cluster, from: ClusterNode, to: ClusterNode, corrupt: CorruptMode): Promise<ProbeReply[]> {
  return (await withResponder(c, to.ns, { corrupt }, () => probe(c, from, to.ipv4, 3))).result;
}

describe('netns harness', () => {
  const c = useCluster({ nodes: 3, ipv6: true });

  it('duplicate and corrupt modes produce the advertised replies', async (t) => {
    if (!ready(t)) return;
    const [n0, n1] = c().nodes as [ClusterNode, ClusterNode];
    const dst = n1.ipv4;

    const dup = await withResponder(c(), n1.ns, { duplicate: true }, () => ping(c(), n0, dst, ['-c', '3', '-i', '0.1', '-W', '1']));
    assert.equal(dup.result.received, 3, dup.result.out);
    // ping exits on the 3rd reply, usually before its copy arrives.
    assert.ok(dup.result.duplicates >= 2, dup.result.out);
    assert.equal(dup.stats.duplicates, 3);
    assert.equal(dup.stats.replies, 6);

    await withResponder(c(), n1.ns, { corrupt: 'checksum' }, async () => {
      const replies = await probe(c(), n0, dst, 3);
      assert.equal(replies.length, 3);
      assert.ok(
        replies.every((x) => !x.checksumOk && x.id === 0x1234 && x.from === dst),
        JSON.stringify(replies),
      );
      // The kernel drops bad checksums before datagram ping sockets see them.
      const r = await ping(c(), n0, dst, ['-c', '2', '-i', '0.1', '-W', '1']);
      assert.equal(r.received, 0, r.out);
    });

    const truncated = await probeCorrupted(c(), n0, n1, 'truncate');
    assert.equal(truncated.length, 3);
    // 40-byte request -> 20-byte reply with a valid checksum.
    assert.ok(
      truncated.every((x) => x.checksumOk && x.len === 20 && x.id === 0x1234),
      JSON.stringify(truncated),
    );

    const identifier = await probeCorrupted(c(), n0, n1, 'identifier');
    assert.equal(identifier.length, 3);
    assert.ok(
      identifier.every((x) => x.checksumOk && x.id === (0x1234 ^ 0xffff)),
      JSON.stringify(identifier),
    );

    // IPv6: the kernel validates ICMPv6 checksums for every socket type, so a
    // corrupted reply must simply never arrive — while the responder did send it.
    const v6 = await withResponder(c(), n1.ns, { corrupt: 'checksum', family: '6' }, () => ping(c(), n0, n1.ipv6!, ['-c', '2', '-i', '0.1', '-W', '1']));
    assert.equal(v6.result.received, 0, v6.result.out);
    assert.equal(v6.stats.replies, 2);
    assert.equal(v6.stats.corrupted, 2);
  });
});
