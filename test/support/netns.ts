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
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';

export type { CorruptMode, ResponderStats } from './echo-responder.js';
export type { ExecOptions, ExecResult } from './netns-exec.js';
export { RESPONDER_PATH, startResponder, type Responder, type ResponderOptions } from './netns-responder.js';
export { netnsSupported, requireNetns, sweepLeftovers } from './netns-lifecycle.js';
export type { Cluster, ClusterNode, ClusterPod, CreateClusterOptions } from './netns-types.js';
import { DEFAULT_PREFIX, installExitHooks, liveClusters, netnsSupported, sweepLeftovers, sweptPrefixes } from './netns-lifecycle.js';
import type { Cluster, ClusterNode, ClusterPod, CreateClusterOptions } from './netns-types.js';
import { deleteNetns, deleteNetnsSync, ipBatch, killGroup, listNetnsSync, must, run, setSysctls, type ExecOptions, type ExecResult } from './netns-exec.js';

const IPV6_PREFIX = 'fd00:6d65:6e74::';
const MAX_NAME = 15;

// ----------------------------------------------------------------- cluster

let clusterSeq = 0;

interface AddressBlock {
  /** e.g. 198.18.16.0/20 */
  cidr: string;
  /** IPv4 of the node that owns the addresses (route gateway). */
  via: string;
  ownerNs: string;
}

