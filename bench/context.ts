/** What run.ts hands every section that needs namespaces, and the progress line all of them write. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FaultControl } from '../test/support/fault-client.js';
import type { Cluster, ClusterNode } from '../test/support/netns.js';
import type { NsHttp } from './http-client.js';

/** The repository (this file runs from dist/bench/). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Ctx {
  cluster: Cluster;
  /** The fake API server (and HTTP hands) in `src`. */
  control: FaultControl;
  /** Timed HTTP from inside `src`. */
  http: NsHttp;
  /** The run's temporary folder. */
  dir: string;
  /** Where the agents run. */
  src: ClusterNode;
  /** The namespace answering the many /32s (kernel echo replies). */
  farm: ClusterNode;
  farmAddresses: string[];
  profileDir: string | undefined;
  responderNodes: ClusterNode[];
}

const started = Date.now();

/** Seconds since the run started. */
export function runSeconds(): number {
  return (Date.now() - started) / 1000;
}

/** One progress line on stderr (stdout carries the report). */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${runSeconds().toFixed(0).padStart(4)} s] ${msg}\n`);
}
