/** Types every part of the agent shares: what is probed, what a probe gives, and time. */

export type Family = 4 | 6;

/** The networks probed between two nodes: node addresses, or the agent pod's address through the pod network (overlay, CNI). */
export const NETWORK_PATHS = ['node', 'pod'] as const;
export type NetworkPath = (typeof NETWORK_PATHS)[number];

/**
 * The address type of an agent pod's IP in a NodeEntry. Only the controller sets it (from the
 * DaemonSet's Pods); a Node's own status.addresses never carries it (kube/node.ts drops it).
 */
export const POD_ADDRESS_TYPE = 'PodIP';

/** One address to probe. `key` is its identity: a changed address under the same key is followed. */
export interface Target {
  readonly key: string;
  readonly name: string;
  readonly address: string;
  readonly family: Family;
  /** topology.kubernetes.io/zone of the node, when known. */
  readonly zone?: string;
  /** The network this address is on; absent: the node network. */
  readonly path?: NetworkPath;
}

/** A timeout is data (loss), not an exception. */
export type Outcome =
  | { readonly kind: 'success'; readonly rttSeconds: number }
  | { readonly kind: 'timeout' }
  /** `nextHopMtu`: the error was a fragmentation needed / packet too big, saying what the path takes. */
  | { readonly kind: 'error'; readonly reason: string; readonly nextHopMtu?: number };

/** Time and timers, injected so that scheduling is tested without waiting. */
export interface Clock {
  /** Monotonic milliseconds, fractional. */
  now(): number;
  setTimer(fn: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

/**
 * Time and chance as the composition root hands them to a long-running part (the controller, its
 * lease and writer), so that tests drive them: the monotonic clock with its timers, the wall clock
 * for times written into objects, waiting, and random numbers in [0, 1) for jitter.
 */
export interface Ambient {
  readonly clock: Clock;
  readonly wallNow: () => number;
  readonly delay: (ms: number) => Promise<void>;
  readonly random: () => number;
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
  /**
   * The Node's addresses, in its order: each agent applies its own address policy (mesh/addresses.ts).
   * The controller adds the node's agent pod IPs as type POD_ADDRESS_TYPE.
   */
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
