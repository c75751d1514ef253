/** The namespace cluster itself (netns.ts creates it): nodes on a bridge, processes in them, nodes and addresses added at runtime, teardown. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { allocateAddresses, type AddressBlock } from './netns-addresses.js';
import { deleteNetns, deleteNetnsSync, ipBatch, killGroup, listNetnsSync, must, run, setSysctls, type ExecOptions, type ExecResult } from './netns-exec.js';
import { liveClusters } from './netns-lifecycle.js';
import * as pods from './netns-pods.js';
import type { Cluster, ClusterNode } from './netns-types.js';
import { waitLink, waitUsable } from './netns-wait.js';

const IPV6_PREFIX = 'fd00:6d65:6e74::';
/** The kernel's limit on interface names, which namespace names follow here. */
export const MAX_NAME = 15;

export class ClusterImpl implements Cluster, pods.Fabric {
  readonly id: string;
  readonly bridgeNs: string;
  readonly live: ClusterNode[] = [];
  private readonly children = new Set<ChildProcess>();
  readonly blocks: AddressBlock[] = [];
  private nextIndex = 0;
  private readonly addressCursor = { nextBlock: 0 };
  private destroyPromise: Promise<void> | undefined;
  readonly created = new Set<string>();

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
    await Promise.all(this.live.flatMap((n) => [waitUsable(n), ...(n.pod ? [waitLink(n.pod.ns, 'eth0')] : [])]));
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
    if (this.withPod(index)) await pods.createPod(this, node);
    return node;
  }

  setPodRoute(name: string, state: 'broken' | 'ok', spare: readonly string[] = []): Promise<void> {
    return pods.setPodRoute(this, name, state, spare);
  }

  async setBridgePortMtu(name: string, mtu: number): Promise<void> {
    const node = this.live.find((n) => n.name === name || n.ns === name);
    if (!node) throw new Error(`unknown node: ${name}`);
    await must('ip', ['-n', this.bridgeNs, 'link', 'set', `v${node.index}`, 'mtu', String(mtu)]);
  }

  insertPodRouter(name: string, farMtu: number): Promise<string> {
    return pods.insertPodRouter(this, name, farMtu);
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
    await waitUsable(node);
    if (node.pod) await waitLink(node.pod.ns, 'eth0');
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
    const { addrs, cidrs } = allocateAddresses(count, this.addressCursor);
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
