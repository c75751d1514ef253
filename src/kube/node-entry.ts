/**
 * What the agents use of a Node, and nothing else: its name, addresses, zone, state and creation
 * time. A kubelet-sized Node is ~10 KB of JSON; an entry is ~100 bytes. The direct watch keeps
 * entries; the published node list (node-list.ts) is entries, sharded and gzipped.
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { NodeState } from '../types.js';
import { createdAtOf, nodeStateOf, zoneOf, type NodeLike } from './targets.js';

export interface NodeEntry {
  readonly name: string;
  /** The Node's addresses, in its order: each agent applies its own address policy. */
  readonly addresses: ReadonlyArray<{ readonly type: string; readonly address: string }>;
  readonly zone?: string;
  readonly state: NodeState;
  /** Seconds since the epoch. */
  readonly createdAtS?: number;
}

/** Bounds against a hostile or broken object: far above what any real Node carries. */
const MAX_ADDRESSES = 16;
/** Kubernetes names are at most 253 characters; longer ones are kept (bounded) so the problem can name their length. */
const MAX_NAME = 1024;

/** The entry of a Node; undefined without a name (such a node is reported as broken). */
export function entryOf(node: NodeLike): NodeEntry | undefined {
  const name = node.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  const addresses = (node.status?.addresses ?? [])
    .filter((a) => typeof a?.type === 'string' && typeof a.address === 'string')
    .slice(0, MAX_ADDRESSES)
    .map((a) => ({ type: a.type!.slice(0, 32), address: a.address!.slice(0, 64) }));
  const zone = zoneOf(node);
  const created = createdAtOf(node);
  return {
    name: name.slice(0, MAX_NAME),
    addresses,
    state: nodeStateOf(node),
    ...(zone === undefined ? {} : { zone }),
    ...(created === undefined ? {} : { createdAtS: Math.floor(created / 1000) }),
  };
}

/**
 * Whether two entries say the same. Most Node updates are kubelet status reports that change
 * nothing an agent uses: they must not cost a new mesh plan (at 5000 nodes that is ~17 a second).
 */
export function sameEntry(a: NodeEntry, b: NodeEntry): boolean {
  if (a.name !== b.name || a.zone !== b.zone || a.state !== b.state || a.createdAtS !== b.createdAtS || a.addresses.length !== b.addresses.length) return false;
  return a.addresses.every((x, i) => x.type === b.addresses[i]?.type && x.address === b.addresses[i]?.address);
}

/** Entries of one shard in their wire form: [name, zone, state, createdAtS, [[type, address], ...]]. */
type WireEntry = [string, string | null, 'a' | 'c' | 'l', number | null, Array<[string, string]>];
const STATE_CODE: Record<NodeState, WireEntry[2]> = { active: 'a', cordoned: 'c', leaving: 'l' };
const CODE_STATE: Record<string, NodeState> = { a: 'active', c: 'cordoned', l: 'leaving' };

export const WIRE_VERSION = 1;

/** A shard's gzipped JSON, and its content hash (what the lease names, so agents fetch only what changed). */
export function encodeShard(entries: readonly NodeEntry[]): { data: Buffer; hash: string } {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const wire: WireEntry[] = sorted.map((e) => [e.name, e.zone ?? null, STATE_CODE[e.state], e.createdAtS ?? null, e.addresses.map((a) => [a.type, a.address])]);
  const json = JSON.stringify({ v: WIRE_VERSION, nodes: wire });
  return { data: gzipSync(json, { level: 9 }), hash: createHash('sha256').update(json).digest('base64url').slice(0, 16) };
}

/**
 * Reads a shard; malformed entries are skipped, not fatal (one bad entry must not cost the rest).
 * @throws when the data is not a gzipped shard of a known version
 */
export function decodeShard(data: Buffer): NodeEntry[] {
  const parsed = JSON.parse(gunzipSync(data, { maxOutputLength: 64 * 1024 * 1024 }).toString('utf8')) as { v?: unknown; nodes?: unknown };
  if (parsed?.v !== WIRE_VERSION || !Array.isArray(parsed.nodes)) throw new Error(`not a node list shard of version ${WIRE_VERSION}`);
  const entries: NodeEntry[] = [];
  for (const item of parsed.nodes as unknown[]) {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !Array.isArray(item[4])) continue;
    const [name, zone, state, created, addresses] = item as WireEntry;
    entries.push({
      name,
      state: CODE_STATE[state] ?? 'active',
      addresses: addresses
        .filter((a) => Array.isArray(a) && typeof a[0] === 'string' && typeof a[1] === 'string')
        .map(([type, address]) => ({ type, address })),
      ...(typeof zone === 'string' ? { zone } : {}),
      ...(typeof created === 'number' ? { createdAtS: created } : {}),
    });
  }
  return entries;
}

/** Which of `count` shards a node's entry lives in: by a hash of its name, so a change touches one shard. */
export function shardOf(name: string, count: number): number {
  const digest = createHash('sha1').update(name).digest();
  return digest.readUInt32BE(0) % count;
}
