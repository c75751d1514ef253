/**
 * Everything mentat reads of a Node, in one place: its entry (name, addresses, zone, state,
 * creation time: ~100 bytes where a kubelet-sized Node is ~10 KB of JSON), the trimmed object the
 * informer caches, and the bounds that keep a hostile or broken Node from costing more than a real one.
 */
import type { V1Node } from '@kubernetes/client-node';
import type { NodeEntry, NodeState } from '../types.js';

/** The part of a Kubernetes Node that decides what to probe. */
export interface NodeLike {
  readonly metadata?:
    | {
        readonly name?: string | undefined;
        readonly labels?: Readonly<Record<string, string>> | undefined;
        readonly creationTimestamp?: string | Date | undefined;
        readonly deletionTimestamp?: string | Date | undefined;
      }
    | undefined;
  readonly spec?: { readonly unschedulable?: boolean | undefined; readonly taints?: ReadonlyArray<{ readonly key?: string }> | undefined } | undefined;
  readonly status?: { readonly addresses?: ReadonlyArray<{ readonly type?: string; readonly address?: string }> | undefined } | undefined;
}

/**
 * Taints that mean "this node is being removed": the cluster autoscaler's (set before it drains and
 * deletes a node) and Karpenter's (set when it disrupts one).
 */
export const LEAVING_TAINTS: readonly string[] = ['ToBeDeletedByClusterAutoscaler', 'karpenter.sh/disrupted', 'karpenter.sh/disruption'];

/** Leaving (being deleted, or tainted for removal), cordoned, or active. */
export function nodeStateOf(node: NodeLike): NodeState {
  if (node.metadata?.deletionTimestamp) return 'leaving';
  if (node.spec?.taints?.some((t) => typeof t?.key === 'string' && LEAVING_TAINTS.includes(t.key))) return 'leaving';
  return node.spec?.unschedulable === true ? 'cordoned' : 'active';
}

/** The Node's creationTimestamp in wall-clock milliseconds, when it has a valid one. */
export function createdAtOf(node: NodeLike): number | undefined {
  const at = node.metadata?.creationTimestamp;
  const ms = at === undefined ? NaN : new Date(at).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

export const ZONE_LABEL = 'topology.kubernetes.io/zone';
/** Label values are at most 63 characters in Kubernetes; a longer "zone" is not one. */
const MAX_ZONE_LENGTH = 63;

/** The node's zone label, when it has a plausible one. */
export function zoneOf(node: NodeLike): string | undefined {
  const zone = node.metadata?.labels?.[ZONE_LABEL];
  return typeof zone === 'string' && zone !== '' && zone.length <= MAX_ZONE_LENGTH ? zone : undefined;
}

/** Bounds against a hostile or broken object: far above what any real Node carries. */
const MAX_ADDRESSES = 16;
/** Kubernetes names are at most 253 characters; longer ones are kept (bounded) so the problem can name their length. */
const MAX_NAME = 1024;

/** The entry of a Node; undefined without a name (such a node is reported as broken). */
export function entryOf(node: NodeLike): NodeEntry | undefined {
  const name = node.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  const addresses = (node.status?.addresses ?? [])
    .filter((a) => typeof a?.type === 'string' && typeof a.address === 'string')
    .slice(0, MAX_ADDRESSES)
    .map((a) => ({ type: a.type!.slice(0, 32), address: a.address!.slice(0, 64) }));
  const zone = zoneOf(node);
  const created = createdAtOf(node);
  return {
    name: name.slice(0, MAX_NAME),
    addresses,
    state: nodeStateOf(node),
    ...(zone === undefined ? {} : { zone }),
    ...(created === undefined ? {} : { createdAtS: Math.floor(created / 1000) }),
  };
}

/**
 * Whether two entries say the same. Most Node updates are kubelet status reports that change
 * nothing an agent uses: they must not cost a new mesh plan (at 5000 nodes that is ~17 a second).
 */
export function sameEntry(a: NodeEntry, b: NodeEntry): boolean {
  if (a.name !== b.name || a.zone !== b.zone || a.state !== b.state || a.createdAtS !== b.createdAtS || a.addresses.length !== b.addresses.length) return false;
  return a.addresses.every((x, i) => x.type === b.addresses[i]?.type && x.address === b.addresses[i]?.address);
}

/**
 * Keeps only what discovery reads of a Node (addresses, zone, creation and removal state). The informer caches every object it
 * sees; real Node objects carry image lists, conditions and managed fields
 * (kilobytes each), and labels of any size. Trimmed, 5000 nodes stay small.
 */
export function trimNode(node: V1Node): V1Node {
  const zone = node.metadata?.labels?.[ZONE_LABEL];
  const { creationTimestamp, deletionTimestamp } = node.metadata ?? {};
  const taints = (node.spec?.taints ?? []).filter((t) => LEAVING_TAINTS.includes(String(t?.key))).map((t) => ({ key: t.key, effect: t.effect }));
  const spec = { ...(node.spec?.unschedulable === true ? { unschedulable: true } : {}), ...(taints.length > 0 ? { taints } : {}) };
  return {
    metadata: {
      name: node.metadata?.name,
      resourceVersion: node.metadata?.resourceVersion,
      ...(typeof zone === 'string' ? { labels: { [ZONE_LABEL]: zone.slice(0, 64) } } : {}),
      ...(creationTimestamp ? { creationTimestamp } : {}),
      ...(deletionTimestamp ? { deletionTimestamp } : {}),
    },
    ...(Object.keys(spec).length > 0 ? { spec } : {}),
    status: {
      addresses: (node.status?.addresses ?? []).slice(0, 16).map((a) => ({ type: String(a?.type).slice(0, 32), address: String(a?.address).slice(0, 64) })),
    },
  } as V1Node;
}
