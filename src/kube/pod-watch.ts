/**
 * The agents' own pod addresses, for the pod path: the controller's leader watches the DaemonSet's
 * Pods in mentat's namespace (one label-selected watch, O(N) for the whole cluster) and publishes
 * each node's agent pod IPs in the node list, so no agent ever watches Pods.
 */
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { canonicalAddress, familyOf } from '../icmp/address.js';
import type { Log, RateLimitedLog } from '../log.js';
import { POD_ADDRESS_TYPE, type NodeEntry } from '../types.js';
import { PODS, statusCodeOf } from './api.js';
import type { KubeClient } from './client.js';
import { CachedInformer } from './informer.js';
import { MAX_ADDRESSES } from './node.js';

/** The agent DaemonSet's pods (deploy/base/daemonset.yaml). */
export const AGENT_POD_SELECTOR = 'app.kubernetes.io/name=mentat,app.kubernetes.io/component=agent';
const PAGE_SIZE = 500;
const LIST_TIMEOUT_MS = 30_000;

/** What the controller keeps of a Pod: a few hundred bytes where a real one is kilobytes. */
export function trimPod(pod: V1Pod): V1Pod {
  const { name, namespace, resourceVersion, creationTimestamp, deletionTimestamp } = pod.metadata ?? {};
  const ips = (pod.status?.podIPs ?? []).slice(0, 2).flatMap((p) => (typeof p?.ip === 'string' && p.ip !== '' ? [{ ip: p.ip.slice(0, 64) }] : []));
  return {
    metadata: { name, namespace, resourceVersion, creationTimestamp, ...(deletionTimestamp ? { deletionTimestamp } : {}) },
    spec: {
      nodeName: typeof pod.spec?.nodeName === 'string' ? pod.spec.nodeName.slice(0, 253) : undefined,
      hostNetwork: pod.spec?.hostNetwork === true,
      containers: [],
    },
    status: { phase: pod.status?.phase, podIPs: ips },
  } as V1Pod;
}

/**
 * Each node's agent pod addresses: running pods only, not being deleted, not in the host network
 * (their IPs are the node's). Of two pods on one node (a rolling update), the newer wins.
 */
export function podAddressesByNode(pods: Iterable<V1Pod>): Map<string, string[]> {
  const newest = new Map<string, { at: number; ips: string[] }>();
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    if (typeof node !== 'string' || node === '' || pod.metadata?.deletionTimestamp || pod.spec?.hostNetwork || pod.status?.phase !== 'Running') continue;
    // What is not an IP address is no pod path (the API server validates podIPs; this list is still untrusted).
    const ips = (pod.status.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => typeof ip === 'string' && familyOf(ip) !== undefined);
    if (ips.length === 0) continue;
    const at = new Date(pod.metadata?.creationTimestamp ?? 0).getTime() || 0;
    const known = newest.get(node);
    if (!known || at >= known.at) newest.set(node, { at, ips });
  }
  return new Map([...newest].map(([node, { ips }]) => [node, ips]));
}

/** The entries with each node's agent pod addresses added (type POD_ADDRESS_TYPE), where they are not the node's own. */
export function withPodAddresses(entries: readonly NodeEntry[], byNode: ReadonlyMap<string, readonly string[]>): NodeEntry[] {
  return entries.map((entry) => {
    const ips = byNode.get(entry.name);
    if (!ips) return entry;
    const own = new Set(entry.addresses.map((a) => canonicalAddress(a.address)));
    const room = MAX_ADDRESSES - entry.addresses.length;
    const added = ips.filter((ip) => !own.has(canonicalAddress(ip))).slice(0, Math.max(0, room));
    return added.length === 0 ? entry : { ...entry, addresses: [...entry.addresses, ...added.map((address) => ({ type: POD_ADDRESS_TYPE, address }))] };
  });
}

export interface PodWatchOptions {
  readonly client: KubeClient;
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** Each node's agent pod addresses, after each batch of changes. */
  readonly onPods: (byNode: Map<string, string[]>) => void;
  readonly log: Log;
  readonly warnings: RateLimitedLog;
  readonly delay: (ms: number) => Promise<void>;
  readonly minBackoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
}

/** One informer over the agent pods; on errors it keeps the last addresses and retries with a backoff. */
export class PodWatch {
  private readonly informer: CachedInformer<V1Pod, V1Pod>;

  constructor(private readonly options: PodWatchOptions) {
    this.informer = new CachedInformer<V1Pod, V1Pod>({
      client: options.client,
      kubeConfig: options.kubeConfig,
      collection: PODS(options.namespace),
      labelSelector: AGENT_POD_SELECTOR,
      pageSize: PAGE_SIZE,
      listTimeoutMs: LIST_TIMEOUT_MS,
      trim: trimPod,
      toCached: (pod) => pod,
      onChange: (pods) => options.onPods(podAddressesByNode(pods)),
      onError: (err, retryInMs) => this.report(err, retryInMs),
      delay: options.delay,
      minBackoffMs: options.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
    });
  }

  start(): void {
    this.informer.start();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  private report(err: unknown, retryInMs: number): void {
    const status = statusCodeOf(err);
    const message =
      status === 403
        ? `the API server refused to list or watch the agent pods in ${this.options.namespace} (403 Forbidden): grant mentat-controller get, list and watch on "pods" there (see deploy/base/rbac.yaml); the node network is still published, the pod network is not probed`
        : `could not list or watch the agent pods in ${this.options.namespace} (${String((err as Error | undefined)?.message ?? err)
            .split('\n')[0]!
            .slice(0, 200)}); retrying, with the last known pod addresses`;
    this.options.warnings.warn('pod-watch', { retryInMs }, message);
  }
}
