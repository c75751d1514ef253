/** Pods behind nodes and the faults on their paths: a pod's namespace, veth and routes, its route broken elsewhere, a router with a smaller MTU. */
import type { AddressBlock } from './netns-addresses.js';
import { ipBatch, must, setSysctls } from './netns-exec.js';
import type { ClusterNode, ClusterPod } from './netns-types.js';
import { waitLink } from './netns-wait.js';

/** The cluster's state that pods change: its nodes, the blocks routed to them, the namespaces to delete. */
export interface Fabric {
  readonly id: string;
  readonly live: readonly ClusterNode[];
  readonly blocks: AddressBlock[];
  readonly created: Set<string>;
}

/** The pod behind `node`: its namespace, the veth pair, the node forwarding, and every other node's route to it. */
export async function createPod(f: Fabric, node: ClusterNode): Promise<void> {
  if (node.index > 127) throw new Error('too many nodes for the 198.19.<i>.0/24 pod layout');
  const ns = `${f.id}p${node.index}`;
  const pod: ClusterPod = { ns, ipv4: `198.19.${node.index}.2`, gateway: `198.19.${node.index}.1`, cidr: `198.19.${node.index}.0/24` };
  await must('ip', ['netns', 'add', ns]);
  f.created.add(ns);
  await must('ip', ['-n', node.ns, 'link', 'add', 'name', 'pod0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await ipBatch(node.ns, ['link set pod0 up', `addr add ${pod.gateway}/24 dev pod0`]);
  await ipBatch(ns, ['link set lo up', 'link set eth0 up', `addr add ${pod.ipv4}/24 dev eth0`, `route add default via ${pod.gateway}`]);
  await setSysctls(node.ns, { 'net.ipv4.ip_forward': '1' });
  await setSysctls(ns, { 'net.ipv4.ping_group_range': '0 2147483647' });
  await must('ip', ['netns', 'exec', node.ns, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', pod.cidr, '-d', '198.18.0.0/24', '-j', 'MASQUERADE']);
  node.pod = pod;
  f.blocks.push({ cidr: pod.cidr, via: node.ipv4, ownerNs: node.ns });
  await Promise.all(f.live.filter((n) => n !== node).map((n) => ipBatch(n.ns, [`route add ${pod.cidr} via ${node.ipv4}`])));
}

function podOf(f: Fabric, name: string): { node: ClusterNode; pod: ClusterPod } {
  const node = f.live.find((n) => n.name === name || n.ns === name);
  if (!node?.pod) throw new Error(`${name} is not a node with a pod`);
  return { node, pod: node.pod };
}

/** See Cluster.setPodRoute. */
export async function setPodRoute(f: Fabric, name: string, state: 'broken' | 'ok', spare: readonly string[]): Promise<void> {
  const { node, pod } = podOf(f, name);
  const route = state === 'broken' ? `route replace blackhole ${pod.cidr}` : `route replace ${pod.cidr} via ${node.ipv4}`;
  const others = f.live.filter((n) => n !== node && !spare.includes(n.name) && !spare.includes(n.ns));
  await Promise.all(others.map((n) => ipBatch(n.ns, [route])));
}

/** See Cluster.insertPodRouter. */
export async function insertPodRouter(f: Fabric, name: string, farMtu: number): Promise<string> {
  const { node, pod } = podOf(f, name);
  const ns = `${f.id}r${node.index}`;
  // The node's link to the router: 198.19.(128+i).0/30, the node .1, the router .2; the pod keeps its address and gateway.
  const near = `198.19.${128 + node.index}`;
  await must('ip', ['netns', 'add', ns]);
  f.created.add(ns);
  await must('ip', ['-n', node.ns, 'link', 'del', 'pod0']); // the pod's eth0 goes with it
  await must('ip', ['-n', ns, 'link', 'add', 'name', 'up0', 'type', 'veth', 'peer', 'name', 'pod0', 'netns', node.ns]);
  await must('ip', ['-n', ns, 'link', 'add', 'name', 'down0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.ns]);
  await ipBatch(node.ns, ['link set pod0 up', `addr add ${near}.1/30 dev pod0`, `route add ${pod.cidr} via ${near}.2`]);
  await ipBatch(ns, [
    'link set lo up',
    'link set up0 up',
    `addr add ${near}.2/30 dev up0`,
    `link set down0 mtu ${farMtu}`,
    'link set down0 up',
    `addr add ${pod.gateway}/24 dev down0`,
    `route add default via ${near}.1`,
  ]);
  await ipBatch(pod.ns, [`link set eth0 mtu ${farMtu}`, 'link set eth0 up', `addr add ${pod.ipv4}/24 dev eth0`, `route add default via ${pod.gateway}`]);
  await setSysctls(ns, { 'net.ipv4.ip_forward': '1' });
  await Promise.all([waitLink(pod.ns, 'eth0'), waitLink(ns, 'up0'), waitLink(ns, 'down0')]);
  return ns;
}
