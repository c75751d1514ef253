/**
 * The published node list, as it lies in mentat's namespace: every node's entry (NodeEntry, read
 * from its Node in node.ts) in SHARD_COUNT gzipped ConfigMaps, and one small index ConfigMap that
 * names each shard's content hash. Only the controller writes them (list-writer.ts); agents watch
 * the index and fetch the shards whose hash changed (list-reader.ts). Agents read everything here
 * as untrusted: anyone who can write a ConfigMap in the namespace could have written it, so every
 * size is bounded before it is parsed, and a shard counts only if its content hashes to what the
 * index says.
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { NodeEntry, NodeState } from '../types.js';
import type { KubeObject } from './api.js';
import { LIST_BOUNDS, MAX_ADDRESSES } from './node.js';

/** Shards: one change touches 1/16 of the list (about 8 KB at 5000 nodes). */
export const SHARD_COUNT = 16;
/** The controller replicas elect their writer with this Lease; agents never read it. */
export const ELECTION_LEASE = 'mentat-controller';
/** The index: what agents watch. */
export const INDEX_NAME = 'mentat-nodes';
export const shardName = (i: number): string => `${INDEX_NAME}-${String(i).padStart(2, '0')}`;
export const SHARD_NAMES: readonly string[] = Array.from({ length: SHARD_COUNT }, (_, i) => shardName(i));
const INDEX_KEY = 'index.json';
const SHARD_KEY = 'nodes.json.gz';

export const WIRE_VERSION = 2;

/**
 * Bounds on what an agent reads, checked before each step that could cost more: a ConfigMap holds
 * at most 1 MiB; a shard of 110 000 nodes / 16 is ~700 KB of JSON, so 2 MiB unpacked is a real
 * shard with room to spare, and a gzip bomb stops there.
 */
export const READ_BOUNDS = {
  shardBase64Chars: Math.ceil((1024 * 1024 * 4) / 3) + 4,
  shardUnpackedBytes: 2 * 1024 * 1024,
  /** Twice a shard's fair share of the largest list: names hash evenly. */
  shardEntries: Math.ceil((2 * LIST_BOUNDS.maxNodes) / SHARD_COUNT),
  indexChars: 16 * 1024,
  /** How often the writer may say it refreshes the index, in seconds: outside these, the agent's own setting holds. */
  minRefreshS: 1,
  maxRefreshS: 300,
} as const;

/** What the index announces. */
export interface ListIndex {
  readonly v: typeof WIRE_VERSION;
  /** Content hash of each shard, by index. */
  readonly shards: readonly string[];
  readonly nodes: number;
  /** The writer rewrites the index at least this often (its heartbeat): agents judge it alive by that. */
  readonly refreshS: number;
  /** Changes with every refresh, so that a live writer is seen as one. */
  readonly renewed: string;
  /**
   * What changed since the list before (encodeDelta), when it was small: an agent that holds the
   * shards it names as `base` applies it instead of fetching them. Absent on a refresh.
   */
  readonly delta?: string;
}

export interface ConfigMap extends KubeObject {
  readonly data?: Readonly<Record<string, string>>;
  readonly binaryData?: Readonly<Record<string, string>>;
}

const HASH = /^[A-Za-z0-9_-]{16}$/;

/** The index a ConfigMap holds, or why it is not one (an agent keeps what it has and says so). */
export function parseIndex(cm: ConfigMap | undefined): { index: ListIndex; refreshIgnored?: number } | { problem: string } {
  const text = cm?.data?.[INDEX_KEY];
  if (typeof text !== 'string') return { problem: `the ConfigMap has no ${INDEX_KEY}` };
  if (text.length > READ_BOUNDS.indexChars) return { problem: `${INDEX_KEY} is ${text.length} characters long (at most ${READ_BOUNDS.indexChars})` };
  let raw: Partial<Record<keyof ListIndex, unknown>> | null;
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch {
    return { problem: `${INDEX_KEY} is not JSON` };
  }
  if (raw?.v !== WIRE_VERSION) return { problem: `${INDEX_KEY} is not of version ${WIRE_VERSION}` };
  const { shards, nodes, refreshS, renewed } = raw;
  if (!Array.isArray(shards) || shards.length !== SHARD_COUNT || !shards.every((h) => typeof h === 'string' && HASH.test(h))) {
    return { problem: `${INDEX_KEY} does not name ${SHARD_COUNT} shard hashes` };
  }
  if (typeof nodes !== 'number' || !Number.isInteger(nodes) || nodes < 0 || nodes > LIST_BOUNDS.maxNodes) {
    return { problem: `${INDEX_KEY} names ${String(nodes).slice(0, 20)} nodes (at most ${LIST_BOUNDS.maxNodes})` };
  }
  const saneRefresh = typeof refreshS === 'number' && refreshS >= READ_BOUNDS.minRefreshS && refreshS <= READ_BOUNDS.maxRefreshS;
  const delta = raw.delta;
  const index: ListIndex = {
    v: WIRE_VERSION,
    shards: shards as string[],
    nodes,
    refreshS: saneRefresh ? refreshS : 0,
    renewed: typeof renewed === 'string' ? renewed.slice(0, 64) : '',
    ...(typeof delta === 'string' ? { delta } : {}),
  };
  return saneRefresh ? { index } : { index, refreshIgnored: typeof refreshS === 'number' ? refreshS : NaN };
}

