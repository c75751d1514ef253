import type { AddressFamilyPolicy } from '../config.js';
import { familyOf } from '../icmp/address.js';
import type { Family, NodeState, Target } from '../types.js';

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

export type NodeTargets = { readonly ok: true; readonly targets: Target[] } | { readonly ok: false; readonly problem: string };

/** Kubernetes caps object names at 253 characters; anything longer is not a real node. */
const MAX_NAME_LENGTH = 253;
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
/** Label values are at most 63 characters in Kubernetes; a longer "zone" is not one. */
const MAX_ZONE_LENGTH = 63;

/** The node's zone label, when it has a plausible one. */
export function zoneOf(node: NodeLike): string | undefined {
  const zone = node.metadata?.labels?.[ZONE_LABEL];
  return typeof zone === 'string' && zone !== '' && zone.length <= MAX_ZONE_LENGTH ? zone : undefined;
}

/**
 * Picks the addresses to probe: InternalIP first, ExternalIP as a fallback.
 * `first` takes the first usable one; `ipv4`/`ipv6` the first of that family;
 * `dual` one of each, keyed per family so both are probed.
 */
export function targetsForNode(node: NodeLike, policy: AddressFamilyPolicy): NodeTargets {
  const name = node.metadata?.name;
  if (typeof name !== 'string' || name === '') return { ok: false, problem: 'node has no name' };
  const zone = zoneOf(node);
  return targetsForAddresses(name, node.status?.addresses ?? [], zone, policy);
}

/** The same, for a node known by its name, addresses and zone (a NodeEntry). */
export function targetsForAddresses(
  name: string,
  addresses: ReadonlyArray<{ readonly type?: string; readonly address?: string }>,
  zone: string | undefined,
  policy: AddressFamilyPolicy,
): NodeTargets {
  if (name.length > MAX_NAME_LENGTH) return { ok: false, problem: `node name is ${name.length} characters long (at most ${MAX_NAME_LENGTH})` };
  const usable: { address: string; family: Family }[] = [];
  for (const type of ['InternalIP', 'ExternalIP']) {
    for (const entry of addresses) {
      if (entry?.type !== type || typeof entry.address !== 'string') continue;
      const family = familyOf(entry.address);
      if (family !== undefined) usable.push({ address: entry.address, family });
    }
  }
  if (usable.length === 0) {
    return { ok: false, problem: addresses.length === 0 ? 'node has no addresses' : 'node has no InternalIP or ExternalIP that is a valid IP address' };
  }
  const pick = (family: Family) => usable.find((u) => u.family === family);
  const extra = zone === undefined ? {} : { zone };
  switch (policy) {
    case 'first':
      return { ok: true, targets: [{ key: name, name, ...usable[0]!, ...extra }] };
    case 'ipv4':
    case 'ipv6': {
      const found = pick(policy === 'ipv4' ? 4 : 6);
      if (!found) return { ok: false, problem: `node has no ${policy === 'ipv4' ? 'IPv4' : 'IPv6'} address` };
      return { ok: true, targets: [{ key: name, name, ...found, ...extra }] };
    }
    case 'dual': {
      const targets: Target[] = [];
      for (const family of [4, 6] as const) {
        const found = pick(family);
        if (found) targets.push({ key: `${name}/ipv${family}`, name, ...found, ...extra });
      }
      return { ok: true, targets };
    }
  }
}
