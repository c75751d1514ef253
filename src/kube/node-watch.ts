import type { KubeConfig, ListWatch, V1Node, V1NodeList } from '@kubernetes/client-node';
import type { Log, RateLimitedLog } from '../log.js';
import { NODES, PagedLister, statusCodeOf } from './api.js';
import { listTrimmed, RestartingInformer, trimmingWatch } from './informer.js';
import type { KubeClient } from './client.js';
import type { NodeEntry } from '../types.js';
import { entryOf, sameEntry, trimNode } from './node.js';

const DEFAULT_PAGE_SIZE = 100;
/** A list page that takes longer than this is abandoned and retried with the backoff. */
const LIST_TIMEOUT_MS = 30_000;

/** Why the API server said no, in words that say what to fix. */
export function explainApiError(err: unknown, server: string, serviceAccount: string): string {
  const e = err as { message?: string; cause?: { message?: string; code?: string } } | undefined;
  const status = statusCodeOf(err);
  if (status === 401) {
    return `the API server at ${server} rejected the credentials (401 Unauthorized): check the service account token or the kubeconfig user`;
  }
  if (status === 403) {
    return `the API server at ${server} refused to list or watch nodes (403 Forbidden): grant ${serviceAccount} get, list and watch on "nodes" with a ClusterRole and ClusterRoleBinding (see deploy/base/rbac.yaml)`;
  }
  const detail = e?.cause?.message ?? e?.cause?.code ?? String(e?.message ?? err).split('\n')[0];
  if (status !== undefined) return `the API server at ${server} answered ${status} (${detail}); retrying`;
  return `cannot reach the API server at ${server} (${detail}); retrying, and probing the last known nodes meanwhile`;
}

export interface NodeWatchOptions {
  readonly client: KubeClient;
  readonly kubeConfig: KubeConfig;
  /** Every node's entry, after each batch of changes. */
  readonly onEntries: (entries: NodeEntry[]) => void;
  readonly log: Log;
  readonly warnings: RateLimitedLog;
  /** Waits between restarts after errors; injected so backoff is tested without waiting. */
  readonly delay: (ms: number) => Promise<void>;
  /** Nodes per list request (default DEFAULT_PAGE_SIZE). */
  readonly pageSize?: number;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Named in permission errors. */
  readonly serviceAccount?: string;
}

/**
 * Keeps the node set current with one informer (list, then watch; never a
 * periodic re-list). On errors the informer stops; this restarts it with a
 * capped exponential backoff and keeps the last known nodes meanwhile.
 */
export class NodeWatch {
  private readonly runner: RestartingInformer<V1Node>;
  private readonly lister: PagedLister<V1Node>;
  private stopped = false;
  private emitScheduled = false;
  private lastError: string | undefined;
  private failedSinceList = false;
  /** True once a full node list has been received. */
  synced = false;
  private readonly entries = new Map<string, NodeEntry>();

  constructor(private readonly options: NodeWatchOptions) {
    this.lister = new PagedLister<V1Node>(options.client, options.kubeConfig, LIST_TIMEOUT_MS, NODES);
    const watch = trimmingWatch(options.client, options.kubeConfig, trimNode, () => this.onHealthy());
    const informer: ListWatch<V1Node> = new options.client.ListWatch<V1Node>(NODES, watch, () => this.listAll(), false, undefined, undefined, {
      delayFn: options.delay,
    });
    informer.on('add', (node) => this.apply(node));
    informer.on('update', (node) => this.apply(node));
    informer.on('delete', (node) => {
      if (node.metadata?.name) this.entries.delete(node.metadata.name);
      this.scheduleEmit();
    });
    this.runner = new RestartingInformer(informer, {
      delay: options.delay,
      minBackoffMs: options.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
      onError: (err, retryInMs) => this.report(err, retryInMs),
    });
  }

  get server(): string {
    return this.options.kubeConfig.getCurrentCluster()?.server ?? '(no cluster)';
  }

  start(): void {
    this.stopped = false;
    this.runner.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.runner.stop();
  }

  /**
   * Pages through the node list, trimming each page before the next: a kubelet-sized Node is about
   * 10 KB of JSON and several times that once parsed, so pages of 500 nodes (what most clients use)
   * broke the 64 MiB heap at 5000 nodes; pages of 100 keep the peak near 10 MiB (bench/pod-memory.sh).
   */
  private async listAll(): Promise<V1NodeList> {
    const { metadata, items } = await listTrimmed(this.lister, this.options.pageSize ?? DEFAULT_PAGE_SIZE, trimNode);
    if (!this.synced || this.failedSinceList) {
      this.options.log.info({ nodes: items.length, server: this.server }, this.synced ? 'node list resynced' : 'node list synced');
    }
    this.failedSinceList = false;
    this.synced = true;
    this.onHealthy();
    this.scheduleEmit();
    return { metadata, items } as V1NodeList;
  }

  /** A list or a watch went through: the next failure is news again and starts the backoff over. */
  private onHealthy(): void {
    this.lastError = undefined;
    this.runner.healthy();
  }

  private apply(node: V1Node): void {
    const entry = entryOf(node);
    if (!entry) {
      this.options.warnings.warn('node:<unnamed>', { problem: 'node has no name' }, 'skipping a node that cannot be probed');
      return;
    }
    const known = this.entries.get(entry.name);
    if (known && sameEntry(known, entry)) return;
    this.entries.set(entry.name, entry);
    this.scheduleEmit();
  }

  /** Coalesces the thousands of events of one list into one target update. */
  private scheduleEmit(): void {
    if (this.emitScheduled) return;
    this.emitScheduled = true;
    setImmediate(() => {
      this.emitScheduled = false;
      if (!this.stopped) this.options.onEntries([...this.entries.values()]);
    });
  }

  private report(err: unknown, retryInMs: number): void {
    this.failedSinceList = true;
    const message = explainApiError(err, this.server, this.options.serviceAccount ?? 'the service account of this pod');
    // Repeating the same failure every backoff step would flood the log; say it when it changes.
    const status = statusCodeOf(err);
    const severe = status === 401 || status === 403;
    if (message !== this.lastError) {
      if (severe) this.options.log.error({ retryInMs }, message);
      else this.options.log.warn({ retryInMs }, message);
    } else this.options.log.debug({ retryInMs }, message);
    this.lastError = message;
  }
}