export function indexObject(namespace: string, index: ListIndex, resourceVersion?: string): ConfigMap {
  return { ...listObject(namespace, INDEX_NAME, 'index', resourceVersion), data: { [INDEX_KEY]: JSON.stringify(index) } };
}

export function shardObject(namespace: string, i: number, data: string, resourceVersion?: string): ConfigMap {
  return { ...listObject(namespace, shardName(i), 'shard', resourceVersion), binaryData: { [SHARD_KEY]: data } };
}

function listObject(namespace: string, name: string, part: string, resourceVersion: string | undefined): ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { 'app.kubernetes.io/name': 'mentat', 'app.kubernetes.io/part-of': 'mentat', 'mentat.dev/node-list': part },
    },
  };
}

/** A shard's gzipped data as stored (base64), or undefined. */
export function shardData(cm: ConfigMap | undefined): string | undefined {
  const data = cm?.binaryData?.[SHARD_KEY];
  return typeof data === 'string' ? data : undefined;
}

/** Entries of one shard in their wire form: [name, zone, state, createdAtS, [[type, address], ...]]. */
type WireEntry = [string, string | null, 'a' | 'c' | 'l', number | null, Array<[string, string]>];
const STATE_CODE: Record<NodeState, WireEntry[2]> = { active: 'a', cordoned: 'c', leaving: 'l' };
const CODE_STATE: Readonly<Record<string, NodeState>> = { a: 'active', c: 'cordoned', l: 'leaving' };

const contentHash = (json: string | Buffer): string => createHash('sha256').update(json).digest('base64url').slice(0, 16);

/** A shard's gzipped JSON (base64, as a ConfigMap holds it), and its content hash (what the index names). */
export function encodeShard(entries: readonly NodeEntry[]): { data: string; hash: string } {
  const json = shardJson(entries);
  return { data: gzipSync(json, { level: 9 }).toString('base64'), hash: contentHash(json) };
}

function shardJson(entries: readonly NodeEntry[]): string {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return JSON.stringify({ v: WIRE_VERSION, nodes: sorted.map(wireOf) });
}

const wireOf = (e: NodeEntry): WireEntry => [e.name, e.zone ?? null, STATE_CODE[e.state], e.createdAtS ?? null, e.addresses.map((a) => [a.type, a.address])];

/**
 * Reads a shard that must hash to `hash`. Sizes are bounded before each step (base64 text,
 * unpacked bytes, entries); malformed entries are skipped, not fatal.
 * @throws an Error that says what is wrong with the shard
 */
export function decodeShard(data: string, hash: string): NodeEntry[] {
  if (data.length > READ_BOUNDS.shardBase64Chars) throw new Error(`its data is ${data.length} characters long (at most ${READ_BOUNDS.shardBase64Chars})`);
  let json: Buffer;
  try {
    json = gunzipSync(Buffer.from(data, 'base64'), { maxOutputLength: READ_BOUNDS.shardUnpackedBytes });
  } catch (err) {
    throw new Error(`its data does not unpack within ${READ_BOUNDS.shardUnpackedBytes} bytes (${(err as Error).message.slice(0, 80)})`, { cause: err });
  }
  if (contentHash(json) !== hash) throw new Error('its content does not match the hash the index names');
  const parsed = JSON.parse(json.toString('utf8')) as { v?: unknown; nodes?: unknown } | null;
  if (parsed?.v !== WIRE_VERSION || !Array.isArray(parsed.nodes)) throw new Error(`it is not a node list shard of version ${WIRE_VERSION}`);
  if (parsed.nodes.length > READ_BOUNDS.shardEntries) throw new Error(`it holds ${parsed.nodes.length} entries (at most ${READ_BOUNDS.shardEntries})`);
  const entries: NodeEntry[] = [];
  for (const item of parsed.nodes as unknown[]) {
    const entry = entryOfWire(item);
    if (entry) entries.push(entry);
  }
  return entries;
}

