import type { Clock, Target } from '../types.js';
import type { EngineEvents, EngineInfo, ProbeEngine, ProbeSettings } from './engine.js';
import { startProbing, type Probing } from './probing.js';

/**
 * Probes on the agent's own event loop. For datagram sockets only: the addon
 * reads the clock inside the send call, right before sendto, and the kernel
 * stamps each reply as it arrives, so a busy loop (a scrape, a GC pause) can
 * delay a probe or the reading of its reply but not change the time measured.
 * A worker thread for them cost a second V8 isolate, ~30 MiB of a 128 MiB pod.
 * raw-socket stamps replies in user space: raw mode uses ProcessEngine.
 */
export class InlineEngine implements ProbeEngine {
  private probing: Probing | undefined;

  constructor(
    private readonly settings: ProbeSettings,
    private readonly clock: Clock,
    private readonly events: EngineEvents,
  ) {}

  /** A socket that cannot be opened rejects (never throws), as the ProbeEngine contract says. */
  start(): Promise<EngineInfo> {
    try {
      this.probing = startProbing('dgram', this.settings, this.clock, this.events);
      return Promise.resolve(this.probing.info);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  setTargets(targets: readonly Target[], sweep?: readonly Target[]): void {
    this.probing?.setTargets(targets, sweep);
  }

  stop(): Promise<void> {
    return this.probing?.stop() ?? Promise.resolve();
  }
}
