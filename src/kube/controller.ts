/**
 * The node-list controller (MENTAT_ROLE=controller, the mentat-controller Deployment): replicas
 * elect one writer through a Lease (leader-election.ts); the writer watches Nodes and publishes
 * the bounded list (list-writer.ts). Its writes go through one queue, one at a time, and each
 * asks the elector first, so a replica that lost the lease writes nothing, and a stop waits for
 * the write in flight before it gives the lease up.
 */
import type { Log, RateLimitedLog } from '../log.js';
import type { Ambient, NodeEntry } from '../types.js';
import { ObjectClient } from './api.js';
import type { KubeClient } from './client.js';
import { LeaderElector, leaseLock } from './leader-election.js';
import { ListWriter, NotLeaderError, refreshSecondsFor } from './list-writer.js';
import { ELECTION_LEASE } from './node-list.js';
import { boundList, describeProblems } from './node.js';
import { NodeWatch, type NodeWatchOptions } from './node-watch.js';
import { PodWatch, withPodAddresses } from './pod-watch.js';
import type { KubeConfig } from '@kubernetes/client-node';

/** A change of the node list is published once it has been quiet this long, and at most publishMaxDelayMs late. */
export const PUBLISH_QUIET_MS = 2000;
export const PUBLISH_MAX_DELAY_MS = 10_000;

/**
 * Every publication reaches every agent (the index, ~1 KB with its delta): under constant churn
 * (autoscalers) larger clusters publish less often, 10 s up to 50 000 nodes, 20 s at 100 000, so
 * 100 000 agents receive ~5 publications a minute, not 6.
 */
export function publishMaxDelayMs(nodes: number): number {
  return Math.max(PUBLISH_MAX_DELAY_MS, nodes / 5);
}
/** The writer checks what lies in the API server this often (deleted by hand, overwritten by someone else). */
export const VERIFY_EVERY_MS = 60_000;
const REQUEST_TIMEOUT_MS = 10_000;

export interface ControllerOptions extends Ambient {
  readonly client: KubeClient;
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** This replica in the lease (its pod name). */
  readonly identity: string;
  /** client-go's lease duration; the renew deadline is 2/3 of it, the retry period 2/15 (15 s, 10 s, 2 s). */
  readonly leaseDurationMs: number;
  readonly log: Log;
  readonly warnings: RateLimitedLog;
  readonly serviceAccount?: string | undefined;
  readonly verifyEveryMs?: number;
  /** Publish each node's agent pod addresses too (MENTAT_PATHS has pod): a watch of the agent pods. */
  readonly podAddresses?: boolean;
  /** Node watch settings for tests (page size, backoff). */
  readonly watch?: Pick<NodeWatchOptions, 'pageSize' | 'minBackoffMs' | 'maxBackoffMs'>;
}

export class NodeListController {
  private readonly elector: LeaderElector;
  private readonly writer: ListWriter;
  private watch: NodeWatch | undefined;
  private podWatch: PodWatch | undefined;
  /** The Node watch's entries, and the agent pods' addresses by node: the list is both, bounded. */
  private nodeEntries: NodeEntry[] | undefined;
  private podsByNode: ReadonlyMap<string, readonly string[]> = new Map();
  private entries: NodeEntry[] | undefined;
  private queue: Promise<void> = Promise.resolve();
  private publishTimer: unknown;
  private firstChangeAt: number | undefined;
  private heartbeat: unknown;
  private lastVerifyAt = 0;
  /** When the index was last written: a publication is a heartbeat too. */
  private lastIndexAt = -Infinity;
  private stopped = false;

