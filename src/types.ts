/** Types every part of the agent shares: what is probed, what a probe gives, and time. */

export type Family = 4 | 6;

/** One address to probe. `key` is its identity: a changed address under the same key is followed. */
export interface Target {
  readonly key: string;
  readonly name: string;
  readonly address: string;
  readonly family: Family;
  /** topology.kubernetes.io/zone of the node, when known. */
  readonly zone?: string;
}

/** A timeout is data (loss), not an exception. */
export type Outcome =
  { readonly kind: 'success'; readonly rttSeconds: number } | { readonly kind: 'timeout' } | { readonly kind: 'error'; readonly reason: string };

/** Time and timers, injected so that scheduling is tested without waiting. */
export interface Clock {
  /** Monotonic milliseconds, fractional. */
  now(): number;
  setTimer(fn: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

/** The real clock: performance.now and the event loop's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** What Kubernetes says of a node, as far as probing and alerting care. */
export type NodeState = 'active' | 'cordoned' | 'leaving';

/**
 * What the agents use of a Node, and nothing else (src/kube/node.ts reads it from a Node; the
 * published node list carries it): name, addresses, zone, state and creation time.
 */
export interface NodeEntry {
  readonly name: string;
  /** The Node's addresses, in its order: each agent applies its own address policy (mesh/addresses.ts). */
  readonly addresses: ReadonlyArray<{ readonly type: string; readonly address: string }>;
  readonly zone?: string;
  readonly state: NodeState;
  /** Seconds since the epoch. */
  readonly createdAtS?: number;
}

/** A node the agent knows, with what to probe on it. */
export interface MeshNode {
  readonly name: string;
  readonly zone?: string;
  /** `leaving`: being deleted (autoscaler taint, deletionTimestamp): no longer probed. `cordoned`: unschedulable. */
  readonly state: NodeState;
  /** Wall-clock milliseconds of the Node's creationTimestamp, when known. */
  readonly createdAtMs?: number;
  /** Its addresses to probe (one, or one per family); empty for the agent's own node. */
  readonly targets: readonly Target[];
}

/** What an agent reports of itself, read at each collection. */
export interface AgentStats {
  /** Nodes by how this agent treats them: known, probed, swept, suspect, outlier, leaving, over_cap. */
  readonly targets: Readonly<Record<TargetState, number>>;
  /** The interval each probed destination gets, after the packet budget. */
  readonly intervalSeconds: number;
  /** This agent's own node, as Kubernetes describes it. */
  readonly nodeState: SelfState;
}

export const TARGET_STATES = ['known', 'probed', 'swept', 'suspect', 'outlier', 'leaving', 'over_cap'] as const;
export type TargetState = (typeof TARGET_STATES)[number];
export const SELF_STATES = ['active', 'joining', 'cordoned', 'leaving'] as const;
export type SelfState = (typeof SELF_STATES)[number];
