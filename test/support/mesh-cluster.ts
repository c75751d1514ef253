/**
 * Many agents, one per network namespace, as a DaemonSet runs them: a namespace "infra" (node index 0)
 * hosts the fake API server on its bridge address (and, for some tests, Prometheus); nodes 1..N each
 * run a real agent listening on their own address, discovering the others through the API server.
 * With `pods`, each of nodes 1..N has a pod namespace behind it (netns.ts) and its agent runs there,
 * listening on the pod's address, as the DaemonSet's pods run in the pod network.
 */
import type { TestContext } from 'node:test';
import { makeNode, type NodeInput } from '../fake-apiserver/index.js';
import { FaultControl, freePort, launchAgent, type Agent } from './fault-client.js';
import { createCluster, type Cluster, type ClusterNode } from './netns.js';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/** Odd nodes in zone-a, even ones in zone-b. */
export const twoZones = (i: number): string => (i % 2 === 1 ? 'zone-a' : 'zone-b');

export interface MeshCluster {
  readonly cluster: Cluster;
  readonly control: FaultControl;
  readonly infra: ClusterNode;
  /** The agents' nodes, by Kubernetes node name (node1..). */
  readonly nodes: ReadonlyMap<string, ClusterNode>;
  readonly agents: Map<string, Agent>;
  readonly port: number;
  /** The Node object the API server holds for `name` (zone label, created an hour ago). */
  nodeObject(name: string): NodeInput;
  zoneOf(name: string): string;
  start(name: string): Agent;
  /** Everything the run made: agents, namespaces. */
  destroy(): Promise<void>;
}

export interface MeshClusterOptions {
  readonly agents: number;
  /** Zone of the i-th node (1-based). */
  readonly zone: (i: number) => string;
  /** Settings of every agent. */
  readonly env: Record<string, string>;
  /** Give each agent a user (and token) of its own, for the API server's load accounting per agent. */
  readonly userPerAgent?: boolean;
  /** Every agent authenticates as this user (e.g. the DaemonSet's service account), unless userPerAgent. */
  readonly agentUser?: string;
  /** A pod namespace behind each agent's node, where the agent runs. */
  readonly pods?: boolean;
  readonly dir: string;
  readonly prefix?: string;
}

/** An hour old: the agents' own nodes are not "joining", so nothing about them is held back. */
function settled(node: NodeInput): NodeInput {
  return { ...node, metadata: { ...node.metadata, creationTimestamp: new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z') } };
}

export async function startMeshCluster(t: TestContext, options: MeshClusterOptions): Promise<MeshCluster> {
  const cluster = await createCluster({ nodes: options.agents + 1, prefix: options.prefix ?? 'mte', pods: options.pods === true ? (i) => i > 0 : false });
  const agents = new Map<string, Agent>();
  let control: FaultControl | undefined;
  const destroy = async (): Promise<void> => {
    await Promise.all([...agents.values()].map((a) => a.stop(3000).catch(() => undefined)));
    control?.close();
    await cluster.destroy();
  };
  t.after(destroy);
  const infra = cluster.nodes[0]!;
  control = await FaultControl.start(cluster, infra.ns, options.dir, infra.ipv4);
  const nodes = new Map<string, ClusterNode>(cluster.nodes.slice(1).map((n) => [`node${n.index}`, n]));
  const zoneOf = (name: string) => options.zone(nodes.get(name)!.index);
  const nodeObject = (name: string) => settled(makeNode(name, nodes.get(name)!.ipv4, { [ZONE_LABEL]: zoneOf(name) }));
  await control.upsertRaw(...[...nodes.keys()].map(nodeObject));
  const port = await freePort();
  const ctl = control;
  const kubeconfigs = new Map<string, string>();
  if (options.userPerAgent) for (const name of nodes.keys()) kubeconfigs.set(name, await control.kubeconfigFor({ user: `agent-${name}` }));
  const shared = options.agentUser !== undefined ? await control.kubeconfigFor({ user: options.agentUser }) : ctl.kubeconfig;
  const start = (name: string): Agent => {
    const node = nodes.get(name)!;
    const env = { NODE_NAME: name, POD_NAME: `mentat-${name}`, KUBECONFIG: kubeconfigs.get(name) ?? shared, ...options.env };
    const agent = node.pod
      ? launchAgent(cluster, node.pod.ns, ctl, port, env, [], node.pod.ipv4)
      : launchAgent(cluster, node.ns, ctl, port, env, [], node.ipv4);
    agents.set(name, agent);
    return agent;
  };
  return { cluster, control, infra, nodes, agents, port, nodeObject, zoneOf, start, destroy };
}
