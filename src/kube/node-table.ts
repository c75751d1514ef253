import type { V1Node } from '@kubernetes/client-node';
import type { AddressFamilyPolicy } from '../config.js';
import { canonicalAddress } from '../icmp/address.js';
import type { MeshNode, Target } from '../types.js';
import { createdAtOf, LEAVING_TAINTS, nodeStateOf, targetsForNode, ZONE_LABEL, zoneOf, type NodeLike } from './targets.js';

/** The node set: pure bookkeeping, fed by informer events. */
export class NodeTable {
  private readonly byNode = new Map<string, MeshNode>();
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

  /**
   * Applies an added or changed node.
   * @returns a problem to report when the node cannot be probed (it is then dropped)
   */
  upsert(node: NodeLike): string | undefined {
    const name = node.metadata?.name;
    const result = targetsForNode(node, this.policy);
    if (name === this.self) {
      this.byNode.set(name, this.meshNode(node, name, this.probeSelf && result.ok ? result.targets : []));
      return undefined;
    }
    if (!result.ok) {
      if (typeof name === 'string') this.byNode.delete(name);
      return this.noteProblem(name ?? '<unnamed>', result.problem);
    }
    const key = node.metadata!.name!;
    const foreign = result.targets.filter((t) => this.probeSelf || !this.selfAddresses.has(canonicalAddress(t.address)));
    if (foreign.length === 0) {
      this.byNode.delete(key);
      return this.noteProblem(key, `node's address ${result.targets[0]!.address} is this agent's own address`);
    }
    this.problems.delete(key);
    this.byNode.set(key, this.meshNode(node, key, foreign));
    return undefined;
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

  private meshNode(node: NodeLike, name: string, targets: readonly Target[]): MeshNode {
    const zone = zoneOf(node);
    const createdAtMs = createdAtOf(node);
    return { name, state: nodeStateOf(node), targets, ...(zone === undefined ? {} : { zone }), ...(createdAtMs === undefined ? {} : { createdAtMs }) };
  }

  /** Reports a problem once per node until it changes, so a broken node is one warning, not one per update. */
  private noteProblem(name: string, problem: string): string | undefined {
    if (this.problems.get(name) === problem) return undefined;
    this.problems.set(name, problem);
    return problem;
  }
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
