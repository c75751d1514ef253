/**
 * Where an agent's node list comes from. Direct: the agent watches Nodes itself, and receives every
 * kubelet status update of every node (O(N²) bytes cluster-wide). Published (the default in a pod):
 * one agent holds a Lease in mentat's namespace, watches Nodes and publishes the compact node list
 * (node-list.ts); every agent watches the Lease and fetches what changed. With no live publisher for
 * two lease durations, agents fall back to watching Nodes themselves, and go back to the list once a
 * publisher is alive again; the last known nodes are kept through every change of source.
 */
import { createHash } from 'node:crypto';
import type { ListWatch } from '@kubernetes/client-node';
import type { Clock, MeshNode, NodeEntry } from '../types.js';
import { LEASES, ObjectClient, statusCodeOf, type ObjectList } from './api.js';
import { DEFAULT_MAX_BACKOFF_MS, DEFAULT_MIN_BACKOFF_MS, explainApiError, NodeWatch, type NodeWatchOptions } from './node-watch.js';
import { Lease, type LeaseObject } from './lease.js';
import { LEASE_NAME, LIST_ANNOTATION, ListFetcher, ListPublisher, parseAnnouncement, type ListAnnouncement } from './node-list.js';
import type { NodeTable } from '../mesh/node-table.js';

export interface PublishedListSettings {
  /** mentat's namespace: the Lease and the shards live there. */
  readonly namespace: string;
  /** This agent in the lease (its pod name). */
  readonly identity: string;
  /** This agent's node: its turn to take a free lease comes from a hash of it. */
  readonly nodeName: string;
  readonly leaseDurationMs: number;
}

export interface NodeSourceOptions extends Pick<NodeWatchOptions, 'client' | 'kubeConfig' | 'log' | 'warnings' | 'delay'> {
  readonly table: NodeTable;
  readonly onNodes: (nodes: MeshNode[]) => void;
  readonly clock: Clock;
  readonly wallNow: () => number;
  /** In [0, 1): spreads fallbacks and first attempts of thousands of agents. */
  readonly random: () => number;
  /** Named in permission errors. */
  readonly serviceAccount?: string;
  /** Absent: watch Nodes directly, always. */
  readonly published?: PublishedListSettings;
  /** Discovery settings for tests (page size, backoff). */
  readonly discovery?: Pick<NodeWatchOptions, 'pageSize' | 'minBackoffMs' | 'maxBackoffMs'>;
  /** How often the publisher checks its shards (default VERIFY_EVERY_MS). */
  readonly verifyEveryMs?: number;
}

/** Requests of our own (lease, shards) are bounded like client-node's. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A change of the node list is published once it has been quiet this long, and at most this late. */
export const PUBLISH_QUIET_MS = 2000;
export const PUBLISH_MAX_DELAY_MS = 10_000;
/** The publisher checks its shards this often (deleted by hand, overwritten by someone else). */
export const VERIFY_EVERY_MS = 60_000;
/**
 * Followers fetch a changed list at a random moment within this long (at most a sixth of the lease
 * duration): 5000 agents see the announcement at once, and the API server gets their GETs spread.
 */
export const FETCH_SPREAD_MS = 5000;

/** Why the lease cannot be read, in words that say what to fix (a 403 here is the Role, not the ClusterRole). */
function explainLeaseError(err: unknown, server: string, namespace: string, serviceAccount: string | undefined): string {
  if (statusCodeOf(err) === 403) {
    return `the API server at ${server} refused to let ${serviceAccount ?? 'the service account of this pod'} read the lease ${namespace}/${LEASE_NAME} (403 Forbidden): apply the Role and RoleBinding in deploy/base/rbac.yaml, or set MENTAT_NODE_LIST=direct; watching Nodes directly meanwhile`;
  }
  return explainApiError(err, server, serviceAccount ?? 'the service account of this pod');
}

