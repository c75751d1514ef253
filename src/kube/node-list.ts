/**
 * The published node list: every node's entry (NodeEntry, read from its Node in node.ts), in SHARD_COUNT ConfigMaps in mentat's
 * namespace, gzipped. A shard is rewritten only when its content changes, and the lease names each
 * shard's content hash: agents watch the lease (which the publisher renews anyway) and fetch only
 * the shards whose hash changed. One node changing costs every agent one small GET, not a 10 KB
 * Node update every few minutes from every kubelet.
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { NodeEntry, NodeState } from '../types.js';
import { CONFIG_MAPS, KubeApiError, type KubeObject, type ObjectClient } from './api.js';

/** Shards: one change touches 1/16 of the list (about 8 KB at 5000 nodes). */
export const SHARD_COUNT = 16;
export const LEASE_NAME = 'mentat-node-list';
/** On the lease: which shards hold which content. */
export const LIST_ANNOTATION = 'mentat.dev/node-list';
/** On a shard: the hash of its content, to check a fetched shard against the lease. */
const HASH_ANNOTATION = 'mentat.dev/content-hash';
const DATA_KEY = 'nodes.json.gz';

export const shardName = (i: number): string => `mentat-nodes-${String(i).padStart(2, '0')}`;

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

/** What the lease announces. */
export interface ListAnnouncement {
  readonly v: 1;
  /** Content hash of each shard, by index. */
  readonly shards: readonly string[];
  readonly nodes: number;
}

export function parseAnnouncement(text: string | undefined): ListAnnouncement | undefined {
  if (!text) return undefined;
  try {
    const a = JSON.parse(text) as Partial<ListAnnouncement> | null;
    if (a?.v !== 1 || !Array.isArray(a.shards) || a.shards.length !== SHARD_COUNT || !a.shards.every((h) => typeof h === 'string')) return undefined;
    return { v: 1, shards: a.shards, nodes: typeof a.nodes === 'number' ? a.nodes : 0 };
  } catch {
    return undefined;
  }
}

interface ConfigMap extends KubeObject {
  readonly binaryData?: Readonly<Record<string, string>>;
}

function shardObject(namespace: string, i: number, data: Buffer, hash: string, resourceVersion?: string): ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: shardName(i),
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { 'app.kubernetes.io/name': 'mentat', 'app.kubernetes.io/part-of': 'mentat', 'mentat.dev/node-list': 'shard' },
      annotations: { [HASH_ANNOTATION]: hash },
    },
    binaryData: { [DATA_KEY]: data.toString('base64') },
  };
}

/** Writes the shards; remembers what it wrote so that an unchanged shard costs nothing. */
export class ListPublisher {
  private readonly written: string[] = [];

  constructor(
    private readonly objects: ObjectClient,
    private readonly namespace: string,
  ) {}

  /** Writes the shards whose content changed; returns the announcement for the lease. */
  async publish(entries: readonly NodeEntry[]): Promise<ListAnnouncement> {
    const buckets: NodeEntry[][] = Array.from({ length: SHARD_COUNT }, () => []);
    for (const e of entries) buckets[shardOf(e.name, SHARD_COUNT)]!.push(e);
    const shards = buckets.map((b) => encodeShard(b));
    for (const [i, { data, hash }] of shards.entries()) {
      if (this.written[i] === hash) continue;
      await this.write(i, data, hash);
      this.written[i] = hash;
    }
    return { v: 1, shards: shards.map((s) => s.hash), nodes: entries.length };
  }

  /** Checks that every shard is still there with the content announced; rewrites what is missing or changed by someone else. */
  async verify(entries: readonly NodeEntry[]): Promise<number> {
    let repaired = 0;
    for (let i = 0; i < SHARD_COUNT; i++) {
      const current = await this.objects.get<ConfigMap>(CONFIG_MAPS(this.namespace), shardName(i));
      if (current?.metadata.annotations?.[HASH_ANNOTATION] === this.written[i]) continue;
      this.written[i] = '';
      repaired++;
    }
    if (repaired > 0) await this.publish(entries);
    return repaired;
  }

  private async write(i: number, data: Buffer, hash: string): Promise<void> {
    const collection = CONFIG_MAPS(this.namespace);
    // Read first: a replace must name the version it replaces; a conflict (someone wrote it meanwhile) reads again.
    for (let attempt = 0; ; attempt++) {
      const current = await this.objects.get<ConfigMap>(collection, shardName(i));
      try {
        if (current) await this.objects.replace(collection, shardObject(this.namespace, i, data, hash, current.metadata.resourceVersion));
        else await this.objects.create(collection, shardObject(this.namespace, i, data, hash));
        return;
      } catch (err) {
        if (!(err instanceof KubeApiError) || (err.code !== 409 && err.code !== 404) || attempt >= 3) throw err;
      }
    }
  }
}

/** Fetches the shards an announcement names, keeping the ones it already has. */
export class ListFetcher {
  private readonly have = new Map<number, { hash: string; entries: NodeEntry[] }>();

  constructor(
    private readonly objects: ObjectClient,
    private readonly namespace: string,
  ) {}

  /**
   * The whole list as announced, or undefined when a shard is not (yet) what the lease says:
   * the publisher writes shards before it announces them, so that is a shard changed or deleted
   * since, and the next announcement brings it.
   */
  async fetch(announcement: ListAnnouncement): Promise<NodeEntry[] | undefined> {
    for (const [i, hash] of announcement.shards.entries()) {
      if (this.have.get(i)?.hash === hash) continue;
      // Every agent fetches a changed shard: from the watch cache, not etcd; only a cache still
      // behind the announcement costs a consistent read.
      let shard = await this.objects.get<ConfigMap>(CONFIG_MAPS(this.namespace), shardName(i), true);
      if (shard?.metadata.annotations?.[HASH_ANNOTATION] !== hash) shard = await this.objects.get<ConfigMap>(CONFIG_MAPS(this.namespace), shardName(i));
      const data = shard?.binaryData?.[DATA_KEY];
      if (!shard || shard.metadata.annotations?.[HASH_ANNOTATION] !== hash || data === undefined) return undefined;
      this.have.set(i, { hash, entries: decodeShard(Buffer.from(data, 'base64')) });
    }
    return [...this.have.values()].flatMap((s) => s.entries);
  }
}
