/** The namespace cluster's shapes (netns.ts builds it): its nodes, their pods, what a test can do with it. */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import type { ExecOptions, ExecResult } from './netns-exec.js';

export interface ClusterNode {
  /** Logical name: node0, node1, ... */
  name: string;
  /** Network namespace name (use with spawnIn/execIn or `ip -n`). */
  ns: string;
  index: number;
  ipv4: string;
  ipv6?: string;
  /** The pod behind this node (CreateClusterOptions.pods). */
  pod?: ClusterPod;
}

/** A pod namespace behind its node: eth0 with `ipv4` in `cidr`, default route via `gateway` (the node, or a router). */
export interface ClusterPod {
  ns: string;
  ipv4: string;
  gateway: string;
  /** 198.19.<i>.0/24, routed via the node's address from every other node. */
  cidr: string;
}

export interface Cluster {
  readonly id: string;
  /** Namespace holding the bridge `br0` and the host ends of the veths. */
  readonly bridgeNs: string;
  /** Live view: changes with addNode/removeNode. */
  readonly nodes: readonly ClusterNode[];
  /** Namespace name for a node name or namespace name (throws if unknown). */
  nsOf(nodeOrNs: string): string;
  /**
   * Start `cmd` inside a namespace via `ip netns exec` (which execs, so the
   * child's pid is the command's). Tracked and killed on destroy(). Default
   * stdio is ['ignore', 'pipe', 'pipe']: drain stdout/stderr if it is chatty.
   */
  spawnIn(ns: string, cmd: string, args?: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Run a command to completion inside a namespace; never rejects on exit code. */
  execIn(ns: string, cmd: string, args?: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  addNode(): Promise<ClusterNode>;
  removeNode(name: string): Promise<void>;
  /** See the standalone addAddresses(). */
  addAddresses(ns: string, count: number): Promise<string[]>;
  /**
   * A broken pod network to one node: every other node (but those in `spare`, e.g. the one serving
   * the API) drops what it would route to the node's pod CIDR (a blackhole route: no ICMP error, as
   * a broken tunnel) while the node's own address still answers; 'ok' restores the routes.
   */
  setPodRoute(node: string, state: 'broken' | 'ok', spare?: readonly string[]): Promise<void>;
  /**
   * The MTU of a node's port on the bridge (the bridge namespace's end of its veth): a Linux bridge
   * drops, without a word, frames larger than the port they leave by, and the node's own frames
   * larger than it are dropped as they enter it.
   */
  setBridgePortMtu(node: string, mtu: number): Promise<void>;
  /**
   * Puts a router namespace between a node and its pod: node <-> router (1500) <-> pod, whose far
   * side (towards the pod, and the pod's eth0) has `farMtu`. A full-size do-not-fragment packet from
   * another node to the pod gets the kernel's ICMP fragmentation needed naming `farMtu`, from the
   * router. Call before anything runs in the pod namespace: its eth0 is made anew.
   */
  insertPodRouter(node: string, farMtu: number): Promise<string>;
  /** Kill tracked processes and delete all namespaces. Idempotent. */
  destroy(): Promise<void>;
}

export interface CreateClusterOptions {
  nodes: number;
  /** Name prefix, default `mtt`. Leftovers with this prefix from dead processes are removed. */
  prefix?: string;
  ipv6?: boolean;
  /** A pod namespace behind every node (true) or the nodes of these indexes (see ClusterPod). */
  pods?: boolean | ((index: number) => boolean);
}