export class NodeSource {
  private direct: NodeWatch | undefined;
  private directWhy: 'direct' | 'leader' | 'fallback' | undefined;
  private lease: Lease | undefined;
  private leaseWatch: ListWatch<LeaseObject> | undefined;
  private publisher: ListPublisher | undefined;
  private fetcher: ListFetcher | undefined;
  private readonly objects: ObjectClient;
  private entries: NodeEntry[] = [];
  private announced: string | undefined;
  /** The announcement waiting for its moment (FETCH_SPREAD_MS), and that moment. */
  private pendingKey: string | undefined;
  private fetchAt = 0;
  private applied: string | undefined;
  private timer: unknown;
  private publishTimer: unknown;
  private firstChangeAt: number | undefined;
  private lastRenewOk: number;
  private lastVerify: number;
  private attemptAt: number | undefined;
  private fallbackAt: number | undefined;
  private readonly startedAt: number;
  private busy = false;
  private stopped = false;
  /** True once a node list (direct or published) has been applied. */
  synced = false;

  constructor(private readonly options: NodeSourceOptions) {
    this.objects = new ObjectClient(options.client, options.kubeConfig, REQUEST_TIMEOUT_MS);
    this.startedAt = options.clock.now();
    this.lastRenewOk = this.startedAt;
    this.lastVerify = this.startedAt;
  }

  get server(): string {
    return this.options.kubeConfig.getCurrentCluster()?.server ?? '(no cluster)';
  }

  /** Where the list comes from now: published, direct (configured), leader (publishing it), fallback. */
  get mode(): 'published' | 'direct' | 'leader' | 'fallback' {
    return this.directWhy ?? 'published';
  }

  start(): void {
    const published = this.options.published;
    if (!published) {
      this.startDirect('direct');
      return;
    }
    this.lease = new Lease({
      objects: this.objects,
      namespace: published.namespace,
      name: LEASE_NAME,
      identity: published.identity,
      durationMs: published.leaseDurationMs,
      clock: this.options.clock,
      wallNow: this.options.wallNow,
      log: this.options.log,
    });
    this.fetcher = new ListFetcher(this.objects, published.namespace);
    this.watchLease(published.namespace);
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.options.clock.clearTimer(this.timer);
    if (this.publishTimer !== undefined) this.options.clock.clearTimer(this.publishTimer);
    await this.leaseWatch?.stop();
    await this.direct?.stop();
    await this.lease?.release();
  }

  private get durationMs(): number {
    return this.options.published?.leaseDurationMs ?? 30_000;
  }

  /** Applies a node list, whichever source it came from. */
  private apply(entries: NodeEntry[]): void {
    if (this.stopped) return;
    this.entries = entries;
    for (const { name, problem } of this.options.table.setEntries(entries)) {
      this.options.warnings.warn(`node:${name.slice(0, 64)}`, { node: name.slice(0, 253), problem }, 'skipping a node that cannot be probed');
    }
    this.synced = true;
    this.options.onNodes(this.options.table.nodes());
  }

  private startDirect(why: 'direct' | 'leader' | 'fallback'): void {
    const was = this.directWhy;
    this.directWhy = why;
    if (why === 'fallback' && was !== 'fallback') {
      this.options.log.warn(
        { leaseDurationMs: this.durationMs },
        'no agent has published the node list for two lease durations: watching Nodes directly until one does',
      );
    }
    if (this.direct) return;
    this.direct = new NodeWatch({
      client: this.options.client,
      kubeConfig: this.options.kubeConfig,
      onEntries: (entries) => {
        this.apply(entries);
        if (this.lease?.isLeader) this.schedulePublish();
      },
      log: this.options.log,
      warnings: this.options.warnings,
      delay: this.options.delay,
      ...(this.options.serviceAccount ? { serviceAccount: this.options.serviceAccount } : {}),
      ...this.options.discovery,
    });
    this.direct.start();
  }

