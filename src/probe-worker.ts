/**
 * The probe worker, a composition root of its own: sockets, schedule and
 * timestamps, away from scrapes, API traffic and GC of the agent's event loop.
 * It runs as a worker thread (datagram sockets) or as a child process (raw-socket,
 * which only works on a process's default event loop).
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { toWire, type FromWorker, type ToWorker, type WireResult, type WorkerData } from './engine.js';
import { openIcmpSockets, type OpenedSockets } from './icmp/open.js';
import { Prober, type Clock } from './prober.js';

const BATCH_MS = 25;
const BATCH_MAX = 1024;

const inThread = parentPort !== null;
const post = (msg: FromWorker): void => {
  if (parentPort) parentPort.postMessage(msg);
  else if (process.connected) process.send!(msg);
};
const onMessage = (handler: (msg: ToWorker) => void): void => {
  if (parentPort) parentPort.on('message', handler);
  else process.on('message', (msg) => handler(msg as ToWorker));
};
const end = (): void => {
  if (parentPort) parentPort.close();
  else process.disconnect();
};

if (!inThread) {
  // Ctrl-C reaches the whole process group: the agent, not the terminal, stops this child.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  // Nothing to do once the agent is gone.
  process.on('disconnect', () => process.exit(0));
}

const clock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

function run(data: WorkerData): void {
  let batch: WireResult[] = [];
  let flushTimer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = undefined;
    if (batch.length === 0) return;
    post({ type: 'results', results: batch });
    batch = [];
  };

  let opened: OpenedSockets;
  try {
    opened = openIcmpSockets(data.kind, clock.now);
  } catch (err) {
    post({ type: 'failed', name: (err as Error).name, message: (err as Error).message });
    end();
    return;
  }

  const prober = new Prober({
    ...data.settings,
    sockets: opened.sockets,
    clock,
    onResult: (target, outcome) => {
      batch.push(toWire(target.key, outcome));
      if (batch.length >= BATCH_MAX) flush();
      else flushTimer ??= setTimeout(flush, BATCH_MS);
    },
  });

  onMessage((msg) => {
    if (msg.type === 'targets') {
      prober.setTargets(msg.targets);
    } else if (msg.type === 'stop') {
      void prober
        .stop()
        .then(async () => {
          flush();
          // Native handles are released before the worker ends, or the process crashes at exit.
          await Promise.all([...opened.sockets.values()].map((socket) => socket.close()));
        })
        .finally(() => {
          post({ type: 'stopped' });
          end();
        });
    }
  });

  post({
    type: 'ready',
    info: { sockets: [...opened.sockets.values()].map((s) => `${s.mode}/ipv${s.family}`), missing: opened.missing },
  });
}

if (inThread) {
  run(workerData as WorkerData);
} else {
  process.once('message', (msg: ToWorker) => {
    if (msg.type === 'init') run(msg.data);
  });
}
