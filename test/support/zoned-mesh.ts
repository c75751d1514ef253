/** A mesh of agents in two zones (mesh-cluster.ts), every agent started, in a temporary directory removed after the test. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startMeshCluster, twoZones, type MeshCluster } from './mesh-cluster.js';

export interface ZonedMesh {
  readonly mesh: MeshCluster;
  /** The agents' nodes (node1..). */
  readonly names: string[];
  /** The temporary directory of the run. */
  readonly dir: string;
}

/** Starts `agents` agents in two zones with `env`, each on its own node, in a temporary directory named after `dirPrefix`. */
export async function startZonedMesh(t: TestContext, opts: { agents: number; dirPrefix: string; env: Record<string, string> }): Promise<ZonedMesh> {
  const dir = await mkdtemp(join(tmpdir(), opts.dirPrefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const mesh = await startMeshCluster(t, { agents: opts.agents, zone: twoZones, dir, env: opts.env });
  const names = [...mesh.nodes.keys()];
  for (const name of names) mesh.start(name);
  return { mesh, names, dir };
}
