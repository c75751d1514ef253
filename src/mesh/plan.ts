/** Which of the known nodes an agent probes every interval, and which it sweeps: a pure function of the node list. */
import type { MeshConfig } from '../config.js';
import type { MeshNode, Target } from '../types.js';
import { byHash } from './hash.js';
import { peerGraph, type MeshMember, type PeerGraph } from './peers.js';

export interface PlanInput {
  /** This agent's node. */
  readonly origin: string;
  readonly nodes: readonly MeshNode[];
  readonly mesh: Pick<MeshConfig, 'mode' | 'fullMax' | 'peers' | 'sweepIntervalMs'>;
  /** Most destinations probed every interval. */
  readonly maxTargets: number;
  /** Probe the own node too. */
  readonly probeSelf: boolean;
  /** The mode of the plan before this one: `auto` returns to a full mesh only a tenth below fullMax, so a cluster at the line does not flap. */
  readonly previousMode?: 'full' | 'sampled';
}

export interface MeshPlan {
  readonly mode: 'full' | 'sampled';
  /** Nodes probed every interval. */
  readonly peers: readonly MeshNode[];
  /** Nodes probed once per sweep interval. */
  readonly sweep: readonly MeshNode[];
  /** Nodes being removed from the cluster: not probed. */
  readonly leaving: number;
  /** Nodes that MENTAT_MAX_TARGETS keeps from being probed every interval (swept instead when a sweep runs). */
  readonly overCap: number;
  /** Nodes known besides this one. */
  readonly known: number;
}

/** Peer graphs by node list and k: every origin of one list (the simulation, or agents in tests) shares one. */
const graphs = new WeakMap<readonly MeshNode[], Map<number, PeerGraph>>();

function graphOf(nodes: readonly MeshNode[], members: readonly MeshMember[], k: number): PeerGraph {
  let byK = graphs.get(nodes);
  if (!byK) graphs.set(nodes, (byK = new Map<number, PeerGraph>()));
  let graph = byK.get(k);
  if (!graph) byK.set(k, (graph = peerGraph(members, k)));
  return graph;
}

/**
 * The mesh of `origin`. Leaving nodes are out of it for everyone (so are nodes without an address),
 * the origin is in it even before its own Node arrives. `auto` is a full mesh up to `fullMax` nodes.
 */
export function planMesh(input: PlanInput): MeshPlan {
  const { origin, nodes, mesh } = input;
  const self = nodes.find((n) => n.name === origin);
  const members = nodes.filter((n) => n.state !== 'leaving' && (n.targets.length > 0 || n.name === origin));
  const leaving = nodes.filter((n) => n.state === 'leaving' && n.name !== origin).length;
  const known = nodes.filter((n) => n.name !== origin).length;
  const full = mesh.mode === 'full' || (mesh.mode === 'auto' && members.length <= fullLimit(mesh.fullMax, input.previousMode));
  const others = members.filter((n) => n.name !== origin);
  const own = input.probeSelf && self && self.state !== 'leaving' && self.targets.length > 0 ? [self] : [];
  if (self?.state === 'leaving') return { mode: full ? 'full' : 'sampled', peers: [], sweep: [], leaving, overCap: 0, known };

  let chosen: MeshNode[];
  if (full) {
    chosen = others;
  } else {
    const ring: MeshMember[] = members.map((n) => ({ name: n.name, zone: n.zone }));
    const virtual = self === undefined || !members.includes(self);
    const graph = virtual ? peerGraph([...ring, { name: origin, zone: self?.zone }], mesh.peers) : graphOf(nodes, ring, mesh.peers);
    const names = new Set(graph.get(origin) ?? []);
    chosen = others.filter((n) => names.has(n.name));
  }
  const { kept, rest } = capped([...own, ...chosen], input.maxTargets, self?.zone);
  const peerSet = new Set(kept);
  const sweep =
    mesh.sweepIntervalMs > 0
      ? byHash(
          others.filter((n) => !peerSet.has(n)),
          (n) => `${origin}\u0000${n.name}`,
        )
      : [];
  return { mode: full ? 'full' : 'sampled', peers: kept, sweep, leaving, overCap: rest.length, known };
}

/** The most members a full mesh has in auto mode: lower once sampled, so one node joining and leaving at the line changes nothing. */
function fullLimit(fullMax: number, previous: 'full' | 'sampled' | undefined): number {
  return previous === 'sampled' ? fullMax - Math.max(1, Math.floor(fullMax / 10)) : fullMax;
}

/** Keeps at most `maxTargets` addresses, the own zone first; a node's addresses stay together. */
function capped(nodes: readonly MeshNode[], maxTargets: number, zone: string | undefined): { kept: MeshNode[]; rest: MeshNode[] } {
  const ordered = [...nodes.filter((n) => n.zone === zone), ...nodes.filter((n) => n.zone !== zone)];
  const kept: MeshNode[] = [];
  const rest: MeshNode[] = [];
  let addresses = 0;
  for (const node of ordered) {
    if (addresses + node.targets.length > maxTargets) {
      rest.push(node);
      continue;
    }
    addresses += node.targets.length;
    kept.push(node);
  }
  return { kept, rest };
}

/** The addresses of some nodes. */
export function targetsOf(nodes: readonly MeshNode[]): Target[] {
  return nodes.flatMap((n) => n.targets);
}
