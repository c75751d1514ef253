/**
 * A mesh of agents in pod namespaces (mesh-cluster.ts with `pods`), as the DaemonSet runs them in the
 * pod network: the API server holds each agent's Pod (the DaemonSet's labels, its node, its pod IP),
 * the RBAC of deploy/ rendered by kustomize, and a controller in the infra namespace that watches
 * those Pods with the controller's service account and publishes their IPs in the node list.
 */
import type { TestContext } from 'node:test';
import { agentPodLabels, kustomize, need } from '../deploy/render.js';
import { makePod } from '../fake-apiserver/index.js';
import { freePort, launchAgent, type Agent } from './fault-client.js';
import { startMeshCluster, twoZones, type MeshCluster, type MeshClusterOptions } from './mesh-cluster.js';
import { requireNetns } from './netns.js';
import { AGENT_USER, CONTROLLER_USER, NS } from './node-list-parts.js';
import { permissionsFromManifests } from './rbac.js';

/** GETs a URL from inside a namespace, with the Node that runs the tests; the body on stdout. */
const FETCH = `fetch(process.argv[1], { signal: AbortSignal.timeout(5000) })
  .then(async (r) => { if (r.status !== 200) throw new Error('HTTP ' + r.status); process.stdout.write(await r.text()); })
  .catch((e) => { process.stderr.write(String(e)); process.exit(1); });`;

export interface PodMesh {
  readonly mesh: MeshCluster;
  /** The agents' nodes (node1..). */
  readonly names: string[];
  readonly controller: Agent;
  /** The agent's /metrics body, fetched inside its pod namespace (no network path between). */
  readonly body: (name: string) => Promise<string>;
  /** The agent's /metrics address, on its pod IP. */
  readonly target: (name: string) => string;
}

export interface PodMeshOptions {
  readonly agents: number;
  readonly dir: string;
  /** Settings of every agent, beside the pod namespace and a short lease. */
  readonly env?: Record<string, string>;
  /** Runs before any agent starts (a router must be in place before the pod's agent binds). */
  readonly before?: (mesh: MeshCluster) => Promise<void>;
}

/** Started agents and controller, or undefined when the test was skipped (no namespaces, no kubectl). */
export async function startPodMesh(t: TestContext, opts: PodMeshOptions): Promise<PodMesh | undefined> {
  if (!requireNetns(t)) return undefined;
  const kubectl = need(t, 'kubectl', 'the machine image');
  if (!kubectl) return undefined;
  const meshOptions: MeshClusterOptions = {
    agents: opts.agents,
    zone: twoZones,
    dir: opts.dir,
    pods: true,
    agentUser: AGENT_USER,
    env: { POD_NAMESPACE: NS, MENTAT_LEASE_DURATION: '6s', ...opts.env },
  };
  const mesh = await startMeshCluster(t, meshOptions);
  const rbac = permissionsFromManifests(kustomize(kubectl, 'deploy'));
  await mesh.control.setPermissions(AGENT_USER, rbac.get(AGENT_USER));
  await mesh.control.setPermissions(CONTROLLER_USER, rbac.get(CONTROLLER_USER));
  const names = [...mesh.nodes.keys()];
  const labels = agentPodLabels();
  for (const [name, node] of mesh.nodes) {
    await mesh.control.putObject('pods', NS, makePod({ name: `mentat-${name}`, labels, nodeName: name, podIPs: [node.pod!.ipv4] }));
  }
  await opts.before?.(mesh);
  const controller = launchAgent(
    mesh.cluster,
    mesh.infra.ns,
    mesh.control,
    await freePort(),
    {
      MENTAT_ROLE: 'controller',
      POD_NAMESPACE: NS,
      POD_NAME: 'mentat-controller-0',
      NODE_NAME: 'infra',
      MENTAT_LEASE_DURATION: '6s',
      KUBECONFIG: await mesh.control.kubeconfigFor({ user: CONTROLLER_USER }),
    },
    [],
    mesh.infra.ipv4,
  );
  t.after(() => controller.stop(3000).catch(() => undefined));
  for (const name of names) mesh.start(name);

  const target = (name: string): string => `${mesh.nodes.get(name)!.pod!.ipv4}:${mesh.port}`;
  const body = async (name: string): Promise<string> => {
    const pod = mesh.nodes.get(name)!.pod!;
    const r = await mesh.cluster.execIn(pod.ns, process.execPath, ['-e', FETCH, `http://${target(name)}/metrics`], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`scrape of ${name} failed: ${r.stderr.slice(0, 300)}`);
    return r.stdout;
  };
  return { mesh, names, controller, body, target };
}