  constructor(private readonly options: ControllerOptions) {
    const objects = new ObjectClient(options.client, options.kubeConfig, REQUEST_TIMEOUT_MS);
    this.elector = new LeaderElector({
      lock: leaseLock(objects, options.namespace, ELECTION_LEASE),
      identity: options.identity,
      leaseDurationMs: options.leaseDurationMs,
      renewDeadlineMs: (options.leaseDurationMs * 2) / 3,
      retryPeriodMs: (options.leaseDurationMs * 2) / 15,
      clock: options.clock,
      wallNow: options.wallNow,
      random: options.random,
      log: options.log,
      onStartedLeading: () => this.lead(),
      onStoppedLeading: () => this.follow(),
    });
    this.writer = new ListWriter({
      objects,
      namespace: options.namespace,
      isLeader: () => this.elector.isLeader,
      wallNow: options.wallNow,
      leaseDurationMs: options.leaseDurationMs,
    });
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  /** Nodes in the list this replica last published (undefined: none yet). */
  get publishedNodes(): number | undefined {
    return this.writer.published?.nodes;
  }

  start(): void {
    this.elector.run();
  }

  /** Stops publishing, waits for the write in flight, then gives the lease up. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimers();
    await Promise.all([this.watch?.stop(), this.podWatch?.stop()]);
    await this.queue;
    await this.elector.stop();
  }

  private lead(): void {
    if (this.stopped) return;
    this.lastVerifyAt = this.options.clock.now();
    const watch = new NodeWatch({
      client: this.options.client,
      kubeConfig: this.options.kubeConfig,
      onEntries: (entries) => {
        if (this.watch !== watch) return;
        this.nodeEntries = entries;
        this.update();
      },
      log: this.options.log,
      warnings: this.options.warnings,
      delay: this.options.delay,
      ...(this.options.serviceAccount ? { serviceAccount: this.options.serviceAccount } : {}),
      ...this.options.watch,
    });
    this.watch = watch;
    watch.start();
    if (this.options.podAddresses) this.watchPods();
    this.beat();
  }

  private watchPods(): void {
    const podWatch = new PodWatch({
      client: this.options.client,
      kubeConfig: this.options.kubeConfig,
      namespace: this.options.namespace,
      onPods: (byNode) => {
        if (this.podWatch !== podWatch) return;
        this.podsByNode = byNode;
        if (this.nodeEntries) this.update();
      },
      log: this.options.log,
      warnings: this.options.warnings,
      delay: this.options.delay,
      minBackoffMs: this.options.watch?.minBackoffMs,
      maxBackoffMs: this.options.watch?.maxBackoffMs,
    });
    this.podWatch = podWatch;
    podWatch.start();
  }

  /** The list from the Nodes and the agent pods, bounded as every agent bounds it, published soon. */
  private update(): void {
    const { entries: bounded, problems } = boundList(withPodAddresses(this.nodeEntries ?? [], this.podsByNode));
    const described = describeProblems(problems);
    if (described) this.options.warnings.warn('node-list-bounds', {}, `node list: ${described}`);
    this.entries = bounded;
    this.schedulePublish();
  }

  private follow(): void {
    this.clearTimers();
    const watch = this.watch;
    const podWatch = this.podWatch;
    this.watch = this.podWatch = undefined;
    this.entries = this.nodeEntries = undefined;
    this.podsByNode = new Map();
    this.writer.reset();
    void watch?.stop();
    void podWatch?.stop();
  }

  private clearTimers(): void {
    for (const timer of [this.publishTimer, this.heartbeat]) if (timer !== undefined) this.options.clock.clearTimer(timer);
    this.publishTimer = this.heartbeat = this.firstChangeAt = undefined;
  }

  /** Coalesces bursts of node changes into one publication (quiet for 2 s, at most publishMaxDelayMs late). */
  private schedulePublish(): void {
    const now = this.options.clock.now();
    this.firstChangeAt ??= now;
    if (this.publishTimer !== undefined) this.options.clock.clearTimer(this.publishTimer);
    const due = Math.min(now + PUBLISH_QUIET_MS, this.firstChangeAt + publishMaxDelayMs(this.entries?.length ?? 0));
    this.publishTimer = this.options.clock.setTimer(() => {
      this.publishTimer = this.firstChangeAt = undefined;
      const entries = this.entries;
      if (entries)
        this.enqueue('publish', async () => {
          if (await this.writer.publish(entries)) this.lastIndexAt = this.options.clock.now();
        });
    }, due - now);
  }

  /** The index's heartbeat (its refresh period grows with the list), and the check of what lies in the API server. */
  private beat(): void {
    const refreshMs = refreshSecondsFor(this.writer.published?.nodes ?? 0, this.options.leaseDurationMs) * 1000;
    this.heartbeat = this.options.clock.setTimer(() => {
      this.heartbeat = undefined;
      if (this.stopped || !this.watch) return;
      const now = this.options.clock.now();
      if (now - this.lastVerifyAt >= (this.options.verifyEveryMs ?? VERIFY_EVERY_MS)) {
        this.lastVerifyAt = now;
        this.enqueue('verify', async () => {
          const repaired = await this.writer.verify();
          this.lastIndexAt = this.options.clock.now();
          if (repaired > 0) this.options.log.warn({ objects: repaired }, 'node-list objects were missing or changed by someone else: rewritten');
        });
      } else if (now - this.lastIndexAt >= refreshMs / 2) {
        this.enqueue('refresh', async () => {
          await this.writer.refresh();
          this.lastIndexAt = this.options.clock.now();
        });
      }
      this.beat();
    }, refreshMs);
  }

  private enqueue(what: string, write: () => Promise<void>): void {
    this.queue = this.queue
      .then(() => (this.elector.isLeader ? write() : undefined))
      .catch((err: unknown) => {
        if (err instanceof NotLeaderError) this.options.log.debug({ what }, err.message);
        else
          this.options.warnings.warn(`node-list-${what}`, { err: String((err as Error).message).slice(0, 300) }, `could not ${what} the node list; retrying`);
        if (what === 'publish' && !this.stopped && this.watch) this.schedulePublish();
      });
  }
}
