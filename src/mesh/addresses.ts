/** Address policy: which of a node's addresses an agent probes (MENTAT_ADDRESS_FAMILY). */
import type { AddressFamilyPolicy } from '../config.js';
import { familyOf } from '../icmp/address.js';
import type { Family, Target } from '../types.js';

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
