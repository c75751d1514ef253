import { openIcmpSockets, type SocketKind } from '../icmp/open.js';
import { SocketFailure } from '../icmp/socket.js';
import type { Clock, Target } from '../types.js';
import type { EngineEvents, EngineInfo, ProbeSettings } from './engine.js';
import { Prober } from './prober.js';

/** Sockets and a prober, running on the event loop that called startProbing. */
export interface Probing {
  readonly info: EngineInfo;
  setTargets(targets: readonly Target[], sweep?: readonly Target[]): void;
  /** Stops sending, lets probes in flight end, closes the sockets. */
  stop(): Promise<void>;
}

/**
 * Opens the sockets of `kind` and starts a prober on them.
 * @throws IcmpPermissionError (or another error) when no socket can be opened
 */
export function startProbing(kind: SocketKind, settings: ProbeSettings, clock: Clock, events: EngineEvents): Probing {
  const opened = openIcmpSockets(kind, () => clock.now());
  const prober = new Prober({
    ...settings,
    sockets: opened.sockets,
    clock,
    onResult: events.onResult,
    onDiscard: (_target, reason) => events.onDiscard?.(reason, 1),
    onSocketError: (family, error) => {
      const message = `ICMPv${family} socket: ${error.message}`;
      if (error instanceof SocketFailure) events.onSocketFailure?.(message);
      else events.onSocketError(message);
    },
  });
  let stopping: Promise<void> | undefined;
  return {
    info: { sockets: [...opened.sockets.values()].map((s) => `${s.mode}/ipv${s.family}`), missing: opened.missing },
    setTargets: (targets, sweep) => prober.setTargets(targets, sweep),
    stop: () =>
      (stopping ??= prober.stop().then(async () => {
        // Native handles are released before the probe process exits, or it crashes at exit.
        await Promise.all([...opened.sockets.values()].map((socket) => socket.close()));
      })),
  };
}
