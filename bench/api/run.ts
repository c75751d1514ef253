/**
 * Section 5, API load: what mentat costs the Kubernetes API server, with real processes (the built
 * dist/src/main.js) against the fake API server (server.ts, inside the agents' namespace),
 * each process with a token of its own so that every request and every byte sent back is counted
 * per process.
 *
 * At each size, N kubelet-sized Nodes whose kubelets post status every 5 minutes. Up to DIRECT_MAX
 * nodes, first one agent in direct mode (no POD_NAMESPACE: it lists and watches Nodes itself, as
 * every agent did before the controller), alone. Then the design as shipped: one controller
 * (MENTAT_ROLE=controller, deploy/base/controller.yaml's environment) that takes the election lease,
 * watches Nodes and writes the index and the shards; a second controller replica on standby; and
 * followers (the DaemonSet's environment) that watch the index and GET the shards that changed.
 * Measured: the steady state, one node joining, a minute of churn (one join or leave per second), a
 * follower restarted, and the controller leader restarted (the standby takes over).
 *
 * This file runs the section, a size at a time (measure.ts, with harness.ts); report.ts writes it up.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { KUBELET_STATUS_PERIOD_MS } from '../../test/fake-apiserver/heartbeats.js';
import { makeRealisticNode } from '../../test/fake-apiserver/index.js';
import { progress, type Ctx } from '../context.js';
import { measure } from './measure.js';
import type { ApiParams, ApiResult, ApiRow } from './params.js';

/** Runs the section, smallest size first; a size that fails is reported as such and the next one runs. */
export async function api(ctx: Ctx, params: ApiParams): Promise<ApiResult> {
  const rows: ApiRow[] = [];
  const notes: string[] = [];
  for (const n of [...params.apiSizes].sort((a, b) => a - b)) {
    try {
      rows.push(await measure(ctx, params, n));
    } catch (err) {
      progress(`api: ${n} nodes failed: ${(err as Error).message}`);
      notes.push(`${n} nodes: the measurement did not complete: ${(err as Error).message}`);
    }
  }
  return {
    rows,
    compression: listPageCompression(),
    windowSeconds: params.apiWindowSeconds,
    heartbeatPeriodMs: KUBELET_STATUS_PERIOD_MS,
    cpuLimitM: params.apiCpuLimitM,
    heapMiB: params.apiHeapMiB,
    notes,
  };
}

/** How well a page of the fake's Nodes compresses, and how well it would with the random digests and IDs of real nodes. */
function listPageCompression(): ApiResult['compression'] {
  const page = (nodes: readonly unknown[]) =>
    JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '1000', continue: 'x' }, items: nodes });
  const nodes = Array.from({ length: 100 }, (_, i) => makeRealisticNode(`node-${String(i).padStart(4, '0')}`, `10.0.${i >> 8}.${i & 255}`, i));
  const hex = (chars: number) =>
    randomBytes(Math.ceil(chars / 2))
      .toString('hex')
      .slice(0, chars);
  // Every run of 17+ zero-padded hex digits (digests, instance, machine and boot IDs) made random.
  const random = nodes.map((n) => JSON.parse(JSON.stringify(n).replace(/[0-9a-f]{17,}/g, (m) => hex(m.length))) as unknown);
  const plain = page(nodes);
  return {
    plainBytes: Buffer.byteLength(plain),
    gzipBytes: gzipSync(plain, { level: 1 }).length,
    realisticGzipBytes: gzipSync(page(random), { level: 1 }).length,
  };
}
