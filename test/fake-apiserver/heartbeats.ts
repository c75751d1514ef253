/**
 * Kubelet-like node status updates for the fake API server: every node's status is rewritten once
 * per period (the kubelet's nodeStatusReportFrequency, 5 min by default when node leases carry the
 * liveness), each node at its own phase, spread evenly over the period, so that watchers of Nodes
 * see the steady MODIFIED traffic a real cluster sends them.
 */
import type { Clock } from '../../src/types.js';
import type { FakeApiServer } from './server.js';
import type { StoredNode, StoredObject } from './resources.js';

/** The kubelet's default nodeStatusReportFrequency. */
export const KUBELET_STATUS_PERIOD_MS = 5 * 60_000;
/** Updates falling due closer together than this are made in one timer callback. */
const MIN_TICK_MS = 10;

/** Every field has a default. */
export interface HeartbeatOptions {
  /** How often each node's status is rewritten; default 5 min. */
  periodMs?: number;
  /** Nodes to update; default every node, re-read at the start of each period. */
  names?: readonly string[];
  /** Default: performance.now() and real timers (unref'ed). */
  clock?: Clock;
}

/** What the heartbeats need of the server: the nodes, and a cheap way to rewrite one. */
type HeartbeatTarget = Pick<FakeApiServer, 'nodeNames' | 'updateObject'>;

/** A running generator. */
export interface Heartbeats {
  /** Status updates made so far (each a MODIFIED event with a new resourceVersion). */
  readonly beats: number;
  /** Idempotent. */
  stop(): void;
}

const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, delayMs) => setTimeout(fn, delayMs).unref(),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** RFC 3339 to the second, as metav1.Time is written. */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

/**
 * Starts rewriting `status.conditions[].lastHeartbeatTime` of each node once per `periodMs`. Node i
 * of N is due at i/N of the period; updates that fall due while the process was busy are caught up
 * at once, so the rate holds on average. A node deleted meanwhile is skipped.
 */
export function startNodeHeartbeats(server: HeartbeatTarget, opts: HeartbeatOptions = {}): Heartbeats {
  const periodMs = opts.periodMs ?? KUBELET_STATUS_PERIOD_MS;
  if (!(periodMs > 0)) throw new Error(`startNodeHeartbeats: periodMs must be > 0, got ${periodMs}`);
  const clock = opts.clock ?? realClock;
  const fixed = opts.names;
  const startedAt = clock.now();
  const writer = heartbeatWriter(server, startedAt);
  let names: readonly string[] = fixed ?? server.nodeNames();
  let cycleStart = startedAt;
  let i = 0;
  /** Whether `names` was read for the period that began at cycleStart. */
  let current = true;
  let timer: unknown;
  let stopped = false;

  const run = (): void => {
    if (stopped) return;
    const now = clock.now();
    let nextDue: number;
    for (;;) {
      if (i >= names.length) {
        // The next period begins where the last one ends, or now if there was nothing to update.
        cycleStart = names.length === 0 ? now : cycleStart + periodMs;
        i = 0;
        current = false;
      }
      if (!current) {
        // Read the nodes when the period begins, not when the last one ended.
        if (cycleStart > now) {
          nextDue = cycleStart;
          break;
        }
        if (!fixed) names = server.nodeNames();
        current = true;
      }
      if (names.length === 0) {
        nextDue = now + periodMs;
        break;
      }
      nextDue = cycleStart + (i * periodMs) / names.length;
      if (nextDue > now) break;
      const name = names[i++];
      if (name !== undefined) writer.beat(name, now);
    }
    timer = clock.setTimer(run, Math.max(MIN_TICK_MS, nextDue - now));
  };
  run();

  return {
    get beats() {
      return writer.beats;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clock.clearTimer(timer);
    },
  };
}

/** Rewrites a node's lastHeartbeatTimes and counts the updates made; `now` is on the clock that read `startedAt`. */
function heartbeatWriter(server: HeartbeatTarget, startedAt: number): { readonly beats: number; beat(name: string, now: number): void } {
  // The wall time heartbeats carry advances with the (possibly fake) clock.
  const wallAtStart = Date.now();
  /** Per node, the last heartbeat written: each must differ from the previous, or the update is a no-op. */
  const last = new Map<string, number>();
  let beats = 0;
  return {
    get beats() {
      return beats;
    },
    beat(name, now) {
      const at = Math.max(wallAtStart + (now - startedAt), (last.get(name) ?? 0) + 1000);
      last.set(name, at);
      const stamp = rfc3339(at);
      const done = server.updateObject('nodes', undefined, name, (current: StoredObject) => {
        const node = current as StoredNode;
        const conditions = node.status?.conditions ?? [{ type: 'Ready', status: 'True' }];
        return { ...node, status: { ...node.status, conditions: conditions.map((c) => ({ ...c, lastHeartbeatTime: stamp })) } };
      });
      if (done) beats++;
    },
  };
}