  private async stopDirect(): Promise<void> {
    const direct = this.direct;
    this.direct = undefined;
    this.directWhy = undefined;
    await direct?.stop();
  }

  /** The lease, through client-node's informer (list, watch, restart). */
  private watchLease(namespace: string): void {
    const { client, kubeConfig } = this.options;
    const path = LEASES(namespace);
    const listFn = () =>
      this.objects.list<LeaseObject>(path, `metadata.name=${LEASE_NAME}`) as unknown as Promise<ObjectList<LeaseObject> & { items: LeaseObject[] }>;
    const informer = new client.ListWatch<LeaseObject>(path, new client.Watch(kubeConfig), listFn, false, undefined, `metadata.name=${LEASE_NAME}`, {
      delayFn: this.options.delay,
    });
    // Retries back off as discovery's do: thousands of agents refused at once must not retry every second.
    let backoffMs = DEFAULT_MIN_BACKOFF_MS;
    const seen = (lease: LeaseObject | undefined) => {
      backoffMs = DEFAULT_MIN_BACKOFF_MS;
      this.lease?.observe(lease);
      this.tick();
    };
    informer.on('add', seen);
    informer.on('update', seen);
    informer.on('delete', () => seen(undefined));
    informer.on('error', (err) => {
      if (this.stopped || (err as Error | undefined)?.name === 'AbortError') return;
      this.options.warnings.warn('lease-watch', { retryInMs: backoffMs }, explainLeaseError(err, this.server, namespace, this.options.serviceAccount));
      const wait = backoffMs;
      backoffMs = Math.min(backoffMs * 2, DEFAULT_MAX_BACKOFF_MS);
      void this.options.delay(wait).then(() => {
        if (!this.stopped) void informer.start();
      });
    });
    this.leaseWatch = informer;
    void informer.start();
  }

