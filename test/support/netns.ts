/**
 * Network-namespace test harness: a small "cluster" of namespaces (node0..)
 * joined by a bridge that lives in its own namespace, so nothing touches the
 * host's network. Addresses: IPv4 198.18.0.0/24 (RFC 2544 benchmarking) and
 * IPv6 ULA fd00:6d65:6e74::/64. Needs root and iproute2.
 *
 * With `pods`, each chosen node has a pod behind it, as a CNI puts one: a
 * namespace joined to the node's by a veth pair, in the pod CIDR
 * 198.19.<i>.0/24 (the pod at .2, the node's side .1), which every other node
 * routes through the node's address: a real extra hop (IPv4 only). The node
 * masquerades what its pod sends to node addresses (iptables), as Calico's
 * natOutgoing and flannel's ip-masq do: a pod's probe of a node address leaves by
 * the underlay with the node's address, and its answer never needs the pod
 * network, while pod to pod stays unNATed.
 *
 * Names are `${prefix}-${pid36}-${seq36}` + `b` (bridge), `n<i>` (nodes), `p<i>`
 * (pods) or `r<i>` (routers), so a later run can tell leftovers of a crashed
 * process (pid gone) from namespaces of a concurrently running test file (pid
 * alive) and remove only the former.
 */
export type { CorruptMode, ResponderStats } from './echo-responder.js';
export type { ExecOptions, ExecResult } from './netns-exec.js';
export { RESPONDER_PATH, startResponder, type Responder, type ResponderOptions } from './netns-responder.js';
export { netnsSupported, requireNetns, sweepLeftovers } from './netns-lifecycle.js';
export type { Cluster, ClusterNode, ClusterPod, CreateClusterOptions } from './netns-types.js';
import { ClusterImpl, MAX_NAME } from './netns-cluster.js';
import { DEFAULT_PREFIX, installExitHooks, liveClusters, netnsSupported, sweepLeftovers, sweptPrefixes } from './netns-lifecycle.js';
import type { Cluster, CreateClusterOptions } from './netns-types.js';

let clusterSeq = 0;

/**
 * Create `opts.nodes` namespaces node0.. each with eth0 (veth into the bridge
 * namespace), 198.18.0.(10+i)/24 and, with ipv6, fd00:6d65:6e74::(10+i)/64
 * nodad, written with the same decimal digits (node1: 198.18.0.11 and
 * fd00:6d65:6e74::11). Resolves once links are up and addresses usable. Always pair with
 * `await cluster.destroy()` in finally/after().
 */
export async function createCluster(opts: CreateClusterOptions): Promise<Cluster> {
  const s = netnsSupported();
  if (!s.ok) throw new Error(`network namespaces unsupported: ${s.reason ?? ''}`);
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  if (!/^[a-z][a-z0-9]*$/.test(prefix)) throw new Error('prefix must be lowercase alphanumeric');
  if (!sweptPrefixes.has(prefix)) {
    sweptPrefixes.add(prefix);
    sweepLeftovers(prefix);
  }
  installExitHooks();
  const id = `${prefix}-${process.pid.toString(36)}-${(clusterSeq++).toString(36)}`;
  if (`${id}n${opts.nodes}`.length > MAX_NAME) throw new Error(`prefix too long for ${MAX_NAME}-char names: ${id}`);
  const pods = opts.pods;
  const cluster = new ClusterImpl(id, opts.ipv6 ?? false, typeof pods === 'function' ? pods : () => pods === true);
  liveClusters.add(cluster);
  try {
    await cluster.init(opts.nodes);
  } catch (e) {
    await cluster.destroy();
    throw e;
  }
  return cluster;
}

/**
 * Put `count` (≤ 5000) /32 addresses on `lo` of a node namespace with one
 * `ip -batch`, and route their /20 blocks via that node from every other node
 * (including nodes added later). Returns the addresses.
 */
export function addAddresses(cluster: Cluster, ns: string, count: number): Promise<string[]> {
  return cluster.addAddresses(ns, count);
}
