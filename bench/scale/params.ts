/** Section 3, scale: its parameters, and the shape of its results (what run.ts measures, report.ts writes). */
import type { ProfileSummary } from '../profile.js';

/** The section's parameters. */
export interface ScaleParams {
  /** Targets of the full-mesh rows; 1 target: the agent's floor (Node, the dependencies, discovery, one series). */
  scaleSizes: number[];
  scaleIntervalMs: number;
  scaleSeconds: number;
  scaleScrapes: number;
  scaleScrapeGapMs: number;
  /** Nodes (besides the first agent's own) of the controller and agents run as shipped; 0: no such rows. */
  shippedNodes: number;
  /** Its measured window; a scrape every SCRAPE_EVERY_S inside it. */
  shippedSeconds: number;
}

/** The section's parameters from the command line. */
export function scaleParams(quick: boolean, sizes: readonly number[] | undefined, shippedNodes: number | undefined): ScaleParams {
  const p: ScaleParams = {
    scaleSizes: sizes ? [...sizes] : [1, 100, 1000, 5000],
    scaleIntervalMs: 1000,
    scaleSeconds: quick ? 10 : 40,
    scaleScrapes: quick ? 5 : 10,
    scaleScrapeGapMs: 500,
    shippedNodes: shippedNodes ?? 5000,
    shippedSeconds: quick ? 30 : 60,
  };
  for (const n of p.scaleSizes) if (!Number.isInteger(n) || n < 1 || n > 5000) throw new Error(`--sizes: ${n} is not 1..5000`);
  if (!Number.isInteger(p.shippedNodes) || p.shippedNodes < 0 || p.shippedNodes > 5000) throw new Error(`--shipped-nodes: ${p.shippedNodes} is not 0..5000`);
  return p;
}

/** Addresses the section needs on the farm's loopback. */
export function scaleAddresses(p: ScaleParams): number {
  return Math.max(...p.scaleSizes, p.shippedNodes);
}

/** Prometheus' default scrape interval, for the "cores with scrapes" figures. */
export const SCRAPE_EVERY_S = 15;

/** One full-mesh row. */
export interface ScaleRow {
  targets: number;
  /** Agent start to /readyz 200, ms. */
  readyMs: number;
  /** Targets with at least one probe counted one interval + 1 s after ready. */
  probedAtStart: number;
  /** Quiet window for CPU and RSS, s. */
  windowSeconds: number;
  /** Window of the probe counters (request to request), s. */
  counterSeconds: number;
  probes: number;
  expected: number;
  perTargetMin: number;
  perTargetMax: number;
  /** Targets with no probe in the window. */
  missed: number;
  timeouts: number;
  errors: number;
  cpuSeconds: number;
  /** utime part of cpuSeconds. */
  userSeconds: number;
  rssMedianKiB: number;
  rssMaxKiB: number;
  /** Two seconds after the timed scrapes. */
  rssAfterScrapesKiB: number;
  anonAfterScrapesKiB: number;
  hwmKiB: number;
  threads: number;
  scrapeMs: number[];
  scrapeBytes: number;
  series: number;
  /** CPU seconds the scrape phase cost beyond the quiet rate, per scrape. */
  cpuPerScrape: number;
  /** Timeouts while the scrapes ran (they share the main thread with nothing of the prober in dgram mode). */
  scrapeTimeouts: number;
  scrapeProbes: number;
  stopMs: number;
  stopCode: number | null;
  sockets: string[] | undefined;
  /** On-CPU seconds by thread name over the quiet window, and over the timed scrapes. */
  threadsQuiet: Array<{ thread: string; seconds: number }>;
  threadsScrapes: Array<{ thread: string; seconds: number }>;
  profiles: ProfileSummary[];
}

/** An agent as shipped, beside the controller, at `nodes` kubelet-sized Nodes besides the first agent's own. */
export interface ShippedRow {
  nodes: number;
  /** The settings it ran with (the DaemonSet's environment; the kubeconfig and port left out). */
  env: Record<string, string>;
  /** Its node (NODE_NAME). */
  agent: string;
  readyMs: number;
  /** Where its node list came from at each scrape of the window (mentat_node_source: published, fallback, direct; '?': no such gauge). */
  nodeSources: string[];
  /** From mentat_targets at the end of the window. */
  targets: Record<string, number>;
  /** Nodes probed every interval (probed + suspect + outlier), and the interval and sweep it ran with. */
  everyInterval: number;
  /** The mesh its settings give at this size: MENTAT_MESH, and what auto makes of it. */
  mesh: string;
  intervalMs: number;
  sweepIntervalMs: number;
  windowSeconds: number;
  /** Between the scrapes that bracket the window (request to request), s. */
  counterSeconds: number;
  probes: number;
  expectedProbes: number;
  timeouts: number;
  sweepProbes: number;
  expectedSweepProbes: number;
  cpuSeconds: number;
  userSeconds: number;
  /** Scrapes inside the CPU window (one every SCRAPE_EVERY_S). */
  scrapesInWindow: number;
  scrapeMs: number[];
  scrapeBytes: number;
  series: number;
  rssMedianKiB: number;
  rssMaxKiB: number;
  anonKiB: number;
  hwmKiB: number;
  /** The controller's start until it led and had published every Node, ms (the same for each agent of a run). */
  controllerPublishedMs: number;
  /** Node status updates the fake kubelets made during the run, and their period. */
  heartbeats: number;
  heartbeatPeriodMs: number;
  stopMs: number;
  stopCode: number | null;
  sockets: string[] | undefined;
  threads: Array<{ thread: string; seconds: number }>;
}

/** The section: the full-mesh rows, the agents as shipped, the memory floor. */
export interface ScaleResult {
  intervalMs: number;
  rows: ScaleRow[];
  /** The agents as shipped, beside the controller: the first, then a second. */
  shipped: ShippedRow[];
  notes: string[];
  /** Processes that only load part of what the agent loads, then idle: what each layer costs. */
  layers: Array<{ label: string; rssKiB: number; anonKiB: number }>;
}
