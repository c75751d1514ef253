import type { V1Node } from '@kubernetes/client-node';
import type { AddressFamilyPolicy } from '../config.js';
import { canonicalAddress } from '../icmp/address.js';
import type { Target } from '../types.js';
import { targetsForNode, ZONE_LABEL, zoneOf, type NodeLike } from './targets.js';

/** The node set as targets: pure bookkeeping, fed by informer events. */
export class NodeTable {
  private readonly byNode = new Map<string, Target[]>();
  private readonly problems = new Map<string, string>();
  /** This node's zone, read from its own Node object. */
  selfZone: string | undefined;

  constructor(
    private readonly policy: AddressFamilyPolicy,
    /** This node's name: skipped unless `probeSelf`. */
    private readonly self: string,
    private readonly probeSelf: boolean,
    /** This host's addresses, canonical: a node claiming one of them is this agent, whatever its name. */
    private readonly selfAddresses: ReadonlySet<string> = new Set(),
  ) {}

  /**
   * Applies an added or changed node.
   * @returns a problem to report when the node cannot be probed (it is then dropped)
   */
  upsert(node: NodeLike): string | undefined {
    const name = node.metadata?.name;
    if (name === this.self) this.selfZone = zoneOf(node);
    const result = targetsForNode(node, this.policy);
    if (!result.ok) {
      if (typeof name === 'string') this.byNode.delete(name);
      return this.noteProblem(name ?? '<unnamed>', result.problem);
    }
    const key = node.metadata!.name!;
    if (key === this.self && !this.probeSelf) {
      this.byNode.delete(key);
      return undefined;
    }
    const foreign = result.targets.filter((t) => this.probeSelf || !this.selfAddresses.has(canonicalAddress(t.address)));
    if (foreign.length === 0) {
      this.byNode.delete(key);
      return this.noteProblem(key, `node's address ${result.targets[0]!.address} is this agent's own address`);
    }
    this.problems.delete(key);
    this.byNode.set(key, foreign);
    return undefined;
  }

  remove(name: string): void {
    this.byNode.delete(name);
    this.problems.delete(name);
  }

  get nodeCount(): number {
    return this.byNode.size;
  }

  targets(): Target[] {
    return [...this.byNode.values()].flat();
  }

  /** Reports a problem once per node until it changes, so a broken node is one warning, not one per update. */
  private noteProblem(name: string, problem: string): string | undefined {
    if (this.problems.get(name) === problem) return undefined;
    this.problems.set(name, problem);
    return problem;
  }
}

/**
 * Keeps only what discovery reads of a Node. The informer caches every object it
 * sees; real Node objects carry image lists, conditions and managed fields
 * (kilobytes each), and labels of any size. Trimmed, 5000 nodes stay small.
 */
export function trimNode(node: V1Node): V1Node {
  const zone = node.metadata?.labels?.[ZONE_LABEL];
  return {
    metadata: {
      name: node.metadata?.name,
      resourceVersion: node.metadata?.resourceVersion,
      ...(typeof zone === 'string' ? { labels: { [ZONE_LABEL]: zone.slice(0, 64) } } : {}),
    },
    status: {
      addresses: (node.status?.addresses ?? []).slice(0, 16).map((a) => ({ type: String(a?.type).slice(0, 32), address: String(a?.address).slice(0, 64) })),
    },
  } as V1Node;
}