  /** Runs one evaluation (never two at once), then again in a moment. */
  private tick(): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.options.clock.clearTimer(this.timer);
    this.timer = this.options.clock.setTimer(() => this.tick(), Math.min(1000, this.durationMs / 10));
    if (this.busy) return;
    this.busy = true;
    this.evaluate()
      .catch((err: unknown) =>
        this.options.warnings.warn('node-list', { err: String((err as Error).message ?? err).slice(0, 300) }, 'node list: a request failed; retrying'),
      )
      .finally(() => {
        this.busy = false;
      });
  }

  private async evaluate(): Promise<void> {
    const lease = this.lease!;
    const now = this.options.clock.now();
    if (lease.isLeader) {
      await this.lead(now);
      return;
    }
    if (this.directWhy === 'leader') {
      await this.stopDirect();
      this.publisher = undefined;
      this.announced = undefined;
    }
    const expiredMs = lease.expiredForMs();
    if (expiredMs === 0) {
      this.attemptAt = undefined;
      this.fallbackAt = undefined;
      await this.follow(parseAnnouncement(lease.annotation(LIST_ANNOTATION)), now);
      return;
    }
    // No live publisher: take the lease when it is this agent's turn.
    this.attemptAt ??= now + this.turnDelayMs();
    if (now >= this.attemptAt) {
      // A refused or failed attempt is tried again a lease duration later, not every second.
      this.attemptAt = now + this.durationMs;
      if (await lease.tryAcquire()) {
        this.attemptAt = undefined;
        this.publisher = new ListPublisher(this.objects, this.options.published!.namespace);
        this.lastRenewOk = now;
        this.startDirect('leader');
        return;
      }
    }
    // Still none, long after it should have been: watch Nodes directly (spread over a lease duration).
    const waitedMs = Math.min(expiredMs, now - this.startedAt);
    if (this.directWhy === undefined && (waitedMs > this.durationMs || (!this.synced && now - this.startedAt > this.durationMs))) {
      this.fallbackAt ??= now + this.options.random() * this.durationMs;
      if (now >= this.fallbackAt) this.startDirect('fallback');
    }
  }

  /** A live publisher: fetch what it announced, and leave a fallback once the list is here. */
  private async follow(announcement: ListAnnouncement | undefined, now: number): Promise<void> {
    if (!announcement || !this.fetcher) return;
    const key = JSON.stringify(announcement.shards);
    if (key === this.applied) return;
    // The first list after start is fetched at once (an agent without nodes probes nothing).
    if (this.synced) {
      if (key !== this.pendingKey) {
        this.pendingKey = key;
        this.fetchAt = now + this.options.random() * Math.min(FETCH_SPREAD_MS, this.durationMs / 6);
      }
      if (now < this.fetchAt) return;
    }
    const entries = await this.fetcher.fetch(announcement);
    if (!entries) return;
    this.applied = key;
    if (this.directWhy === 'fallback') {
      await this.stopDirect();
      this.options.log.info({ nodes: entries.length }, 'an agent publishes the node list again: no longer watching Nodes directly');
    }
    this.apply(entries);
  }

  /** The holder: renew, publish what changed, check the shards now and then; give up after failing for 2/3 of a duration. */
  private async lead(now: number): Promise<void> {
    const lease = this.lease!;
    const renewDue = now - this.lastRenewOk >= this.durationMs / 3;
    if (renewDue) {
      try {
        if (await lease.renew()) this.lastRenewOk = now;
        else return;
      } catch (err) {
        if (now - this.lastRenewOk > (2 * this.durationMs) / 3) lease.stepDown(`cannot renew it: ${(err as Error).message}`);
        throw err;
      }
    }
    if (this.direct?.synced && this.publisher && now - this.lastVerify >= (this.options.verifyEveryMs ?? VERIFY_EVERY_MS)) {
      this.lastVerify = now;
      const repaired = await this.publisher.verify(this.entries);
      if (repaired > 0) this.options.log.warn({ shards: repaired }, 'node-list shards were missing or changed by someone else: rewritten');
    }
    if (this.announced === undefined && this.direct?.synced) await this.publish();
  }

  /** Coalesces bursts of node changes into one publication (quiet for 2 s, at most 10 s late). */
  private schedulePublish(): void {
    const now = this.options.clock.now();
    this.firstChangeAt ??= now;
    if (this.publishTimer !== undefined) this.options.clock.clearTimer(this.publishTimer);
    const due = Math.min(now + PUBLISH_QUIET_MS, this.firstChangeAt + PUBLISH_MAX_DELAY_MS);
    this.publishTimer = this.options.clock.setTimer(() => {
      this.publishTimer = undefined;
      this.firstChangeAt = undefined;
      void this.publish().catch((err: unknown) =>
        this.options.warnings.warn('node-list-publish', { err: String((err as Error).message).slice(0, 300) }, 'could not publish the node list; retrying'),
      );
    }, due - now);
  }

  private async publish(): Promise<void> {
    if (!this.lease?.isLeader || !this.publisher) return;
    const announcement = await this.publisher.publish(this.entries);
    const text = JSON.stringify(announcement);
    if (text === this.announced) return;
    if (await this.lease.renew({ [LIST_ANNOTATION]: text })) {
      this.announced = text;
      this.lastRenewOk = this.options.clock.now();
      this.options.log.debug({ nodes: announcement.nodes }, 'published the node list');
    }
  }

  /** The first few agents by a hash of their name take a free lease at once, one second apart; the rest much later. */
  private turnDelayMs(): number {
    const me = this.options.published!.nodeName;
    const names = this.entries.filter((e) => e.state !== 'leaving').map((e) => e.name);
    if (names.length === 0) return this.options.random() * (this.durationMs / 2);
    const rank = [...names, me]
      .map((n) => ({ n, h: createHash('sha1').update(n).digest().readUInt32BE(0) }))
      .sort((a, b) => a.h - b.h)
      .findIndex((x) => x.n === me);
    return rank < 5 ? rank * 1000 : this.durationMs + this.options.random() * this.durationMs;
  }
}
