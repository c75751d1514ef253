/**
 * Where an agent's node list comes from. Agents write nothing. Published (the default in a pod):
 * the list the controller writes (list-reader.ts). Direct: the agent watches Nodes itself, and
 * receives every kubelet status update of every node (O(N²) bytes cluster-wide). Fallback: with no
 * live writer for a while, agents watch Nodes themselves, and go back to the published list as soon
 * as a live writer is seen again. The last known nodes are kept through every change of source, and
 * whatever the source, the list is bounded (node.ts boundList) before the mesh sees it.
 */
import type { MeshNode, NodeEntry } from '../types.js';
import type { NodeTable } from '../mesh/node-table.js';
import { ObjectClient } from './api.js';
import { ListReader, type ListReaderOptions } from './list-reader.js';
import { boundList, describeProblems } from './node.js';
import { NodeWatch, type NodeWatchOptions } from './node-watch.js';

export type NodeSourceMode = 'published' | 'direct' | 'fallback';
export const NODE_SOURCE_MODES: readonly NodeSourceMode[] = ['published', 'direct', 'fallback'];

export interface PublishedListSettings {
  /** mentat's namespace: the index and the shards live there. */
  readonly namespace: string;
  /** The writer's refresh period assumed until its index names one (a third of the lease duration). */
  readonly defaultRefreshS: number;
}

export interface NodeSourceOptions
  extends Pick<NodeWatchOptions, 'client' | 'kubeConfig' | 'log' | 'warnings' | 'delay'>, Pick<ListReaderOptions, 'clock' | 'random'> {
  readonly table: NodeTable;
  readonly onNodes: (nodes: MeshNode[]) => void;
  /** Named in permission errors. */
  readonly serviceAccount?: string;
  /** Absent: watch Nodes directly, always. */
  readonly published?: PublishedListSettings;
  /** Node watch settings for tests (page size, backoff). */
  readonly watch?: Pick<NodeWatchOptions, 'pageSize' | 'minBackoffMs' | 'maxBackoffMs'>;
}

/** Requests of our own (index, shards) are bounded like client-node's. */
const REQUEST_TIMEOUT_MS = 10_000;
const CHECK_EVERY_MS = 1000;
const MAX_NAMED_PROBLEMS = 10;

export class NodeSource {
  private direct: NodeWatch | undefined;
  private reader: ListReader | undefined;
  private timer: unknown;
  private fallbackAt: number | undefined;
  private stopped = false;
  private lastProblems: string | undefined;
  /** Where the list comes from now. */
  mode: NodeSourceMode;
  /** True once a node list (direct or published) has been applied. */
  synced = false;

  constructor(private readonly options: NodeSourceOptions) {
    this.mode = options.published ? 'published' : 'direct';
  }

  /** Shards this agent brought up to date from the index's deltas (a change that cost it no GET). */
  get deltasApplied(): number {
    return this.reader?.deltasApplied ?? 0;
  }

  get server(): string {
    return this.options.kubeConfig.getCurrentCluster()?.server ?? '(no cluster)';
  }

  start(): void {
    const published = this.options.published;
    if (!published) {
      this.startDirect();
      return;
    }
    const { client, kubeConfig, clock, random, delay, log, warnings, serviceAccount } = this.options;
    this.reader = new ListReader({
      client,
      kubeConfig,
      objects: new ObjectClient(client, kubeConfig, REQUEST_TIMEOUT_MS),
      namespace: published.namespace,
      defaultRefreshS: published.defaultRefreshS,
      clock,
      random,
      delay,
      log,
      warnings,
      serviceAccount,
      onList: (entries) => this.onPublished(entries),
    });
    this.reader.start();
    this.check();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.options.clock.clearTimer(this.timer);
    await this.reader?.stop();
    await this.direct?.stop();
  }

  /** Applies a node list, whichever source it came from. */
  private apply(entries: NodeEntry[]): void {
    if (this.stopped) return;
    const { entries: bounded, problems } = boundList(entries);
    const described = describeProblems(problems);
    if (described !== undefined && described !== this.lastProblems) this.options.log.warn({ source: this.mode }, `node list: ${described}`);
    this.lastProblems = described;
    const unprobed = this.options.table.setEntries(bounded);
    // A few are named one by one; a list full of them (forged, or broken) is one line, not thousands.
    for (const { name, problem } of unprobed.slice(0, MAX_NAMED_PROBLEMS)) {
      this.options.warnings.warn(`node:${name.slice(0, 64)}`, { node: name.slice(0, 253), problem }, 'skipping a node that cannot be probed');
    }
    if (unprobed.length > MAX_NAMED_PROBLEMS) {
      this.options.warnings.warn('node:more', { nodes: unprobed.length - MAX_NAMED_PROBLEMS }, 'skipping more nodes that cannot be probed');
    }
    this.synced = true;
    this.options.onNodes(this.options.table.nodes());
  }

  private onPublished(entries: NodeEntry[]): void {
    if (this.mode === 'fallback') void this.leaveFallback();
    this.apply(entries);
  }

  /** Once a second: no live writer for STALE_REFRESHES refresh periods means watching Nodes, spread over a refresh period. */
  private check(): void {
    if (this.stopped) return;
    this.timer = this.options.clock.setTimer(() => this.check(), CHECK_EVERY_MS);
    const reader = this.reader!;
    if (this.mode === 'fallback') {
      if (reader.current) void this.leaveFallback(reader.entries);
      return;
    }
    if (reader.staleForMs() === 0) {
      this.fallbackAt = undefined;
      return;
    }
    const now = this.options.clock.now();
    this.fallbackAt ??= now + this.options.random() * this.options.published!.defaultRefreshS * 1000;
    if (now < this.fallbackAt) return;
    this.options.log.warn(
      { staleForMs: Math.round(reader.staleForMs()) },
      'no live writer of the node list (the mentat-controller Deployment): watching Nodes directly until one is back',
    );
    this.mode = 'fallback';
    this.startDirect();
  }

  private async leaveFallback(entries?: NodeEntry[]): Promise<void> {
    this.mode = 'published';
    this.fallbackAt = undefined;
    const direct = this.direct;
    this.direct = undefined;
    this.options.log.info({}, 'the node list is published again: no longer watching Nodes directly');
    if (entries) this.apply(entries);
    await direct?.stop();
  }

  private startDirect(): void {
    if (this.direct) return;
    const { client, kubeConfig, log, warnings, delay, serviceAccount } = this.options;
    const direct = new NodeWatch({
      client,
      kubeConfig,
      onEntries: (entries) => {
        if (this.direct === direct) this.apply(entries);
      },
      log,
      warnings,
      delay,
      ...(serviceAccount ? { serviceAccount } : {}),
      ...this.options.watch,
    });
    this.direct = direct;
    direct.start();
  }
}
