/** Section 5, API load: its parameters, and the shape of its results (what run.ts measures, report.ts writes). */
import type { LoadCount } from '../../test/fake-apiserver/index.js';
import type { Reads } from './server.js';

/** The section's parameters. */
export interface ApiParams {
  apiSizes: number[];
  /** The steady-state window, s; the churn window is as long. */
  apiWindowSeconds: number;
  /** Followers measured at once (each with its own token). */
  apiFollowers: number;
  /** Each agent's CPU limit in millicores, as a pod's limits.cpu (the DaemonSet's is 200); 0: none. */
  apiCpuLimitM: number;
  /** V8 heaps (--max-old-space-size, MiB) of the followers and the controllers instead of the manifests'; undefined: as shipped. */
  apiHeapMiB?: { agent: number; controller: number } | undefined;
}

/** The largest size the section runs (the goal). */
export const API_MAX_NODES = 100_000;
/** The largest size with a direct-mode agent (it watches every Node and re-plans on each update). */
export const DIRECT_MAX = 5000;

/** The section's parameters from the command line. */
export function apiParams(quick: boolean, sizes: readonly number[] | undefined, cpuLimitM = 0, heapMiB?: readonly number[]): ApiParams {
  const p: ApiParams = {
    apiSizes: sizes ? [...sizes] : quick ? [100, 1000] : [100, 1000, 5000],
    apiWindowSeconds: quick ? 30 : 60,
    apiFollowers: 3,
    apiCpuLimitM: cpuLimitM,
    apiHeapMiB: heapMiB ? { agent: heapMiB[0]!, controller: heapMiB[1]! } : undefined,
  };
  if (heapMiB && (heapMiB.length !== 2 || !heapMiB.every((h) => Number.isInteger(h) && h >= 16)))
    throw new Error(`--api-heap: ${heapMiB.join(',')} is not AGENT_MIB,CONTROLLER_MIB (whole MiB, at least 16 each)`);
  if (!Number.isInteger(p.apiCpuLimitM) || p.apiCpuLimitM < 0) throw new Error(`--api-cpu-limit: ${cpuLimitM} is not a whole number of millicores`);
  for (const n of p.apiSizes)
    if (!Number.isInteger(n) || n < p.apiFollowers + 1 || n > API_MAX_NODES)
      throw new Error(`--api-sizes: ${n} is not ${p.apiFollowers + 1}..${API_MAX_NODES}`);
  return p;
}

/** Addresses the section needs on the farm's loopback: one per node, up to what the farm can hold (the rest are routed, unanswered: see `addressOf`). */
export function apiAddresses(p: ApiParams): number {
  return Math.min(FARM_ADDRESSES_MAX, Math.max(...p.apiSizes));
}
const FARM_ADDRESSES_MAX = 5000;
/** mentat's namespace, where the controller's lease, the index and the shards live. */
export const NAMESPACE = 'mentat';
/** Prometheus' scrape interval, as the followers are scraped in their window. */
export const SCRAPE_EVERY_MS = 15_000;

/** Requests and bytes the API server sent one process, by resource. */
export interface Traffic {
  bytes: number;
  requests: number;
  byResource: Record<string, LoadCount>;
}

/** Traffic of one process from its start until it was ready (an agent: /readyz 200; the leader: it had published). */
export interface StartCost extends Traffic {
  ms: number;
}

/** One process over a window: what the API server sent it per second, its CPU and memory. */
export interface Figures extends Traffic {
  cores: number;
  rssMiB: number;
  hwmMiB: number;
}

/** One size: every process, every phase. */
export interface ApiRow {
  nodes: number;
  /** One Node as stored, the index ConfigMap, the mean shard ConfigMap, bytes of JSON. */
  nodeBytes: number;
  indexBytes: number;
  shardBytes: number;
  /** Seconds to create the Nodes in the fake, and its resident memory once they were there. */
  createSeconds: number;
  apiServerRssMiB: number;
  windowSeconds: number;
  /** Kubelet status updates per second during the windows. */
  heartbeatsPerSecond: number;
  /** The index refresh period at this size (src/kube/list-writer.ts), s. */
  refreshSeconds: number;
  /** One agent in direct mode, alone (only up to DIRECT_MAX nodes). */
  direct?: { steady: Figures; start: StartCost };
  /** Steady state, per second. */
  controller: Figures;
  standby: Figures;
  followers: Figures[];
  /** Every scrape of every follower in the steady-state window, ms. */
  metricsMs: number[];
  /** The first controller: from its start until it had published every node. */
  controllerStart: StartCost;
  /** A follower restarted, as a rolling update restarts every agent; its reads, and those asking for resourceVersion=0. */
  followerStart: StartCost & Reads;
  /** The old leader back as the standby. */
  standbyStart: StartCost;
  /** The leader restarted: SIGTERM until the standby held the lease (takeoverMs) and had published (ms); what it and each follower received meanwhile. */
  handover: (StartCost & { takeoverMs: number; followers: Traffic }) | undefined;
  /** One node added: what each received until every follower knew it, beyond its steady traffic; ms until every follower knew it. */
  change: { ms: number; controller: Traffic; followers: Traffic[] };
  /** One join or leave per second: rates over the churn window (steady traffic included), and the time until every follower had the final list. */
  churn: { seconds: number; events: number; controller: Figures; followers: Figures[]; settleMs: number };
  /** What the controllers said about the election, in order. */
  leaseLog: string[];
  notes: string[];
}

/** The section: a row per size that completed. */
export interface ApiResult {
  rows: ApiRow[];
  /** A list page of 100 Nodes as the fake serves them, plain and gzipped, and gzipped with random digests and IDs. */
  compression: { plainBytes: number; gzipBytes: number; realisticGzipBytes: number };
  windowSeconds: number;
  heartbeatPeriodMs: number;
  /** The agents' CPU limit, millicores; 0: none. */
  cpuLimitM: number;
  heapMiB?: { agent: number; controller: number } | undefined;
  notes: string[];
}
