/**
 * The controller's side of the published node list: writes the shards whose content changed, then
 * the index that names them; rewrites the index every refresh period (the heartbeat agents judge
 * the writer alive by); checks now and then that what lies in the API server is what it wrote, and
 * rewrites what is not (a shard deleted or overwritten, a forged index). Every write first asks
 * whether this replica still leads: one that no longer does writes nothing.
 */
import type { NodeEntry } from '../types.js';
import { sameEntry } from './node.js';
import { CONFIG_MAPS, KubeApiError, type ObjectClient } from './api.js';
import { microTime } from './leader-election.js';
import {
  encodeDelta,
  encodeShard,
  INDEX_NAME,
  indexObject,
  READ_BOUNDS,
  SHARD_COUNT,
  shardData,
  shardEntries,
  shardName,
  shardObject,
  WIRE_VERSION,
  type ConfigMap,
  type ListIndex,
} from './node-list.js';

export interface ListWriterOptions {
  readonly objects: ObjectClient;
  readonly namespace: string;
  /** Asked before every write. */
  readonly isLeader: () => boolean;
  readonly wallNow: () => number;
  readonly leaseDurationMs: number;
}

/**
 * How often the index is rewritten: a third of the lease duration (10 s by default), growing with N
 * so that 100 000 agents watching it cost ~2 MB/s (every 30 s) rather than ~6 MB/s.
 */
export function refreshSecondsFor(nodes: number, leaseDurationMs: number): number {
  return Math.min(READ_BOUNDS.maxRefreshS, Math.max(READ_BOUNDS.minRefreshS, Math.round(leaseDurationMs / 3000), Math.ceil(nodes / 3333)));
}

/** This replica is no longer the leader: what it was about to write is not written. */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError';
}

export class ListWriter {
  /** What this writer last wrote, per shard: base64 data and content hash. */
  private shards: Array<{ data: string; hash: string } | undefined> = [];
  private index: ListIndex | undefined;
  /** The list last published, by name: the next publication's delta is the difference. */
  private last: Map<string, NodeEntry> | undefined;

  constructor(private readonly options: ListWriterOptions) {}

  /** Forgets what was written (on losing the lease): the next leader checks everything again. */
  reset(): void {
    this.shards = [];
    this.index = undefined;
    this.last = undefined;
  }

  get published(): ListIndex | undefined {
    return this.index;
  }

  /**
   * Writes the shards whose content changed, then the index. Returns whether anything was written.
   * @throws NotLeaderError when this replica lost the lease meanwhile; KubeApiError when a write failed
   */
  async publish(entries: readonly NodeEntry[]): Promise<boolean> {
    const encoded = shardEntries(entries).map((b) => encodeShard(b));
    const base = new Map<number, string>();
    for (const [i, shard] of encoded.entries()) {
      const before = this.shards[i];
      if (before?.hash === shard.hash) continue;
      await this.write(shardName(i), (rv) => shardObject(this.options.namespace, i, shard.data, rv));
      if (before) base.set(i, before.hash);
      this.shards[i] = shard;
    }
    const hashes = encoded.map((s) => s.hash);
    if (base.size === 0 && this.index && this.index.nodes === entries.length && hashes.every((h, i) => this.index!.shards[i] === h)) return false;
    const delta = this.last && base.size > 0 ? encodeDelta({ base, ...diff(this.last, entries) }) : undefined;
    await this.writeIndex(hashes, entries.length, delta);
    this.last = new Map(entries.map((e) => [e.name, e]));
    return true;
  }

  /** The heartbeat: the same index, renewed (without its delta: every agent has had it, or fetches the shards). */
  async refresh(): Promise<void> {
    if (this.index) await this.writeIndex(this.index.shards, this.index.nodes);
  }

  /** Rewrites whatever in the API server is not what this writer wrote. Returns how many objects it rewrote. */
  async verify(): Promise<number> {
    if (!this.index) return 0;
    let repaired = 0;
    const collection = CONFIG_MAPS(this.options.namespace);
    for (let i = 0; i < SHARD_COUNT; i++) {
      const mine = this.shards[i];
      if (!mine) continue;
      if (shardData(await this.options.objects.get<ConfigMap>(collection, shardName(i))) === mine.data) continue;
      await this.write(shardName(i), (rv) => shardObject(this.options.namespace, i, mine.data, rv));
      repaired++;
    }
    const index = await this.options.objects.get<ConfigMap>(collection, INDEX_NAME);
    if (index?.data?.['index.json'] !== JSON.stringify(this.index)) repaired++;
    // The index is rewritten either way: this is also the heartbeat.
    await this.refresh();
    return repaired;
  }

  private async writeIndex(shards: readonly string[], nodes: number, delta?: string): Promise<void> {
    const index: ListIndex = {
      v: WIRE_VERSION,
      shards,
      nodes,
      refreshS: refreshSecondsFor(nodes, this.options.leaseDurationMs),
      renewed: microTime(this.options.wallNow()),
      ...(delta === undefined ? {} : { delta }),
    };
    await this.write(INDEX_NAME, (rv) => indexObject(this.options.namespace, index, rv));
    this.index = index;
  }

  /** Read, then replace naming the version read (create when absent); a conflict or a vanished object reads again. */
  private async write(name: string, body: (resourceVersion?: string) => ConfigMap): Promise<void> {
    const collection = CONFIG_MAPS(this.options.namespace);
    for (let attempt = 0; ; attempt++) {
      if (!this.options.isLeader()) throw new NotLeaderError(`not writing ${name}: this replica no longer holds the lease`);
      const current = await this.options.objects.get<ConfigMap>(collection, name);
      if (!this.options.isLeader()) throw new NotLeaderError(`not writing ${name}: this replica no longer holds the lease`);
      try {
        if (current) await this.options.objects.replace(collection, body(current.metadata.resourceVersion));
        else await this.options.objects.create(collection, body());
        return;
      } catch (err) {
        if (!(err instanceof KubeApiError) || (err.code !== 409 && err.code !== 404) || attempt >= 3) throw err;
      }
    }
  }
}

/** Entries added or changed, and names removed, from one list to the next. */
function diff(before: ReadonlyMap<string, NodeEntry>, after: readonly NodeEntry[]): { upsert: NodeEntry[]; remove: string[] } {
  const upsert = after.filter((e) => {
    const old = before.get(e.name);
    return !old || !sameEntry(old, e);
  });
  const names = new Set(after.map((e) => e.name));
  return { upsert, remove: [...before.keys()].filter((n) => !names.has(n)) };
}
