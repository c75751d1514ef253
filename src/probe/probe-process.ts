/**
 * The raw-mode probe process, a composition root of its own: raw sockets,
 * schedule and user-space timestamps, away from scrapes, API traffic and GC of
 * the agent's event loop (see ProcessEngine in process-engine.ts).
 */
import { openIcmpSockets } from '../icmp/open.js';
import { IcmpPermissionError } from '../icmp/socket.js';
import { systemClock as clock } from '../types.js';
import type { EngineEvents } from './engine.js';
import { LocalEngine } from './local-engine.js';
import { toWire, type FromProbeProcess, type ProbeProcessData, type ToProbeProcess, type WireResult } from './process-protocol.js';
import type { DiscardReason } from './prober.js';

const BATCH_MS = 25;
const BATCH_MAX = 1024;

const post = (msg: FromProbeProcess): void => {
  if (process.connected) process.send!(msg);
};

/** Disconnecting twice would emit an 'error' on the process. */
const leave = (): void => {
  if (process.connected) process.disconnect();
};

// Ctrl-C reaches the whole process group: the agent, not the terminal, stops this child.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});

// Nothing to do once the agent is gone.
process.on('disconnect', () => process.exit(0));

/** Outcomes and discards go to the agent in batches: one message per BATCH_MS or BATCH_MAX outcomes. */
function batchedEvents(): { events: EngineEvents; flush: () => void } {
  let batch: WireResult[] = [];
  const discards = new Map<DiscardReason, number>();
  let flushTimer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = undefined;
    for (const [reason, count] of discards) post({ type: 'discarded', reason, count });
    discards.clear();
    if (batch.length === 0) return;
    post({ type: 'results', results: batch });
    batch = [];
  };
  const events: EngineEvents = {
    onResult: (target, outcome) => {
      batch.push(toWire(target.key, outcome));
      if (batch.length >= BATCH_MAX) flush();
      else flushTimer ??= setTimeout(flush, BATCH_MS);
    },
    onDiscard: (reason, count) => {
      discards.set(reason, (discards.get(reason) ?? 0) + count);
      flushTimer ??= setTimeout(flush, BATCH_MS);
    },
    // The agent counts and logs them (rate-limited); this process only passes them on.
    onSocketError: (message) => post({ type: 'socket-error', message }),
  };
  return { events, flush };
}

function run(data: ProbeProcessData): void {
  const { events, flush } = batchedEvents();
  const engine = new LocalEngine(() => openIcmpSockets('raw', () => clock.now()), data.settings, clock, events);
  // Listening before start settles: a message that arrives with 'init' is not lost. The engine opens its
  // sockets within start(), so it can take targets at once; before that, and after a failure, they are ignored.
  process.on('message', (msg: ToProbeProcess) => {
    if (msg.type === 'targets') {
      engine.setTargets(msg.targets, msg.sweep);
    } else if (msg.type === 'stop') {
      void engine
        .stop()
        .then(flush)
        .finally(() => {
          post({ type: 'stopped' });
          leave();
        });
    }
  });
  engine.start().then(
    (info) => post({ type: 'ready', info }),
    (err: unknown) => {
      post({
        type: 'failed',
        name: (err as Error).name,
        message: (err as Error).message,
        ...(err instanceof IcmpPermissionError ? { reason: err.reason, ...(err.remedy ? { remedy: err.remedy } : {}) } : {}),
      });
      leave();
    },
  );
}

process.once('message', (msg: ToProbeProcess) => {
  if (msg.type === 'init') run(msg.data);
});
