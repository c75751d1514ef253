/**
 * The messages between the agent (ProcessEngine, process-engine.ts) and its raw-mode probe process
 * (probe-process.ts), over the IPC channel of `fork` with advanced serialization.
 */
import type { Outcome, Target } from '../types.js';
import type { EngineInfo, ProbeSettings } from './engine.js';
import type { DiscardReason } from './prober.js';

/** What the probe process is started with (the `init` message). */
export interface ProbeProcessData {
  readonly settings: ProbeSettings;
}

/** From the agent to its probe process. */
export type ToProbeProcess = { type: 'init'; data: ProbeProcessData } | { type: 'targets'; targets: Target[]; sweep: Target[] } | { type: 'stop' };

/** One outcome: [target key, 0 success | 1 timeout | 2 error, rtt seconds | reason]. */
export type WireResult = [string, 0, number] | [string, 1, 0] | [string, 2, string];

/** From the probe process to the agent. */
export type FromProbeProcess =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'failed'; name: string; message: string; reason?: string; remedy?: string }
  | { type: 'results'; results: WireResult[] }
  | { type: 'socket-error'; message: string }
  | { type: 'discarded'; reason: DiscardReason; count: number }
  | { type: 'stopped' };

export function toWire(key: string, outcome: Outcome): WireResult {
  if (outcome.kind === 'success') return [key, 0, outcome.rttSeconds];
  if (outcome.kind === 'timeout') return [key, 1, 0];
  return [key, 2, outcome.reason];
}

export function fromWire(result: WireResult): Outcome {
  if (result[1] === 0) return { kind: 'success', rttSeconds: result[2] };
  if (result[1] === 1) return { kind: 'timeout' };
  return { kind: 'error', reason: result[2] };
}
