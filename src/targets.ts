/** Targets without Kubernetes: the MENTAT_TARGETS list, or the loopback. */
import type { AddressFamilyPolicy, StaticTarget } from './config.js';
import { familyOf } from './icmp/address.js';
import type { MeshNode, Target } from './types.js';

/** Static targets keep their given names; in dual mode their key carries the family like nodes' do. */
export function staticTargets(list: readonly StaticTarget[], policy: AddressFamilyPolicy): Target[] {
  return list.map(({ name, address }) => {
    const family = familyOf(address)!; // config.ts accepted only IP addresses
    return { key: policy === 'dual' ? `${name}/ipv${family}` : name, name, address, family };
  });
}

/** What a newcomer without Kubernetes sees: the loopback of both families. */
export const LOOPBACK_TARGETS: readonly StaticTarget[] = [
  { name: 'localhost-ipv4', address: '127.0.0.1' },
  { name: 'localhost-ipv6', address: '::1' },
];

/** Static targets as nodes of the mesh: one node per name (two targets in dual mode). */
export function staticNodes(list: readonly StaticTarget[], policy: AddressFamilyPolicy): MeshNode[] {
  const byName = new Map<string, Target[]>();
  for (const target of staticTargets(list, policy)) byName.set(target.name, [...(byName.get(target.name) ?? []), target]);
  return [...byName].map(([name, targets]) => ({ name, state: 'active', targets }));
}