class ClusterImpl implements Cluster {
  readonly id: string;
  readonly bridgeNs: string;
  private readonly live: ClusterNode[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly blocks: AddressBlock[] = [];
  private nextIndex = 0;
  private nextBlock = 0;
  private destroyPromise: Promise<void> | undefined;
  private readonly created = new Set<string>();

  constructor(
    id: string,
    readonly ipv6: boolean,
    private readonly withPod: (index: number) => boolean = () => false,
  ) {
    this.id = id;
    this.bridgeNs = `${id}b`;
  }

  get nodes(): readonly ClusterNode[] {
    return this.live;
  }

  allNamespaces(): string[] {
    return [...this.created];
  }

  nsOf(nodeOrNs: string): string {
    const n = this.live.find((x) => x.name === nodeOrNs || x.ns === nodeOrNs);
    if (n) return n.ns;
    if (nodeOrNs === this.bridgeNs) return nodeOrNs;
    // Pods and routers: spawnIn and execIn work there too.
    if (this.created.has(nodeOrNs)) return nodeOrNs;
    throw new Error(`unknown node or namespace: ${nodeOrNs}`);
  }

  async init(count: number): Promise<void> {
    await must('ip', ['netns', 'add', this.bridgeNs]);
    this.created.add(this.bridgeNs);
    // No STP and no multicast snooping: ports forward at once and NDP
    // multicast is flooded without waiting for MLD state.
    await ipBatch(this.bridgeNs, ['link set lo up', 'link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0', 'link set br0 up']);
    // The bridge ns only switches frames; keep it quiet on IPv6.
    await setSysctls(this.bridgeNs, { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' });
    for (let i = 0; i < count; i++) await this.createNode();
    await Promise.all(this.live.flatMap((n) => [this.waitUsable(n), ...(n.pod ? [this.waitLink(n.pod.ns, 'eth0')] : [])]));
  }

  private async createNode(): Promise<ClusterNode> {
    const index = this.nextIndex++;
    if (index > 200) throw new Error('too many nodes for 198.18.0.0/24 layout');
    const ns = `${this.id}n${index}`;
    if (ns.length > MAX_NAME) throw new Error(`namespace name too long: ${ns}`);
    const node: ClusterNode = { name: `node${index}`, ns, index, ipv4: `198.18.0.${10 + index}` };
    // Same digits as the IPv4 host part (node1: 198.18.0.11 and ::11) so logs are easy to read.
    if (this.ipv6) node.ipv6 = `${IPV6_PREFIX}${10 + index}`;
    await must('ip', ['netns', 'add', ns]);
    this.created.add(ns);
    // Create the pair inside the bridge ns and push the peer straight into the
    // node ns: the root namespace never sees either end.
    const port = `v${index}`;
    await must('ip', ['-n', this.bridgeNs, 'link', 'add', 'name', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await ipBatch(this.bridgeNs, [`link set ${port} master br0`, `link set ${port} up`]);
    const lines = ['link set lo up', 'link set eth0 up', `addr add ${node.ipv4}/24 dev eth0`];
    if (node.ipv6) lines.push(`addr add ${node.ipv6}/64 dev eth0 nodad`);
    for (const b of this.blocks) lines.push(`route add ${b.cidr} via ${b.via}`);
    await ipBatch(ns, lines);
    // Lets unprivileged (datagram) ICMP sockets work in the namespace, as on
    // typical Kubernetes nodes.
    await setSysctls(ns, { 'net.ipv4.ping_group_range': '0 2147483647' });
    this.live.push(node);
    if (this.withPod(index)) await this.createPod(node);
    return node;
  }

  /** The pod behind `node`: its namespace, the veth pair, the node forwarding, and every other node's route to it. */
  private async createPod(node: ClusterNode): Promise<void> {
    if (node.index > 127) throw new Error('too many nodes for the 198.19.<i>.0/24 pod layout');
    const ns = `${this.id}p${node.index}`;
    const pod: ClusterPod = { ns, ipv4: `198.19.${node.index}.2`, gateway: `198.19.${node.index}.1`, cidr: `198.19.${node.index}.0/24` };
    await must('ip', ['netns', 'add', ns]);
    this.created.add(ns);
    await must('ip', ['-n', node.ns, 'link', 'add', 'name', 'pod0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await ipBatch(node.ns, ['link set pod0 up', `addr add ${pod.gateway}/24 dev pod0`]);
    await ipBatch(ns, ['link set lo up', 'link set eth0 up', `addr add ${pod.ipv4}/24 dev eth0`, `route add default via ${pod.gateway}`]);
    await setSysctls(node.ns, { 'net.ipv4.ip_forward': '1' });
    await setSysctls(ns, { 'net.ipv4.ping_group_range': '0 2147483647' });
    await must('ip', ['netns', 'exec', node.ns, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', pod.cidr, '-d', '198.18.0.0/24', '-j', 'MASQUERADE']);
    node.pod = pod;
    this.blocks.push({ cidr: pod.cidr, via: node.ipv4, ownerNs: node.ns });
    await Promise.all(this.live.filter((n) => n !== node).map((n) => ipBatch(n.ns, [`route add ${pod.cidr} via ${node.ipv4}`])));
  }

  private podOf(name: string): { node: ClusterNode; pod: ClusterPod } {
    const node = this.live.find((n) => n.name === name || n.ns === name);
    if (!node?.pod) throw new Error(`${name} is not a node with a pod`);
    return { node, pod: node.pod };
  }

  async setPodRoute(name: string, state: 'broken' | 'ok', spare: readonly string[] = []): Promise<void> {
    const { node, pod } = this.podOf(name);
    const route = state === 'broken' ? `route replace blackhole ${pod.cidr}` : `route replace ${pod.cidr} via ${node.ipv4}`;
    const others = this.live.filter((n) => n !== node && !spare.includes(n.name) && !spare.includes(n.ns));
    await Promise.all(others.map((n) => ipBatch(n.ns, [route])));
  }

  async setBridgePortMtu(name: string, mtu: number): Promise<void> {
    const node = this.live.find((n) => n.name === name || n.ns === name);
    if (!node) throw new Error(`unknown node: ${name}`);
    await must('ip', ['-n', this.bridgeNs, 'link', 'set', `v${node.index}`, 'mtu', String(mtu)]);
  }

  async insertPodRouter(name: string, farMtu: number): Promise<string> {
    const { node, pod } = this.podOf(name);
    const ns = `${this.id}r${node.index}`;
    // The node's link to the router: 198.19.(128+i).0/30, the node .1, the router .2; the pod keeps its address and gateway.
    const near = `198.19.${128 + node.index}`;
    await must('ip', ['netns', 'add', ns]);
    this.created.add(ns);
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
    await Promise.all([this.waitLink(pod.ns, 'eth0'), this.waitLink(ns, 'up0'), this.waitLink(ns, 'down0')]);
    return ns;
  }

  /** Wait for a link to be up with carrier. */
  private async waitLink(ns: string, dev: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
      const info = r.code === 0 ? (JSON.parse(r.stdout) as Array<{ operstate?: string; flags?: string[] }>)[0] : undefined;
      if (info?.operstate === 'UP' && (info.flags ?? []).includes('LOWER_UP')) return;
      if (Date.now() > deadline) throw new Error(`${dev} in ${ns} not up after 10 s: ${r.stdout || r.stderr}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  /** Wait for carrier and for IPv6 addresses to leave the tentative state. */
  private async waitUsable(node: ClusterNode): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await run('ip', ['-n', node.ns, '-j', 'addr', 'show', 'dev', 'eth0']);
      if (r.code === 0) {
        const info = (
          JSON.parse(r.stdout) as Array<{
            operstate?: string;
            flags?: string[];
            addr_info?: Array<{ family: string; local: string; tentative?: boolean; dadfailed?: boolean }>;
          }>
        )[0];
        const up = info?.operstate === 'UP' && (info.flags ?? []).includes('LOWER_UP');
        const v6 = info?.addr_info?.find((a) => a.family === 'inet6' && a.local === node.ipv6);
        const v6ok = !node.ipv6 || (v6 !== undefined && !v6.tentative && !v6.dadfailed);
        if (up && v6ok) return;
      }
      if (Date.now() > deadline) throw new Error(`node ${node.name} not usable after 10 s: ${r.stdout || r.stderr}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  spawnIn(ns: string, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.nsOf(ns), cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
      // Own process group, so destroy() also gets grandchildren (e.g. via sh -c).
      detached: true,
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  execIn(ns: string, cmd: string, args: readonly string[] = [], opts?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.nsOf(ns), cmd, ...args], opts);
  }

  async addNode(): Promise<ClusterNode> {
    const node = await this.createNode();
    await this.waitUsable(node);
    if (node.pod) await this.waitLink(node.pod.ns, 'eth0');
    return node;
  }

  async removeNode(name: string): Promise<void> {
    const i = this.live.findIndex((n) => n.name === name || n.ns === name);
    if (i < 0) throw new Error(`unknown node: ${name}`);
    const [node] = this.live.splice(i, 1) as [ClusterNode];
    const own = [node.ns, `${this.id}p${node.index}`, `${this.id}r${node.index}`].filter((n) => this.created.has(n));
    for (const c of [...this.children]) if (own.includes(c.spawnargs[3] ?? '')) killGroup(c, 'SIGKILL');
    // Routes to this node's address blocks would now point nowhere.
    const gone = this.blocks.filter((b) => b.ownerNs === node.ns);
    for (const b of gone) this.blocks.splice(this.blocks.indexOf(b), 1);
    await Promise.all(
      this.live.map((n) =>
        ipBatch(
          n.ns,
          gone.map((b) => `route del ${b.cidr}`),
        ).catch(() => {}),
      ),
    );
    for (const n of own) {
      await deleteNetns(n);
      this.created.delete(n);
    }
    await run('ip', ['-n', this.bridgeNs, 'link', 'del', `v${node.index}`]); // usually gone with its peer already
  }

  async addAddresses(ns: string, count: number): Promise<string[]> {
    const target = this.live.find((n) => n.ns === this.nsOf(ns));
    if (!target) throw new Error(`addAddresses: ${ns} is not a node`);
    if (!Number.isInteger(count) || count < 1 || count > 5000) throw new Error('addAddresses: count must be 1..5000');
    const addrs: string[] = [];
    const cidrs: string[] = [];
    // Fresh /20 blocks 198.18.16.0/20, 198.18.32.0/20, ... (15 available);
    // .0 and .255 are skipped so no address looks like a network/broadcast one.
    while (addrs.length < count) {
      const blk = this.nextBlock++;
      if (blk >= 15) throw new Error('addAddresses: out of 198.18.x.0/20 blocks');
      const third = 16 * (blk + 1);
      cidrs.push(`198.18.${third}.0/20`);
      for (let c = third; c < third + 16 && addrs.length < count; c++) {
        for (let d = 1; d <= 254 && addrs.length < count; d++) addrs.push(`198.18.${c}.${d}`);
      }
    }
    // On lo: the kernel treats them as local wherever they arrive (weak host
    // model), and there is no `dummy` driver on every kernel.
    await ipBatch(
      target.ns,
      addrs.map((a) => `addr add ${a}/32 dev lo`),
    );
    for (const cidr of cidrs) this.blocks.push({ cidr, via: target.ipv4, ownerNs: target.ns });
    await Promise.all(
      this.live
        .filter((n) => n !== target)
        .map((n) =>
          ipBatch(
            n.ns,
            cidrs.map((c) => `route add ${c} via ${target.ipv4}`),
          ),
        ),
    );
    return addrs;
  }

  destroy(): Promise<void> {
    this.destroyPromise ??= (async () => {
      const kids = [...this.children];
      for (const c of kids) killGroup(c, 'SIGTERM');
      // Give them a moment to exit cleanly (responders print stats), then force.
      await Promise.race([
        Promise.all(kids.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : once(c, 'exit')))),
        new Promise((res) => setTimeout(res, 1000)),
      ]);
      for (const c of kids) if (c.exitCode === null && c.signalCode === null) killGroup(c, 'SIGKILL');
      // Nodes first, then the bridge (its veth ends disappear with the peers).
      const nodeNs = [...this.created].filter((n) => n !== this.bridgeNs);
      await Promise.all(nodeNs.map((n) => deleteNetns(n)));
      await deleteNetns(this.bridgeNs);
      // Verify; fall back to the synchronous path for anything that survived.
      const left = new Set(listNetnsSync());
      for (const n of this.created) if (left.has(n)) deleteNetnsSync(n);
      this.created.clear();
      this.live.length = 0;
      liveClusters.delete(this);
    })();
    return this.destroyPromise;
  }

  /** Synchronous variant for process 'exit'/signal handlers. */
  destroySync(): void {
    for (const c of this.children) killGroup(c, 'SIGKILL');
    for (const n of this.created) deleteNetnsSync(n);
    this.created.clear();
    this.live.length = 0;
    liveClusters.delete(this);
  }
}

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
