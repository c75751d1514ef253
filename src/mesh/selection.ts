import type { Target } from '../types.js';

export interface SelectionOptions {
  /** This agent's node, which seeds its own rotation so agents do not all pick the same nodes. */
  readonly origin: string;
  readonly originZone: string | undefined;
  /** Nodes sampled in each other zone; 0 probes every node. */
  readonly perZone: number;
  /** Hard cap on probed targets; the rest are counted, never probed. */
  readonly maxTargets: number;
}

export interface Selection {
  readonly selected: Target[];
  /** Targets left out by the cap (not by sampling). */
  readonly overCap: number;
}

/** FNV-1a with murmur3's finalizer: without the final mix, names that differ only at the end keep their order across origins. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Picks what to probe, in the spirit of Pingmesh: every node of the own zone,
 * and a rotating window of `perZone` nodes of each other zone. Window `epoch`
 * moves by `perZone` each time, over an order private to this origin, so every
 * pair is covered within ceil(zoneSize / perZone) epochs. The cap keeps the own
 * zone first. A node's targets (both families) are kept or left out together.
 */
export function selectTargets(all: readonly Target[], options: SelectionOptions, epoch: number): Selection {
  const byNode = new Map<string, Target[]>();
  for (const t of all) {
    const list = byNode.get(t.name);
    if (list) list.push(t);
    else byNode.set(t.name, [t]);
  }
  const order = (name: string) => hash(`${options.origin}\u0000${name}`);
  const zones = new Map<string, string[]>();
  for (const [name, targets] of byNode) {
    const zone = targets[0]!.zone ?? '';
    const members = zones.get(zone);
    if (members) members.push(name);
    else zones.set(zone, [name]);
  }
  const chosen: string[] = [];
  const own: string[] = [];
  for (const [zone, members] of zones) {
    members.sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1));
    const sampling = options.perZone > 0 && options.originZone !== undefined && zone !== options.originZone && members.length > options.perZone;
    if (zone === options.originZone) {
      own.push(...members);
      continue;
    }
    if (!sampling) {
      chosen.push(...members);
      continue;
    }
    const start = (epoch * options.perZone) % members.length;
    for (let i = 0; i < options.perZone; i++) chosen.push(members[(start + i) % members.length]!);
  }
  const names = [...own, ...chosen];
  const selected: Target[] = [];
  let overCap = 0;
  for (const name of names) {
    const targets = byNode.get(name)!;
    if (selected.length + targets.length > options.maxTargets) {
      overCap += targets.length;
      continue;
    }
    selected.push(...targets);
  }
  return { selected, overCap };
}
