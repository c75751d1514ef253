import type { EngineInfo, ProbeEngine, ProbeSettings } from './engine.js';
import { openIcmpSockets, type SocketKind } from './icmp/open.js';
import { Prober, type Clock, type Outcome, type Target } from './prober.js';

/** Sockets and a prober, running on the event loop that called startProbing. */
export interface Probing {
  readonly info: EngineInfo;
  setTargets(targets: readonly Target[]): void;
  /** Stops sending, lets probes in flight end, closes the sockets. */
  stop(): Promise<void>;
}

/**
 * Opens the sockets of `kind` and starts a prober on them.
 * @throws IcmpPermissionError (or another error) when no socket can be opened
 */
export function startProbing(kind: SocketKind, settings: ProbeSettings, clock: Clock, onResult: (target: Target, outcome: Outcome) => void): Probing {
  const opened = openIcmpSockets(kind, clock.now);
  const prober = new Prober({ ...settings, sockets: opened.sockets, clock, onResult });
  let stopping: Promise<void> | undefined;
  return {
    info: { sockets: [...opened.sockets.values()].map((s) => `${s.mode}/ipv${s.family}`), missing: opened.missing },
    setTargets: (targets) => prober.setTargets(targets),
    stop: () =>
      (stopping ??= prober.stop().then(async () => {
        // Native handles are released before the probe process exits, or it crashes at exit.
        await Promise.all([...opened.sockets.values()].map((socket) => socket.close()));
      })),
  };
}

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
    private readonly onResult: (target: Target, outcome: Outcome) => void,
  ) {}

  // async: a socket that cannot be opened rejects, as the ProbeEngine contract says.
  async start(): Promise<EngineInfo> {
    this.probing = startProbing('dgram', this.settings, this.clock, this.onResult);
    return this.probing.info;
  }

  setTargets(targets: readonly Target[]): void {
    this.probing?.setTargets(targets);
  }

  stop(): Promise<void> {
    return this.probing?.stop() ?? Promise.resolve();
  }
}
