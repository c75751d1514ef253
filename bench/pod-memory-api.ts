/**
 * The API server of bench/pod-memory.sh: the in-repo one, gzipping large lists as kube-apiserver
 * does, serving N Nodes at addresses 10.200.x.y (the script's namespace routes them locally), with
 * deploy/'s RBAC per service account.
 *
 *   node dist/bench/pod-memory-api.js NODES minimal|realistic KUBELET(0|1) DIR
 *
 * Prints three lines once it serves: the agent's kubeconfig, the controller's, and whether deploy/'s
 * RBAC holds them (it needs kubectl for kustomize; without it the tokens are unrestricted, and the
 * line says so). Runs until killed.
 */
import { fileURLToPath } from 'node:url';
import { kustomize } from '../test/deploy/render.js';
import { startNodeHeartbeats } from '../test/fake-apiserver/heartbeats.js';
import { FakeApiServer, makeNode, makeRealisticNode } from '../test/fake-apiserver/index.js';
import { AGENT_USER, CONTROLLER_USER } from '../test/support/node-list-parts.js';
import { permissionsFromManifests } from '../test/support/rbac.js';

/** Node i's address in 10.200.0.0/16, which holds 65 536; remote unicast to the agent, which refuses loopback ones. */
export const nodeAddress = (i: number): string => `10.200.${(i >> 8) & 255}.${i & 255}`;

async function main(args: readonly string[]): Promise<void> {
  const [nodesText, kind, kubelet, dir] = args;
  const nodes = Number(nodesText);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 65_536 || (kind !== 'minimal' && kind !== 'realistic') || !dir) {
    throw new Error('usage: node dist/bench/pod-memory-api.js NODES(1-65536) minimal|realistic KUBELET(0|1) DIR');
  }
  const server = await FakeApiServer.start({ compressResponses: true });
  const make = kind === 'realistic' ? makeRealisticNode : (name: string, ip: string) => makeNode(name, ip);
  server.upsertNodes(Array.from({ length: nodes }, (_, i) => make(`node-${i}`, nodeAddress(i), i)));
  if (kubelet === '1') startNodeHeartbeats(server, { periodMs: 300_000 });
  let rbac = 'rbac=deploy';
  try {
    for (const [user, permissions] of permissionsFromManifests(kustomize('kubectl', 'deploy'))) server.setPermissions(user, permissions);
  } catch (err) {
    rbac = `rbac=unrestricted (deploy/'s RBAC not rendered: ${(err as Error).message.split('\n')[0]})`;
  }
  const agent = await server.writeKubeconfig(dir, { user: AGENT_USER });
  const controller = await server.writeKubeconfig(dir, { user: CONTROLLER_USER });
  process.stdout.write(`${agent}\n${controller}\n${rbac}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`pod-memory-api: ${(err as Error).message}\n`);
    process.exit(2);
  });
}
