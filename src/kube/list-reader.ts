/**
 * An agent's side of the published node list: watches the index ConfigMap, fetches the shards whose
 * hash changed, and hands on the whole list once every shard matches the index. Everything it
 * reads is untrusted (node-list.ts bounds and checks it): an index or a shard that is not what it
 * should be costs one warning, the last good list stays, and the fetch is retried with a backoff
 * that grows and is jittered, so thousands of agents do not hammer the API server in step.
 */
import type { KubeConfig, ListWatch, V1ConfigMap } from '@kubernetes/client-node';
import type { Log, RateLimitedLog } from '../log.js';
import type { Clock, NodeEntry } from '../types.js';
import { CONFIG_MAPS, statusCodeOf, type ObjectClient, type ObjectList } from './api.js';
import type { KubeClient } from './client.js';
import { RestartingInformer, informerWatch } from './informer.js';
import { applyDelta, decodeDelta, decodeShard, INDEX_NAME, parseIndex, shardData, shardName, type ConfigMap, type ListIndex } from './node-list.js';
import { explainApiError } from './node-watch.js';

/**
 * Followers fetch a changed list at a random moment within this long: 100 000 agents see the
 * index change at once, and the API server gets their GETs spread.
 */
export const FETCH_SPREAD_MS = 5000;
/** A writer is taken for dead when its index was not renewed for this many of its refresh periods. */
export const STALE_REFRESHES = 2.5;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;

export interface ListReaderOptions {
  readonly client: KubeClient;
  readonly kubeConfig: KubeConfig;
  readonly objects: ObjectClient;
  readonly namespace: string;
  /** The refresh period assumed when the index names none that is sane. */
  readonly defaultRefreshS: number;
  readonly clock: Clock;
  /** In [0, 1): spreads fetches and retries. */
  readonly random: () => number;
  readonly delay: (ms: number) => Promise<void>;
  readonly log: Log;
  readonly warnings: RateLimitedLog;
  readonly serviceAccount?: string | undefined;
  /** The whole list, each time it changed and every shard matched the index. */
  readonly onList: (entries: NodeEntry[]) => void;
}

export class ListReader {
  private readonly runner: RestartingInformer<V1ConfigMap>;
  private readonly have = new Map<number, { hash: string; entries: NodeEntry[] }>();
  private index: ListIndex | undefined;
  private indexText: string | undefined;
  private observedAt: number | undefined;
  private readonly startedAt: number;
  private appliedKey: string | undefined;
  private fetchTimer: unknown;
  private fetching = false;
  private retryMs = RETRY_MIN_MS;
  private stopped = false;
  /** Shards brought up to date from a delta in the index, and fetched whole: how a change reached this agent. */
  deltasApplied = 0;
  shardsFetched = 0;
  /** The last whole list read, for a source that switches back to it. */
  entries: NodeEntry[] | undefined;

  constructor(private readonly options: ListReaderOptions) {
    this.startedAt = options.clock.now();
    const path = CONFIG_MAPS(options.namespace);
    const selector = `metadata.name=${INDEX_NAME}`;
    const listFn = () => options.objects.list<ConfigMap>(path, selector) as unknown as Promise<ObjectList<V1ConfigMap> & { items: V1ConfigMap[] }>;
    const informer: ListWatch<V1ConfigMap> = new options.client.ListWatch<V1ConfigMap>(
      path,
      // The index is kept whole (it is small); nothing opens once the reader is stopped (see informerWatch).
      informerWatch<V1ConfigMap>(
        options.client,
        options.kubeConfig,
        (cm) => cm,
        () => this.runner.healthy(),
        () => this.stopped,
      ),
      listFn,
      false,
      undefined,
      selector,
      { delayFn: options.delay },
    );
    const seen = (cm: V1ConfigMap | undefined) => {
      this.runner.healthy();
      this.onIndex(cm as ConfigMap | undefined);
    };
    informer.on('add', seen);
    informer.on('update', seen);
    informer.on('error', () => undefined); // RestartingInformer reports and restarts
    this.runner = new RestartingInformer(informer, {
      delay: options.delay,
      // Back within a refresh period of the API server's return, so that a fallback ends soon after.
      maxBackoffMs: Math.max(1000, options.defaultRefreshS * 1000),
      onError: (err, retryInMs) => options.warnings.warn('node-list-watch', { retryInMs }, this.explain(err)),
    });
  }

  get server(): string {
    return this.options.kubeConfig.getCurrentCluster()?.server ?? '(no cluster)';
  }

