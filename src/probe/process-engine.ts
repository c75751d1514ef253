import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IcmpPermissionError } from '../icmp/socket.js';
import type { Target } from '../types.js';
import type { EngineEvents, EngineInfo, ProbeEngine } from './engine.js';
import { fromWire, type FromProbeProcess, type ProbeProcessData, type ToProbeProcess } from './process-protocol.js';

/** The probe process's entry point, beside this module once built. */
const PROBE_PROCESS = new URL('./probe-process.js', import.meta.url);

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
    private readonly data: ProbeProcessData,
    private readonly events: EngineEvents,
    /** Called if the probe process dies unexpectedly: the agent cannot measure any more. */
    private readonly onCrash: (error: Error) => void,
  ) {}

  private open(): ChildProcess {
    // The child ignores terminal signals (the agent stops it) and exits when the agent goes away.
    const child = fork(fileURLToPath(PROBE_PROCESS), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.send({ type: 'init', data: this.data } satisfies ToProbeProcess);
    return child;
  }

  start(): Promise<EngineInfo> {
    const channel = this.open();
    this.channel = channel;
    return new Promise((resolve, reject) => {
      let started = false;
      channel.on('message', (msg: FromProbeProcess) => {
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

  private send(message: ToProbeProcess): void {
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
