/**
 * A measurement window over a process tree (the agent and any child, such as the raw-socket probe
 * process): CPU, RSS and wall time from start() to stop(), with the monotonic bounds that cut CPU
 * profiles to the same window.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProcs, readThreadCpu, threadCpuDelta, type ProcSample } from './proc.js';

/** CLOCK_MONOTONIC in µs: the clock of V8's CPU profiles. */
export const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** The process and its descendants, from /proc/<pid>/task/<tid>/children. */
export function processTree(pid: number): number[] {
  const tree: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    tree.push(next);
    try {
      for (const tid of readdirSync(`/proc/${next}/task`)) {
        const children = readFileSync(`/proc/${next}/task/${tid}/children`, 'utf8').trim();
        if (children !== '') queue.push(...children.split(' ').map(Number));
      }
    } catch {
      /* gone meanwhile: what was read still counts */
    }
  }
  return tree;
}

/** One reading of the tree, summed over its processes. */
export function readTree(pid: number): ProcSample {
  const sample = readProcs(processTree(pid));
  if (!sample) throw new Error(`process ${pid} or one of its children ended during a reading`);
  return sample;
}

/** One reading of the tree 2 s from now, once the garbage of what just ran has had a moment to be collected. */
export async function settledReading(pid: number): Promise<ProcSample> {
  await sleep(2000);
  return readTree(pid);
}

function treeThreadCpu(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const p of processTree(pid)) for (const [name, seconds] of readThreadCpu(p)) byName.set(name, (byName.get(name) ?? 0) + seconds);
  return byName;
}

/** What a process tree used over one window. */
export interface WindowReading {
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
  readonly userSeconds: number;
  readonly start: ProcSample;
  readonly end: ProcSample;
  /** The RSS readings sample() took, KiB. */
  readonly rssKiB: readonly number[];
  /** On-CPU seconds per thread name over the window, largest first. */
  readonly threads: Array<{ thread: string; seconds: number }>;
  /** Monotonic µs at start and stop, for summariseProfile. */
  readonly fromUs: number;
  readonly toUs: number;
}

/** CPU, RSS and wall time of a process tree between start() and stop(). */
export class MeasurementWindow {
  private readonly rssKiB: number[] = [];

  private constructor(
    private readonly pid: number,
    private readonly first: ProcSample,
    private readonly threads: Map<string, number>,
    private readonly startMs: number,
    private readonly fromUs: number,
  ) {}

  /** Opens a window over `pid` and its descendants. */
  static start(pid: number): MeasurementWindow {
    return new MeasurementWindow(pid, readTree(pid), treeThreadCpu(pid), Date.now(), monoUs());
  }

  /** Milliseconds since start. */
  elapsedMs(): number {
    return Date.now() - this.startMs;
  }

  /** Records the tree's RSS now; a tree that is gone records nothing. */
  sample(): void {
    const p = readProcs(processTree(this.pid));
    if (p) this.rssKiB.push(p.rssKiB);
  }

  /** Waits until `elapsedMs` after start, recording the tree's RSS about once a second. */
  async sampleUntil(elapsedMs: number): Promise<void> {
    while (this.elapsedMs() < elapsedMs) {
      await sleep(Math.min(1000, elapsedMs - this.elapsedMs()));
      this.sample();
    }
  }

  /** Closes the window: what the tree used since start. */
  stop(): WindowReading {
    const end = readTree(this.pid);
    const threads = threadCpuDelta(this.threads, treeThreadCpu(this.pid));
    return {
      wallSeconds: this.elapsedMs() / 1000,
      cpuSeconds: end.cpuSeconds - this.first.cpuSeconds,
      userSeconds: end.userSeconds - this.first.userSeconds,
      start: this.first,
      end,
      rssKiB: this.rssKiB,
      threads,
      fromUs: this.fromUs,
      toUs: monoUs(),
    };
  }
}