  start(): void {
    this.runner.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.fetchTimer !== undefined) this.options.clock.clearTimer(this.fetchTimer);
    await this.runner.stop();
  }

  /** How long the writer has been taken for dead: 0 while it renews the index. */
  staleForMs(): number {
    const refreshMs = (this.index?.refreshS || this.options.defaultRefreshS) * 1000;
    const since = this.observedAt ?? this.startedAt;
    return Math.max(0, this.options.clock.now() - since - STALE_REFRESHES * refreshMs);
  }

  /** The list this agent holds is the one the live index names. */
  get current(): boolean {
    return this.index !== undefined && this.appliedKey === this.index.shards.join() && this.staleForMs() === 0;
  }

  private onIndex(cm: ConfigMap | undefined): void {
    if (this.stopped || !cm) return;
    const text = cm.data?.['index.json'];
    const parsed = parseIndex(cm);
    if ('problem' in parsed) {
      this.options.warnings.warn('node-list-index', { problem: parsed.problem }, 'ignoring a node-list index that is not valid; keeping the last good list');
      return;
    }
    if (parsed.refreshIgnored !== undefined) {
      this.options.warnings.warn(
        'node-list-refresh',
        { refreshS: parsed.refreshIgnored, usingS: this.options.defaultRefreshS },
        'the node-list index names a refresh period outside 1-300 s: ignored',
      );
    }
    if (text !== this.indexText) this.observedAt = this.options.clock.now();
    this.indexText = text;
    const changed = this.index?.shards.join() !== parsed.index.shards.join();
    this.index = parsed.index;
    if (!changed && this.fetchTimer !== undefined) return;
    if (parsed.index.shards.join() === this.appliedKey) return;
    this.retryMs = RETRY_MIN_MS;
    // The first list after start is fetched at once (an agent without nodes probes nothing), and so is
    // a change that the index carries whole (no GET); shard GETs of many agents are spread.
    const now = this.entries === undefined || this.deltaCovers(parsed.index);
    this.scheduleFetch(now ? 0 : this.options.random() * FETCH_SPREAD_MS);
  }

  /** Whether the index's delta brings every shard that changed from what this agent holds. */
  private deltaCovers(index: ListIndex): boolean {
    const delta = index.delta === undefined ? undefined : decodeDelta(index.delta);
    if (!delta) return false;
    return index.shards.every((hash, i) => this.have.get(i)?.hash === hash || (this.have.has(i) && delta.base.get(i) === this.have.get(i)!.hash));
  }

  private scheduleFetch(delayMs: number): void {
    if (this.stopped) return;
    if (this.fetchTimer !== undefined) this.options.clock.clearTimer(this.fetchTimer);
    this.fetchTimer = this.options.clock.setTimer(() => {
      this.fetchTimer = undefined;
      void this.fetch();
    }, delayMs);
  }

  private async fetch(): Promise<void> {
    const index = this.index;
    if (this.fetching || !index || this.stopped) return;
    this.fetching = true;
    try {
      const delta = index.delta === undefined ? undefined : decodeDelta(index.delta);
      for (const [i, hash] of index.shards.entries()) {
        const had = this.have.get(i);
        if (had?.hash === hash) continue;
        // The change rides on the index: applied to the shard it was made on, it must give the hash the index names.
        const applied = delta && had && delta.base.get(i) === had.hash ? applyDelta(had.entries, delta, i) : undefined;
        if (applied?.hash === hash) {
          this.have.set(i, applied);
          this.deltasApplied++;
          continue;
        }
        this.have.set(i, { hash, entries: await this.fetchShard(i, hash) });
        this.shardsFetched++;
      }
      if (this.stopped || this.index !== index) return;
      this.appliedKey = index.shards.join();
      this.retryMs = RETRY_MIN_MS;
      this.entries = [...this.have.values()].flatMap((s) => s.entries);
      this.options.onList(this.entries);
    } catch (err) {
      const retryInMs = Math.round(this.retryMs * (0.5 + this.options.random()));
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      this.options.warnings.warn(
        'node-list-shard',
        { retryInMs, problem: String((err as Error).message).slice(0, 300) },
        'could not read the node list; keeping the last good list',
      );
      this.scheduleFetch(retryInMs);
    } finally {
      this.fetching = false;
      // The index changed while this fetch ran: its timer found the fetch busy, so go again.
      if (!this.stopped && this.fetchTimer === undefined && this.index && this.index.shards.join() !== this.appliedKey) this.scheduleFetch(0);
    }
  }

  /**
   * From the watch cache first (resourceVersion=0: no quorum read of etcd for 100 000 agents); a
   * cache still behind the index costs one consistent read.
   */
  private async fetchShard(i: number, hash: string): Promise<NodeEntry[]> {
    const collection = CONFIG_MAPS(this.options.namespace);
    const decode = (cm: ConfigMap | undefined) => {
      const data = shardData(cm);
      if (data === undefined) throw new Error(`${shardName(i)} is missing or holds no node list`);
      return decodeShard(data, hash);
    };
    try {
      return decode(await this.options.objects.get<ConfigMap>(collection, shardName(i), true));
    } catch {
      try {
        return decode(await this.options.objects.get<ConfigMap>(collection, shardName(i)));
      } catch (err) {
        throw new Error(`${shardName(i)}: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  private explain(err: unknown): string {
    const sa = this.options.serviceAccount ?? 'the service account of this pod';
    if (statusCodeOf(err) === 403) {
      return `the API server at ${this.server} refused to let ${sa} read the node list ${this.options.namespace}/${INDEX_NAME} (403 Forbidden): apply the Role and RoleBinding in deploy/base/rbac.yaml, or set MENTAT_NODE_LIST=direct; watching Nodes directly meanwhile`;
    }
    return explainApiError(err, this.server, sa);
  }
}
