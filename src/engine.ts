import { Worker } from 'node:worker_threads';
import type { IcmpMode } from './config.js';
import type { OpenedSockets } from './icmp/open.js';
import { IcmpPermissionError } from './icmp/socket.js';
import type { Family } from './icmp/packet.js';
import { Prober, type Clock, type Outcome, type Target } from './prober.js';

/** Where probes run: in this thread (tests) or in a worker thread (the agent). */
export interface ProbeEngine {
  /** Opens the sockets; rejects (e.g. IcmpPermissionError) when none can be opened. */
  start(): Promise<EngineInfo>;
  setTargets(targets: readonly Target[]): void;
  /** Stops sending, lets probes in flight end, closes the sockets. */
  stop(): Promise<void>;
}

export interface EngineInfo {
  /** Such as `dgram/ipv4`. */
  readonly sockets: string[];
  readonly missing: Array<{ family: Family; reason: string }>;
}

export interface ProbeSettings {
  readonly intervalMs: number;
  readonly maxProbesPerSecond: number;
  readonly timeoutMs: number;
  readonly payloadBytes: number;
  readonly identifier: number;
  readonly cookie: Uint8Array;
}

function describe(opened: OpenedSockets): EngineInfo {
  return { sockets: [...opened.sockets.values()].map((s) => `${s.mode}/ipv${s.family}`), missing: opened.missing };
}

/** Runs the prober on the caller's event loop; used with fake sockets and clocks in tests. */
export class InProcessEngine implements ProbeEngine {
  private prober: Prober | undefined;
  private opened: OpenedSockets | undefined;

  constructor(
    private readonly settings: ProbeSettings,
    private readonly open: () => OpenedSockets,
    private readonly clock: Clock,
    private readonly onResult: (target: Target, outcome: Outcome) => void,
  ) {}

  async start(): Promise<EngineInfo> {
    this.opened = this.open();
    this.prober = new Prober({ ...this.settings, sockets: this.opened.sockets, clock: this.clock, onResult: this.onResult });
    return describe(this.opened);
  }

  setTargets(targets: readonly Target[]): void {
    this.prober?.setTargets(targets);
  }

  async stop(): Promise<void> {
    await this.prober?.stop();
    for (const socket of this.opened?.sockets.values() ?? []) socket.close();
  }
}

/** Messages between the agent and its probe worker. */
export type ToWorker = { type: 'targets'; targets: Target[] } | { type: 'stop' };

/** One outcome: [target key, 0 success | 1 timeout | 2 error, rtt seconds | reason]. */
export type WireResult = [string, 0, number] | [string, 1, 0] | [string, 2, string];

export type FromWorker =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'failed'; name: string; message: string }
  | { type: 'results'; results: WireResult[] }
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

/**
 * Runs sockets and prober in a worker thread, so that scrapes, GC pauses of the
 * metrics heap and API traffic on the main thread never delay a send or a
 * receive timestamp. Outcomes come back in batches.
 */
export class WorkerEngine implements ProbeEngine {
  private worker: Worker | undefined;
  private targets = new Map<string, Target>();
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly data: WorkerData,
    private readonly onResult: (target: Target, outcome: Outcome) => void,
    /** Called if the worker dies unexpectedly: the agent cannot measure any more. */
    private readonly onCrash: (error: Error) => void,
  ) {}

  start(): Promise<EngineInfo> {
    const worker = new Worker(new URL('./probe-worker.js', import.meta.url), { workerData: this.data });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let started = false;
      worker.on('message', (msg: FromWorker) => {
        switch (msg.type) {
          case 'ready':
            started = true;
            resolve(msg.info);
            break;
          case 'failed': {
            const err = new Error(msg.message);
            err.name = msg.name;
            reject(err);
            break;
          }
          case 'results':
            for (const result of msg.results) {
              // A target removed since the probe was sent has no series to record into.
              const target = this.targets.get(result[0]);
              if (target) this.onResult(target, fromWire(result));
            }
            break;
          case 'stopped':
            break;
        }
      });
      worker.on('error', (err) => {
        if (!started) reject(err);
        else if (!this.stopping) this.onCrash(err);
      });
      worker.on('exit', (code) => {
        if (!started) reject(new Error(`probe worker exited with code ${code} before starting`));
        else if (!this.stopping) this.onCrash(new Error(`probe worker exited with code ${code}`));
      });
    });
  }

  setTargets(targets: readonly Target[]): void {
    this.targets = new Map(targets.map((t) => [t.key, t]));
    this.worker?.postMessage({ type: 'targets', targets: [...targets] } satisfies ToWorker);
  }

  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      const worker = this.worker;
      if (!worker) return resolve();
      worker.once('exit', () => resolve());
      worker.postMessage({ type: 'stop' } satisfies ToWorker);
    });
    return this.stopping;
  }
}

export interface EngineChoice {
  /** The unprivileged datagram engine in a worker thread. */
  readonly dgram: () => ProbeEngine;
  /**
   * The raw-socket engine. It runs on the main thread: raw-socket's native
   * handles crash the process when a worker thread that used them exits.
   */
  readonly raw: () => ProbeEngine;
}

/**
 * Starts the engine the mode asks for. `auto` prefers datagram sockets (no
 * capability, kernel timestamps) and falls back to raw when they are not allowed.
 */
export async function startEngine(mode: IcmpMode, choice: EngineChoice): Promise<{ engine: ProbeEngine; info: EngineInfo }> {
  const attempt = async (make: () => ProbeEngine) => {
    const engine = make();
    try {
      return { engine, info: await engine.start() };
    } catch (err) {
      await engine.stop().catch(() => {});
      throw err;
    }
  };
  if (mode === 'dgram') return attempt(choice.dgram);
  if (mode === 'raw') return attempt(choice.raw);
  try {
    return await attempt(choice.dgram);
  } catch (dgramError) {
    try {
      return await attempt(choice.raw);
    } catch (rawError) {
      if ((dgramError as Error).name === 'IcmpPermissionError' && (rawError as Error).name === 'IcmpPermissionError') {
        throw new IcmpPermissionError(
          'no ICMP socket is allowed: let the process group send unprivileged ICMP (net.ipv4.ping_group_range; ' +
            'Kubernetes: the pod sysctl in deploy/base/daemonset.yaml) or run as root with CAP_NET_RAW. ' +
            `Datagram: ${(dgramError as Error).message}. Raw: ${(rawError as Error).message}`,
          { cause: rawError },
        );
      }
      throw (dgramError as Error).name === 'IcmpPermissionError' ? rawError : dgramError;
    }
  }
}
