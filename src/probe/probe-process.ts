/**
 * The raw-mode probe process, a composition root of its own: raw sockets,
 * schedule and user-space timestamps, away from scrapes, API traffic and GC of
 * the agent's event loop (see ProcessEngine in process-engine.ts).
 */
import { IcmpPermissionError } from '../icmp/socket.js';
import { systemClock as clock } from '../types.js';
import { toWire, type FromWorker, type ToWorker, type WireResult, type WorkerData } from './process-engine.js';
import type { DiscardReason } from './prober.js';
import { startProbing, type Probing } from './probing.js';

const BATCH_MS = 25;
const BATCH_MAX = 1024;

const post = (msg: FromWorker): void => {
  if (process.connected) process.send!(msg);
};

// Ctrl-C reaches the whole process group: the agent, not the terminal, stops this child.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
// Nothing to do once the agent is gone.
process.on('disconnect', () => process.exit(0));

function run(data: WorkerData): void {
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

  let probing: Probing;
  try {
    probing = startProbing('raw', data.settings, clock, {
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
    });
  } catch (err) {
    post({
      type: 'failed',
      name: (err as Error).name,
      message: (err as Error).message,
      ...(err instanceof IcmpPermissionError ? { reason: err.reason, ...(err.remedy ? { remedy: err.remedy } : {}) } : {}),
    });
    process.disconnect();
    return;
  }

  process.on('message', (msg: ToWorker) => {
    if (msg.type === 'targets') {
      probing.setTargets(msg.targets, msg.sweep);
    } else if (msg.type === 'stop') {
      void probing
        .stop()
        .then(flush)
        .finally(() => {
          post({ type: 'stopped' });
          process.disconnect();
        });
    }
  });

  post({ type: 'ready', info: probing.info });
}

process.once('message', (msg: ToWorker) => {
  if (msg.type === 'init') run(msg.data);
});
