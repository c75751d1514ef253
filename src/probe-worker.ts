/**
 * The probe worker thread, a composition root of its own: datagram sockets,
 * schedule and timestamps, away from the main event loop.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { toWire, type FromWorker, type ToWorker, type WireResult, type WorkerData } from './engine.js';
import { openIcmpSockets, type OpenedSockets } from './icmp/open.js';
import { Prober, type Clock } from './prober.js';

const BATCH_MS = 25;
const BATCH_MAX = 1024;

const port = parentPort!;
const data = workerData as WorkerData;
const post = (msg: FromWorker): void => port.postMessage(msg);

const clock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

let batch: WireResult[] = [];
let flushTimer: NodeJS.Timeout | undefined;
function flush(): void {
  if (flushTimer) clearTimeout(flushTimer);
  flushTimer = undefined;
  if (batch.length === 0) return;
  post({ type: 'results', results: batch });
  batch = [];
}

let opened: OpenedSockets;
try {
  opened = openIcmpSockets('dgram', clock.now);
} catch (err) {
  post({ type: 'failed', name: (err as Error).name, message: (err as Error).message });
  process.exit(0);
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

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'targets') {
    prober.setTargets(msg.targets);
  } else if (msg.type === 'stop') {
    void prober.stop().then(() => {
      flush();
      for (const socket of opened.sockets.values()) socket.close();
      post({ type: 'stopped' });
      port.close();
    });
  }
});

post({
  type: 'ready',
  info: { sockets: [...opened.sockets.values()].map((s) => `${s.mode}/ipv${s.family}`), missing: opened.missing },
});
