import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IcmpPermissionError } from '../icmp/socket.js';
import type { Outcome, Target } from '../types.js';
import type { EngineEvents, EngineInfo, ProbeEngine, ProbeSettings } from './engine.js';
import type { DiscardReason } from './prober.js';

/** Messages between the agent and its probe process. */
export type ToWorker = { type: 'init'; data: WorkerData } | { type: 'targets'; targets: Target[]; sweep: Target[] } | { type: 'stop' };

/** One outcome: [target key, 0 success | 1 timeout | 2 error, rtt seconds | reason]. */
export type WireResult = [string, 0, number] | [string, 1, 0] | [string, 2, string];

export type FromWorker =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'failed'; name: string; message: string; reason?: string; remedy?: string }
  | { type: 'results'; results: WireResult[] }
  | { type: 'socket-error'; message: string }
  | { type: 'discarded'; reason: DiscardReason; count: number }
  | { type: 'stopped' };

export interface WorkerData {
  readonly settings: ProbeSettings;
}

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

const PROBE_WORKER = new URL('./probe-process.js', import.meta.url);

/**
 * Runs raw sockets and their prober in a child process. raw-socket stamps
 * replies in user space, at its socket callback: on the agent's event loop a
 * scrape or a GC pause would be measured as latency. (It cannot use a worker
 * thread: it registers its handles on the process's default loop.) Outcomes
 * come back in batches.
 */
export class ProcessEngine implements ProbeEngine {
  private channel: ChildProcess | undefined;
  private exited = false;
  private targets = new Map<string, Target>();
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly data: WorkerData,
    private readonly events: EngineEvents,
    /** Called if the probe process dies unexpectedly: the agent cannot measure any more. */
    private readonly onCrash: (error: Error) => void,
  ) {}

  private open(): ChildProcess {
    // The child ignores terminal signals (the agent stops it) and exits when the agent goes away.
    const child = fork(fileURLToPath(PROBE_WORKER), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.send({ type: 'init', data: this.data } satisfies ToWorker);
    return child;
  }

  start(): Promise<EngineInfo> {
    const channel = this.open();
    this.channel = channel;
    return new Promise((resolve, reject) => {
      let started = false;
      channel.on('message', (msg: FromWorker) => {
        switch (msg.type) {
          case 'ready':
            started = true;
            resolve(msg.info);
            break;
          case 'failed': {
            // An IcmpPermissionError crosses the process boundary as what it was, so auto mode can tell it apart.
            if (msg.name === 'IcmpPermissionError') {
              reject(new IcmpPermissionError(msg.reason ?? msg.message, msg.remedy));
              break;
            }
            const err = new Error(msg.message);
            err.name = msg.name;
            reject(err);
            break;
          }
          case 'results':
            for (const result of msg.results) {
              // A target removed since the probe was sent has no series to record into.
              const target = this.targets.get(result[0]);
              if (target) this.events.onResult(target, fromWire(result));
            }
            break;
          case 'socket-error':
            this.events.onSocketError(msg.message);
            break;
          case 'discarded':
            this.events.onDiscard?.(msg.reason, msg.count);
            break;
          case 'stopped':
            break;
        }
      });
      channel.on('error', (err) => {
        if (!started) reject(err);
        else if (!this.stopping) this.onCrash(err);
      });
      channel.on('exit', (code) => {
        this.exited = true;
        if (!started) reject(new Error(`raw-mode probe process exited with code ${code} before starting`));
        else if (!this.stopping) this.onCrash(new Error(`raw-mode probe process exited with code ${code}`));
      });
    });
  }

  setTargets(targets: readonly Target[], sweep: readonly Target[] = []): void {
    this.targets = new Map([...sweep, ...targets].map((t) => [t.key, t]));
    this.send({ type: 'targets', targets: [...targets], sweep: [...sweep] });
  }

  private send(message: ToWorker): void {
    if (this.channel?.connected) this.channel.send(message);
  }

  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      const channel = this.channel;
      if (!channel || this.exited) return resolve();
      channel.once('exit', () => resolve());
      this.send({ type: 'stop' });
    });
    return this.stopping;
  }
}
