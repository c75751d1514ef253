import type { V1Node } from '@kubernetes/client-node';
import type { AddressFamilyPolicy } from '../config.js';
import { canonicalAddress } from '../icmp/address.js';
import type { MeshNode, Target } from '../types.js';
import { entryOf, type NodeEntry } from './node-entry.js';
import { LEAVING_TAINTS, targetsForAddresses, ZONE_LABEL, type NodeLike } from './targets.js';

/** A node that cannot be probed, and why: reported once until it changes. */
export interface NodeProblem {
  readonly name: string;
  readonly problem: string;
}

/** The node set as the mesh sees it, from node entries: pure bookkeeping. */
export class NodeTable {
  private byNode = new Map<string, MeshNode>();
  private readonly problems = new Map<string, string>();

  constructor(
    private readonly policy: AddressFamilyPolicy,
    /** This node's name: kept for its zone and state, probed only with `probeSelf`. */
    private readonly self: string,
    private readonly probeSelf: boolean,
    /** This host's addresses, canonical: a node claiming one of them is this agent, whatever its name. */
    private readonly selfAddresses: ReadonlySet<string> = new Set(),
  ) {}

  /** This node's zone, read from its own Node object. */
  get selfZone(): string | undefined {
    return this.byNode.get(this.self)?.zone;
  }

  /** Replaces the whole set; returns the problems not reported before. */
  setEntries(entries: readonly NodeEntry[]): NodeProblem[] {
    // A node that is gone is news again if it comes back broken.
    const names = new Set(entries.map((e) => e.name));
    for (const name of this.problems.keys()) if (!names.has(name)) this.problems.delete(name);
    const reported: NodeProblem[] = [];
    const next = new Map<string, MeshNode>();
    for (const entry of entries) {
      const problem = this.apply(next, entry);
      if (problem) reported.push({ name: entry.name, problem });
    }
    this.byNode = next;
    return reported;
  }

  /**
   * Applies an added or changed node.
   * @returns a problem to report when the node cannot be probed (it is then dropped)
   */
  upsert(node: NodeLike): string | undefined {
    const entry = entryOf(node);
    if (!entry) return this.noteProblem('<unnamed>', 'node has no name');
    return this.apply(this.byNode, entry);
  }

  remove(name: string): void {
    this.byNode.delete(name);
    this.problems.delete(name);
  }

  /** Nodes with something to probe. */
  get nodeCount(): number {
    let count = 0;
    for (const node of this.byNode.values()) if (node.targets.length > 0) count++;
    return count;
  }

  /** Every node known, the own one included (with no targets unless probeSelf). */
  nodes(): MeshNode[] {
    return [...this.byNode.values()];
  }

  targets(): Target[] {
    return this.nodes().flatMap((n) => n.targets);
  }

  private apply(into: Map<string, MeshNode>, entry: NodeEntry): string | undefined {
    const result = targetsForAddresses(entry.name, entry.addresses, entry.zone, this.policy);
    if (entry.name === this.self) {
      into.set(entry.name, meshNode(entry, this.probeSelf && result.ok ? result.targets : []));
      return undefined;
    }
    if (!result.ok) {
      into.delete(entry.name);
      return this.noteProblem(entry.name, result.problem);
    }
    const foreign = result.targets.filter((t) => this.probeSelf || !this.selfAddresses.has(canonicalAddress(t.address)));
    if (foreign.length === 0) {
      into.delete(entry.name);
      return this.noteProblem(entry.name, `node's address ${result.targets[0]!.address} is this agent's own address`);
    }
    this.problems.delete(entry.name);
    into.set(entry.name, meshNode(entry, foreign));
    return undefined;
  }

  /** Reports a problem once per node until it changes, so a broken node is one warning, not one per update. */
  private noteProblem(name: string, problem: string): string | undefined {
    if (this.problems.get(name) === problem) return undefined;
    this.problems.set(name, problem);
    return problem;
  }
}

function meshNode(entry: NodeEntry, targets: readonly Target[]): MeshNode {
  return {
    name: entry.name,
    state: entry.state,
    targets,
    ...(entry.zone === undefined ? {} : { zone: entry.zone }),
    ...(entry.createdAtS === undefined ? {} : { createdAtMs: entry.createdAtS * 1000 }),
  };
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
