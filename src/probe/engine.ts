import type { IcmpMode } from '../config.js';
import { IcmpPermissionError } from '../icmp/socket.js';
import type { Family, Outcome, Target } from '../types.js';
import type { DiscardReason } from './prober.js';

/** Where probes run: the agent's event loop (dgram), a child process (raw), a fake in tests. */
export interface ProbeEngine {
  /** Opens the sockets; rejects (e.g. IcmpPermissionError) when none can be opened. */
  start(): Promise<EngineInfo>;
  /** `targets` are probed every interval, `sweep` once per sweep interval. */
  setTargets(targets: readonly Target[], sweep?: readonly Target[]): void;
  /** Stops sending, lets probes in flight end, closes the sockets. */
  stop(): Promise<void>;
}

/** What an engine reports while it runs. */
export interface EngineEvents {
  readonly onResult: (target: Target, outcome: Outcome) => void;
  /** A socket error outside any probe (the socket stays open; probing goes on). */
  readonly onSocketError: (message: string) => void;
  /** A socket stopped reading for good (its poll failed): nothing is measured through it until a restart. */
  readonly onSocketFailure?: (message: string) => void;
  /** Probes that ended without a data point, by why: to be counted, never recorded as loss. */
  readonly onDiscard?: (reason: DiscardReason, count: number) => void;
}

export interface EngineInfo {
  /** Such as `dgram/ipv4`. */
  readonly sockets: string[];
  /** In auto mode: why datagram ICMP was not used (raw is the fallback). */
  readonly fellBack?: string;
  readonly missing: Array<{ family: Family; reason: string }>;
}

export interface ProbeSettings {
  readonly intervalMs: number;
  readonly sweepIntervalMs: number;
  readonly maxProbesPerSecond: number;
  readonly timeoutMs: number;
  readonly payloadBytes: number;
  readonly identifier: number;
  readonly cookie: Uint8Array;
}

export interface EngineChoice {
  /** The unprivileged datagram-socket engine. */
  readonly dgram: () => ProbeEngine;
  /** The raw-socket engine. */
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
    const reason = dgramError instanceof IcmpPermissionError ? dgramError.reason : (dgramError as Error).message;
    try {
      const raw = await attempt(choice.raw);
      return { engine: raw.engine, info: { ...raw.info, fellBack: reason } };
    } catch (rawError) {
      if (dgramError instanceof IcmpPermissionError && rawError instanceof IcmpPermissionError) {
        throw new IcmpPermissionError(
          `no ICMP socket is allowed. Datagram: ${dgramError.reason}. Raw: ${rawError.reason}`,
          'let the process group use datagram ICMP (net.ipv4.ping_group_range; Kubernetes: the pod sysctl in deploy/base/daemonset.yaml), or run as root with CAP_NET_RAW',
          { cause: rawError },
        );
      }
      throw dgramError instanceof IcmpPermissionError ? rawError : dgramError;
    }
  }
}
