/**
 * Everything mentat reads of a Node, in one place: its entry (name, addresses, zone, state,
 * creation time: ~100 bytes where a kubelet-sized Node is ~10 KB of JSON), the trimmed object the
 * informer caches, and the bounds that keep a hostile or broken Node from costing more than a real one.
 */
import type { V1Node } from '@kubernetes/client-node';
import { canonicalAddress, isRemoteUnicast } from '../icmp/address.js';
import { POD_ADDRESS_TYPE, type NodeEntry, type NodeState } from '../types.js';

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
export const MAX_ZONE_LENGTH = 63;

/** The node's zone label, when it has a plausible one. */
export function zoneOf(node: NodeLike): string | undefined {
  const zone = node.metadata?.labels?.[ZONE_LABEL];
  return typeof zone === 'string' && zone !== '' && zone.length <= MAX_ZONE_LENGTH ? zone : undefined;
}

/** Bounds against a hostile or broken object: far above what any real Node carries. */
export const MAX_ADDRESSES = 16;
/** Kubernetes names are at most 253 characters; longer ones are kept (bounded) so the problem can name their length. */
const MAX_NAME = 1024;

/** The entry of a Node; undefined without a name (such a node is reported as broken). */
export function entryOf(node: NodeLike): NodeEntry | undefined {
  const name = node.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  const addresses = (node.status?.addresses ?? [])
    // A Node cannot speak for a pod: that type is the controller's, from the DaemonSet's Pods.
    .filter((a) => typeof a?.type === 'string' && typeof a.address === 'string' && a.type !== POD_ADDRESS_TYPE)
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

/**
 * Bounds on a node list, whoever wrote it: sized for 100 000 nodes (EKS's limit) with a tenth to
 * spare. Past them a list costs an agent more than any real cluster would, so the rest is dropped.
 */
export const LIST_BOUNDS = {
  maxNodes: 110_000,
  /** Zone repair in the mesh grows with the square of the zones; real clusters have a handful. */
  maxZones: 64,
} as const;

/** Kubernetes node names are DNS subdomains (RFC 1123): at most 253 characters. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes label values, as a zone must be. */
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const PROBED_TYPES = new Set(['InternalIP', 'ExternalIP', POD_ADDRESS_TYPE]);

/** What a list had that was dropped, by kind, for one warning per list. */
export type ListProblems = Partial<Record<'names' | 'zones' | 'addresses' | 'sharedAddresses' | 'overZones' | 'overNodes', number>>;

/**
 * One node list as an agent may use it, whichever source it came from (a Node watch or the
 * published list, which anyone with write access to a ConfigMap could have forged): DNS names of at
 * most 253 characters, zones that are label values, at most 16 addresses of which the probed ones
 * are remote unicast addresses, at most one node per address (the first by name keeps it), at most
 * LIST_BOUNDS.maxZones zones (the most common keep theirs) and LIST_BOUNDS.maxNodes nodes. O(n log n).
 */
export function boundList(entries: readonly NodeEntry[]): { entries: NodeEntry[]; problems: ListProblems } {
  const problems: ListProblems = {};
  const count = (kind: keyof ListProblems, n = 1) => (problems[kind] = (problems[kind] ?? 0) + n);
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (sorted.length > LIST_BOUNDS.maxNodes) count('overNodes', sorted.length - LIST_BOUNDS.maxNodes);
  const owner = new Map<string, string>();
  const names = new Set<string>();
  const kept: NodeEntry[] = [];
  for (const entry of sorted.slice(0, LIST_BOUNDS.maxNodes)) {
    if (entry.name.length > 253 || !DNS_SUBDOMAIN.test(entry.name) || names.has(entry.name)) {
      count('names');
      continue;
    }
    names.add(entry.name);
    let zone = entry.zone;
    if (zone !== undefined && (zone.length > MAX_ZONE_LENGTH || !LABEL_VALUE.test(zone))) {
      count('zones');
      zone = undefined;
    }
    const addresses: Array<{ type: string; address: string }> = [];
    for (const a of entry.addresses.slice(0, MAX_ADDRESSES)) {
      if (!PROBED_TYPES.has(a.type)) {
        addresses.push(a);
        continue;
      }
      if (!isRemoteUnicast(a.address)) {
        count('addresses');
        continue;
      }
      const key = canonicalAddress(a.address);
      const claimed = owner.get(key);
      if (claimed !== undefined && claimed !== entry.name) {
        count('sharedAddresses');
        continue;
      }
      owner.set(key, entry.name);
      addresses.push(a);
    }
    if (entry.addresses.length > MAX_ADDRESSES) count('addresses', entry.addresses.length - MAX_ADDRESSES);
    const bounded = { ...entry, addresses };
    kept.push(zone === undefined ? withoutZone(bounded) : { ...bounded, zone });
  }
  const zoneCounts = new Map<string, number>();
  for (const e of kept) if (e.zone !== undefined) zoneCounts.set(e.zone, (zoneCounts.get(e.zone) ?? 0) + 1);
  if (zoneCounts.size > LIST_BOUNDS.maxZones) {
    const allowed = new Set(
      [...zoneCounts]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
        .slice(0, LIST_BOUNDS.maxZones)
        .map(([z]) => z),
    );
    count('overZones', zoneCounts.size - LIST_BOUNDS.maxZones);
    for (const [i, e] of kept.entries()) if (e.zone !== undefined && !allowed.has(e.zone)) kept[i] = withoutZone(e);
  }
  return { entries: kept, problems };
}

function withoutZone(entry: NodeEntry): NodeEntry {
  const { zone: _zone, ...rest } = entry;
  return rest;
}

/** The problems of a list in one line, for one warning per list rather than one per node. */
export function describeProblems(problems: ListProblems): string | undefined {
  const words: Record<keyof ListProblems, string> = {
    names: 'entries without a valid node name (a DNS name of at most 253 characters), or named twice',
    zones: 'zones that are not label values of at most 63 characters',
    addresses: 'addresses that are not remote unicast (loopback, link-local, multicast, unspecified), or past the 16th',
    sharedAddresses: 'addresses another node already has',
    overZones: `zones past the ${LIST_BOUNDS.maxZones} most common (their nodes count as zone "unknown")`,
    overNodes: `nodes past the first ${LIST_BOUNDS.maxNodes}`,
  };
  const parts = (Object.keys(words) as Array<keyof ListProblems>).filter((k) => problems[k]).map((k) => `${problems[k]} ${words[k]}`);
  return parts.length > 0 ? `dropped ${parts.join('; ')}` : undefined;
}
