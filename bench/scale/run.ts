/**
 * Section 3, scale: one agent discovering its targets as Nodes from the fake API server, each on
 * /32 addresses of one namespace's loopback (kernel echo replies).
 *
 * - The full mesh (MENTAT_MESH=full) at 1 / 100 / 1000 / 5000 targets, minimal Node objects: probes
 *   vs expected, CPU quiet and per scrape, RSS, /metrics, CPU by thread, SIGTERM; next to idle
 *   processes loading each layer of the agent's modules (the memory floor).
 * - Agents as shipped: the mentat-controller publishing the node list, and agents with the
 *   DaemonSet's environment (so the default mesh, sampled at 5000 nodes) following it, over 5000
 *   kubelet-sized Nodes whose kubelets post status every 5 minutes, datagram ICMP, /metrics scraped every 15 s.
 *
 * This file runs the section: the memory floor, then full-mesh.ts and shipped.ts; report.ts writes it up.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO, type Ctx } from '../context.js';
import { SHIPPED_RUNTIME_ENV } from '../daemonset.js';
import { readProc } from '../proc.js';
import { fullMesh } from './full-mesh.js';
import type { ScaleParams, ScaleResult } from './params.js';
import { shipped } from './shipped.js';

const AGENT_BUT_KUBE =
  "await import('pino'); await import('./dist/src/agent.js'); await import('./dist/src/probe/local-engine.js'); await import('./dist/src/icmp/open.js');";
/** Each layer loads everything the one before it does; the code runs as an ES module in the repository. */
const LAYERS: ReadonlyArray<readonly [label: string, code: string]> = [
  ['a bare Node', ''],
  ['node:http', "await import('node:http');"],
  [
    '+ the OTel SDK and Prometheus exporter',
    "await import('node:http'); await import('@opentelemetry/sdk-metrics'); await import('@opentelemetry/exporter-prometheus');",
  ],
  ['all the agent loads but the Kubernetes client', AGENT_BUT_KUBE],
  [
    'all the agent loads',
    `${AGENT_BUT_KUBE} await (await import('./dist/src/kube/client.js')).loadKubeClient(); await import('./dist/src/kube/node-watch.js');`,
  ],
];

/** RSS of each layer after 3 s idle, with the shipped NODE_OPTIONS and MALLOC_ARENA_MAX; a layer that exits is noted, not measured. */
async function layerMemory(notes: string[]): Promise<ScaleResult['layers']> {
  const out: ScaleResult['layers'] = [];
  for (const [label, code] of LAYERS) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `${code} setTimeout(() => {}, 60_000);`], {
      cwd: REPO,
      env: { ...SHIPPED_RUNTIME_ENV },
      stdio: 'ignore',
    });
    try {
      await sleep(3000);
      const p = child.pid === undefined ? undefined : readProc(child.pid);
      if (p && child.exitCode === null) out.push({ label, rssKiB: p.rssKiB, anonKiB: p.anonKiB });
      else
        notes.push(
          `memory floor: the process for "${label}" exited (${child.exitCode ?? child.signalCode}) before it was measured; run its imports by hand to see why.`,
        );
    } finally {
      child.kill('SIGKILL');
    }
  }
  return out;
}

/** Runs the section; every agent it started is stopped before it returns. */
export async function scale(ctx: Ctx, params: ScaleParams): Promise<ScaleResult> {
  const notes: string[] = [];
  const layers = await layerMemory(notes);
  const { rows, upserted } = await fullMesh(ctx, params);
  const shippedRows = params.shippedNodes > 0 ? await shipped(ctx, params, upserted, notes) : [];
  return { intervalMs: params.scaleIntervalMs, rows, shipped: shippedRows, notes, layers };
}