function entryOfWire(item: unknown): NodeEntry | undefined {
  if (!Array.isArray(item) || item.length !== 5) return undefined;
  const [name, zone, state, created, addresses] = item as unknown[];
  if (typeof name !== 'string' || name.length > 253 || !Array.isArray(addresses) || addresses.length > MAX_ADDRESSES) return undefined;
  if (typeof state !== 'string' || CODE_STATE[state] === undefined) return undefined;
  const pairs: Array<{ type: string; address: string }> = [];
  for (const a of addresses as unknown[]) {
    if (!Array.isArray(a) || typeof a[0] !== 'string' || typeof a[1] !== 'string' || a[0].length > 32 || a[1].length > 64) return undefined;
    pairs.push({ type: a[0], address: a[1] });
  }
  return {
    name,
    state: CODE_STATE[state],
    addresses: pairs,
    ...(typeof zone === 'string' && zone.length <= 63 ? { zone } : {}),
    ...(typeof created === 'number' && Number.isSafeInteger(created) ? { createdAtS: created } : {}),
  };
}

/** Changes from one list to the next: per shard, the hash they apply to; entries added or changed; names removed. */
export interface ListDelta {
  readonly base: ReadonlyMap<number, string>;
  readonly upsert: readonly NodeEntry[];
  readonly remove: readonly string[];
}

/** Past this, a delta is left out of the index: every agent receives the index, and agents fetch the shards instead. */
export const MAX_DELTA_CHARS = 8 * 1024;

/** A delta as the index carries it (gzipped JSON, base64), or undefined when it would be larger than MAX_DELTA_CHARS. */
export function encodeDelta(delta: ListDelta): string | undefined {
  const wire = {
    base: Object.fromEntries(delta.base),
    upsert: delta.upsert.map(wireOf),
    remove: delta.remove,
  };
  const text = gzipSync(JSON.stringify(wire), { level: 9 }).toString('base64');
  return text.length <= MAX_DELTA_CHARS ? text : undefined;
}

/** Reads a delta; undefined when it is not one (the agent then fetches the shards). Bounded like a shard, by the index's own size. */
export function decodeDelta(text: string): ListDelta | undefined {
  try {
    if (text.length > MAX_DELTA_CHARS) return undefined;
    const raw = JSON.parse(gunzipSync(Buffer.from(text, 'base64'), { maxOutputLength: 16 * MAX_DELTA_CHARS }).toString('utf8')) as {
      base?: unknown;
      upsert?: unknown;
      remove?: unknown;
    } | null;
    if (typeof raw?.base !== 'object' || raw.base === null || !Array.isArray(raw.upsert) || !Array.isArray(raw.remove)) return undefined;
    const base = new Map<number, string>();
    for (const [k, v] of Object.entries(raw.base as Record<string, unknown>)) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= SHARD_COUNT || typeof v !== 'string' || !HASH.test(v)) return undefined;
      base.set(i, v);
    }
    const upsert = (raw.upsert as unknown[]).map(entryOfWire);
    if (upsert.some((e) => e === undefined) || !(raw.remove as unknown[]).every((n) => typeof n === 'string' && n.length <= 253)) return undefined;
    return { base, upsert: upsert as NodeEntry[], remove: raw.remove as string[] };
  } catch {
    return undefined;
  }
}

/**
 * One shard's entries after a delta, and its hash: the agent accepts the result only if the hash is
 * the one the index names, so a delta can never make a list the writer did not publish.
 */
export function applyDelta(entries: readonly NodeEntry[], delta: ListDelta, shard: number): { entries: NodeEntry[]; hash: string } {
  const byName = new Map(entries.map((e) => [e.name, e]));
  for (const name of delta.remove) if (shardOf(name, SHARD_COUNT) === shard) byName.delete(name);
  for (const e of delta.upsert) if (shardOf(e.name, SHARD_COUNT) === shard) byName.set(e.name, e);
  const next = [...byName.values()];
  return { entries: next, hash: contentHash(shardJson(next)) };
}

/** Which of `count` shards a node's entry lives in: by a hash of its name, so a change touches one shard. */
export function shardOf(name: string, count: number): number {
  const digest = createHash('sha1').update(name).digest();
  return digest.readUInt32BE(0) % count;
}

/** The entries in SHARD_COUNT buckets, as the writer stores them. */
export function shardEntries(entries: readonly NodeEntry[]): NodeEntry[][] {
  const buckets: NodeEntry[][] = Array.from({ length: SHARD_COUNT }, () => []);
  for (const e of entries) buckets[shardOf(e.name, SHARD_COUNT)]!.push(e);
  return buckets;
}
