import type { AddressFamilyPolicy } from '../config.js';
import { canonicalAddress } from '../icmp/address.js';
import type { MeshNode, NetworkPath, NodeEntry, Target } from '../types.js';
import { targetsForAddresses } from './addresses.js';

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
    /** The networks probed: the pod network only where the list names a node's agent pod. */
    private readonly paths: readonly NetworkPath[] = ['node'],
  ) {}

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

  /** Every node known, the own one included (with no targets unless probeSelf). */
  nodes(): MeshNode[] {
    return [...this.byNode.values()];
  }

  private apply(into: Map<string, MeshNode>, entry: NodeEntry): string | undefined {
    const result = targetsForAddresses(entry.name, entry.addresses, entry.zone, this.policy, this.paths);
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
