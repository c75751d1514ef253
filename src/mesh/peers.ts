/*
 * The sampled mesh: who probes whom, computed by every agent from the same node list, with no
 * coordination between agents.
 *
 * 1. A consistent-hash ring: nodes ordered by the hash of their name, a position that depends on
 *    the name alone, so a join or a leave moves no other node.
 * 2. Each node probes the k nodes that follow it on the ring (a circulant graph): every node
 *    probes exactly k nodes and is probed by exactly k. A join or a leave changes the peers of the
 *    k nodes before it on the ring, and the joining node's own.
 * 3. Zones: a node whose k successors all share its zone (the first nodes of a long run of one
 *    zone) trades its farthest peer for a node of another zone just past the run, the j-th node of
 *    the run taking the j-th such node, so that no node gains more than one extra observer and none
 *    loses more than one: in-degrees stay within k ± 1. Then every ordered pair of zones without an
 *    edge gets one the same way. With balanced zones this is rare and local; when one zone holds
 *    nearly every node, not every node of it can reach another zone without overloading the small
 *    zones' nodes, and the in-degree bound wins (the pair-of-zones guarantee still holds).
 */
import { byHash } from './hash.js';

/** A node as the mesh sees it. */
export interface MeshMember {
  readonly name: string;
  /** topology.kubernetes.io/zone; nodes without one share the zone "". */
  readonly zone: string | undefined;
}

/** Candidates past the run a node tries before giving up its zone repair: keeps every repair local (and stable). */
const REPAIR_REACH = 4;

/** Each member's peers by name. */
export type PeerGraph = ReadonlyMap<string, readonly string[]>;

/** Peers of every member: each probes `k` others (all others when there are k or fewer). */
export function peerGraph(members: readonly MeshMember[], k: number): PeerGraph {
  const ring = byHash(members, (m) => m.name);
  const n = ring.length;
  const zone = ring.map((m) => m.zone ?? '');
  const out: number[][] = ring.map((_, i) => {
    const count = Math.min(k, n - 1);
    return Array.from({ length: count }, (_, j) => (i + 1 + j) % n);
  });
  if (n - 1 > k && new Set(zone).size > 1) {
    const repair = new Repair(out, zone);
    repair.zoneReach();
    repair.zonePairs();
  }
  return new Map(ring.map((m, i) => [m.name, out[i]!.map((j) => ring[j]!.name)]));
}

/** Trades of one peer for another, each node gaining or losing at most one observer. */
class Repair {
  private readonly n: number;
  private readonly gained: Uint8Array;
  private readonly lost: Uint8Array;

  constructor(
    private readonly out: number[][],
    private readonly zone: readonly string[],
  ) {
    this.n = out.length;
    this.gained = new Uint8Array(this.n);
    this.lost = new Uint8Array(this.n);
  }

  zoneReach(): void {
    const { n, zone, out } = this;
    for (let u = 0; u < n; u++) {
      if (this.hasCross(u)) continue;
      // u is the j-th node of its zone's run; it looks past its window for the j-th node of another zone.
      let j = 0;
      while (j < n - 1 && zone[(u - j - 1 + n) % n] === zone[u]) j++;
      let skip = j;
      let tried = 0;
      for (let d = out[u]!.length + 1; d < n && tried < REPAIR_REACH; d++) {
        const y = (u + d) % n;
        if (zone[y] === zone[u]) continue;
        if (skip > 0) {
          skip--;
          continue;
        }
        tried++;
        if (this.trade(u, y, (x) => zone[x] === zone[u])) break;
      }
    }
  }

  /** Gives every ordered pair of zones (a, b) an edge, from the node of a nearest before b's first node. */
  zonePairs(): void {
    const { n, zone, out } = this;
    // Zones as numbers and the pair counts in one array: at 100 000 nodes that is 1.2 M edges to count.
    const zones = [...new Set(zone)].sort();
    const z = zones.length;
    const ids = new Map(zones.map((name, i) => [name, i]));
    const zid = Int32Array.from(zone, (name) => ids.get(name)!);
    const counts = new Int32Array(z * z);
    out.forEach((peers, u) => {
      for (const v of peers) counts[zid[u]! * z + zid[v]!]!++;
    });
    const count = (a: number, b: number) => counts[a * z + b]!;
    for (let a = 0; a < z; a++) {
      for (let b = 0; b < z; b++) {
        if (a === b || count(a, b) > 0) continue;
        for (let y = 0, tried = 0; y < n && tried < REPAIR_REACH; y++) {
          if (zid[y] !== b) continue;
          let u = (y - 1 + n) % n;
          while (zid[u] !== a) u = (u - 1 + n) % n;
          tried++;
          // Give up an edge whose pair keeps another, and never the node's last edge into another zone.
          const spare = (x: number) => zid[x] !== b && (zid[x] === a || count(a, zid[x]!) >= 2) && out[u]!.some((v) => v !== x && zid[v] !== a);
          const traded = this.trade(u, y, spare);
          if (traded === undefined) continue;
          counts[a * z + zid[traded]!]!--;
          counts[a * z + b] = 1;
          break;
        }
      }
    }
  }

  private hasCross(u: number): boolean {
    return this.out[u]!.some((v) => this.zone[v] !== this.zone[u]);
  }

  /**
   * Replaces u's farthest peer x that `mayGive` allows with y, if y has gained no observer yet and
   * x has lost none. Returns the peer given up.
   */
  private trade(u: number, y: number, mayGive: (x: number) => boolean): number | undefined {
    const peers = this.out[u]!;
    if (y === u || this.gained[y] || peers.includes(y)) return undefined;
    for (let at = peers.length - 1; at >= 0; at--) {
      const x = peers[at]!;
      if (this.lost[x] || !mayGive(x)) continue;
      peers[at] = y;
      this.gained[y] = 1;
      this.lost[x] = 1;
      return x;
    }
    return undefined;
  }
}
