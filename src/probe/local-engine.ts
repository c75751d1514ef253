import type { OpenedSockets } from '../icmp/open.js';
import { SocketFailure } from '../icmp/socket.js';
import type { Clock, Target } from '../types.js';
import type { EngineEvents, EngineInfo, ProbeEngine, ProbeSettings } from './engine.js';
import { Prober } from './prober.js';

/**
 * Probes due within 50 ms (at most 5 % of the interval) leave together: a wake-up of Node's event
 * loop costs about 0.1 ms of CPU here, as much as fping spends on a whole probe, and one per send
 * and one per reply was most of the agent's cost per probe (bench: section 2).
 */
export const SEND_BATCH_MS = 50;

interface Running {
  readonly prober: Prober;
  readonly opened: OpenedSockets;
  stopping: Promise<void> | undefined;
}

/**
 * Sockets and a prober on the event loop that started them: the agent's own
 * for datagram sockets, the probe process's for raw ones (probe-process.ts).
 *
 * Datagram sockets run inline: the addon reads the clock inside the send call,
 * right before sendto, and the kernel stamps each reply as it arrives, so a busy
 * loop (a scrape, a GC pause) can delay a probe or the reading of its reply but
 * not change the time measured. A worker thread for them cost a second V8
 * isolate, ~30 MiB of a 128 MiB pod. raw-socket stamps replies in user space:
 * raw mode runs this engine in a child process (ProcessEngine).
 */
export class LocalEngine implements ProbeEngine {
  private running: Running | undefined;

  constructor(
    /** Opens one socket per family: throws IcmpPermissionError (or another error) when none can be opened. */
    private readonly openSockets: () => OpenedSockets,
    private readonly settings: ProbeSettings,
    private readonly clock: Clock,
    private readonly events: EngineEvents,
  ) {}

  /**
   * Opens the sockets and starts probing before it returns; a socket that cannot
   * be opened rejects (never throws), as the ProbeEngine contract says.
   */
  start(): Promise<EngineInfo> {
    let opened: OpenedSockets;
    try {
      opened = this.openSockets();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const { events } = this;
    const prober = new Prober({
      ...this.settings,
      sendBatchMs: Math.min(SEND_BATCH_MS, this.settings.intervalMs / 20),
      sockets: opened.sockets,
      clock: this.clock,
      onResult: events.onResult,
      onDiscard: (_target, reason) => events.onDiscard?.(reason, 1),
      onSocketError: (family, error) => {
        const message = `ICMPv${family} socket: ${error.message}`;
        if (error instanceof SocketFailure) events.onSocketFailure?.(message);
        else events.onSocketError(message);
      },
    });
    this.running = { prober, opened, stopping: undefined };
    return Promise.resolve({ sockets: [...opened.sockets.values()].map((s) => `${s.mode}/ipv${s.family}`), missing: opened.missing });
  }

  setTargets(targets: readonly Target[], sweep?: readonly Target[]): void {
    this.running?.prober.setTargets(targets, sweep);
  }

  stop(): Promise<void> {
    const running = this.running;
    if (!running) return Promise.resolve();
    return (running.stopping ??= running.prober.stop().then(async () => {
      // Native handles are released before the probe process exits, or it crashes at exit.
      await Promise.all([...running.opened.sockets.values()].map((socket) => socket.close()));
    }));
  }
}
