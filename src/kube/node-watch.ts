import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import type { Log, RateLimitedLog } from '../log.js';
import { NODES, statusCodeOf } from './api.js';
import { CachedInformer } from './informer.js';
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
  private readonly informer: CachedInformer<V1Node, NodeEntry>;
  private lastError: string | undefined;
  private failedSinceList = false;
  /** True once a full node list has been received. */
  synced = false;

  constructor(private readonly options: NodeWatchOptions) {
    this.informer = new CachedInformer<V1Node, NodeEntry>({
      client: options.client,
      kubeConfig: options.kubeConfig,
      collection: NODES,
      // A kubelet-sized Node is about 10 KB of JSON and several times that once parsed, so pages of
      // 500 nodes (what most clients use) broke the 64 MiB heap at 5000 nodes; pages of 100 keep the
      // peak near 10 MiB (bench/pod-memory.sh).
      pageSize: options.pageSize ?? DEFAULT_PAGE_SIZE,
      listTimeoutMs: LIST_TIMEOUT_MS,
      trim: trimNode,
      toCached: (node) => {
        const entry = entryOf(node);
        if (!entry) this.options.warnings.warn('node:<unnamed>', { problem: 'node has no name' }, 'skipping a node that cannot be probed');
        return entry;
      },
      same: sameEntry,
      onChange: options.onEntries,
      onListed: (count) => this.listed(count),
      onHealthy: () => {
        this.lastError = undefined;
      },
      onError: (err, retryInMs) => this.report(err, retryInMs),
      delay: options.delay,
      minBackoffMs: options.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
    });
  }

  get server(): string {
    return this.options.kubeConfig.getCurrentCluster()?.server ?? '(no cluster)';
  }

  start(): void {
    this.informer.start();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  private listed(count: number): void {
    if (!this.synced || this.failedSinceList) {
      this.options.log.info({ nodes: count, server: this.server }, this.synced ? 'node list resynced' : 'node list synced');
    }
    this.failedSinceList = false;
    this.synced = true;
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
