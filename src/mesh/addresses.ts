/** Address policy: which of a node's addresses an agent probes (MENTAT_ADDRESS_FAMILY). */
import type { AddressFamilyPolicy } from '../config.js';
import { familyOf } from '../icmp/address.js';
import { POD_ADDRESS_TYPE, type Family, type NetworkPath, type Target } from '../types.js';

export type NodeTargets = { readonly ok: true; readonly targets: Target[] } | { readonly ok: false; readonly problem: string };

/** Kubernetes caps object names at 253 characters; anything longer is not a real node. */
export const MAX_NAME_LENGTH = 253;

/**
 * Picks the addresses to probe: InternalIP first, ExternalIP as a fallback.
 * `first` takes the first usable one; `ipv4`/`ipv6` the first of that family;
 * `dual` one of each, keyed per family so both are probed.
 */
export function targetsForAddresses(
  name: string,
  addresses: ReadonlyArray<{ readonly type?: string; readonly address?: string }>,
  zone: string | undefined,
  policy: AddressFamilyPolicy,
  paths: readonly NetworkPath[] = ['node'],
): NodeTargets {
  if (name.length > MAX_NAME_LENGTH) return { ok: false, problem: `node name is ${name.length} characters long (at most ${MAX_NAME_LENGTH})` };
  const node = pathTargets(name, addresses, zone, policy, 'node');
  if (!node.ok || !paths.includes('pod')) return node;
  // A node whose agent pod is not known yet (or not running) is probed on the node network only.
  const pod = pathTargets(name, addresses, zone, policy, 'pod');
  return pod.ok ? { ok: true, targets: [...node.targets, ...pod.targets] } : node;
}

/** The node's targets on one network: its InternalIP (else ExternalIP) addresses, or its agent pod's. */
function pathTargets(
  name: string,
  addresses: ReadonlyArray<{ readonly type?: string; readonly address?: string }>,
  zone: string | undefined,
  policy: AddressFamilyPolicy,
  path: NetworkPath,
): NodeTargets {
  const usable: { address: string; family: Family }[] = [];
  for (const type of path === 'pod' ? [POD_ADDRESS_TYPE] : ['InternalIP', 'ExternalIP']) {
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
  // Node-network targets keep the keys they always had; pod-network ones are told apart by a suffix.
  const extra = { ...(zone === undefined ? {} : { zone }), ...(path === 'pod' ? { path } : {}) };
  const base = path === 'pod' ? `${name}/pod` : name;
  switch (policy) {
    case 'first':
      return { ok: true, targets: [{ key: base, name, ...usable[0]!, ...extra }] };
    case 'ipv4':
    case 'ipv6': {
      const found = pick(policy === 'ipv4' ? 4 : 6);
      if (!found) return { ok: false, problem: `node has no ${policy === 'ipv4' ? 'IPv4' : 'IPv6'} address` };
      return { ok: true, targets: [{ key: base, name, ...found, ...extra }] };
    }
    case 'dual': {
      const targets: Target[] = [];
      for (const family of [4, 6] as const) {
        const found = pick(family);
        if (found) targets.push({ key: `${base}/ipv${family}`, name, ...found, ...extra });
      }
      return { ok: true, targets };
    }
  }
}
