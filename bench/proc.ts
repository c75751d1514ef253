/**
 * What /proc says about a process: CPU time (all threads: the thread-group
 * leader's stat counts every thread), resident memory, and thread count.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of utime/stime (almost always 100: 10 ms resolution). */
export const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export interface ProcSample {
  readonly pid: number;
  /** utime + stime of every thread, seconds, from /proc/<pid>/stat (CLK_TCK resolution, truncated per process). */
  readonly cpuSeconds: number;
  /** The user-mode part of cpuSeconds (utime), seconds. */
  readonly userSeconds: number;
  /**
   * On-CPU time of the live threads, seconds, from /proc/<pid>/task/<tid>/schedstat
   * (nanoseconds: precise even for processes that use a few ms); NaN when unavailable.
   */
  readonly schedSeconds: number;
  /** Resident set size, KiB. */
  readonly rssKiB: number;
  /** Peak resident set size, KiB. */
  readonly hwmKiB: number;
  /** The anonymous part of rssKiB (heaps, stacks; not the binary and libraries mapped from disk), KiB. */
  readonly anonKiB: number;
  /** Proportional set size (shared pages divided among sharers), KiB; 0 when unreadable. */
  readonly pssKiB: number;
  readonly threads: number;
}

function statusField(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status);
  return m ? Number(m[1]) : 0;
}

/** One reading of /proc/<pid>; undefined once the process is gone. */
export function readProc(pid: number, withPss = false): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const utime = Number(fields[11]);
    const ticks = utime + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    let pssKiB = 0;
    if (withPss) {
      try {
        pssKiB = statusField(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      } catch {
        /* older kernels */
      }
    }
    let schedNs = 0;
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        schedNs += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      }
    } catch {
      schedNs = Number.NaN;
    }
    return {
      pid,
      cpuSeconds: ticks / CLK_TCK,
      userSeconds: utime / CLK_TCK,
      schedSeconds: schedNs / 1e9,
      rssKiB: statusField(status, 'VmRSS'),
      hwmKiB: statusField(status, 'VmHWM'),
      anonKiB: statusField(status, 'RssAnon'),
      pssKiB,
      threads: statusField(status, 'Threads'),
    };
  } catch {
    return undefined;
  }
}

/** Sums readings of several processes (e.g. one ping per target); undefined if any is gone. */
export function readProcs(pids: readonly number[], withPss = false): ProcSample | undefined {
  let cpuSeconds = 0;
  let userSeconds = 0;
  let schedSeconds = 0;
  let rssKiB = 0;
  let hwmKiB = 0;
  let anonKiB = 0;
  let pssKiB = 0;
  let threads = 0;
  for (const pid of pids) {
    const s = readProc(pid, withPss);
    if (!s) return undefined;
    cpuSeconds += s.cpuSeconds;
    userSeconds += s.userSeconds;
    schedSeconds += s.schedSeconds;
    rssKiB += s.rssKiB;
    hwmKiB += s.hwmKiB;
    anonKiB += s.anonKiB;
    pssKiB += s.pssKiB;
    threads += s.threads;
  }
  return { pid: pids[0] ?? 0, cpuSeconds, userSeconds, schedSeconds, rssKiB, hwmKiB, anonKiB, pssKiB, threads };
}

/** On-CPU seconds per thread name (comm: MainThread, WorkerThread, V8Worker, libuv-worker, ...), summed over threads of that name. */
export function readThreadCpu(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        byName.set(name, (byName.get(name) ?? 0) + ns / 1e9);
      } catch {
        /* thread ended */
      }
    }
  } catch {
    /* process ended */
  }
  return byName;
}

/** after − before per thread name, largest first. */
export function threadCpuDelta(before: Map<string, number>, after: Map<string, number>): Array<{ thread: string; seconds: number }> {
  return [...after.entries()]
    .map(([thread, s]) => ({ thread, seconds: s - (before.get(thread) ?? 0) }))
    .filter((x) => x.seconds > 0)
    .sort((a, b) => b.seconds - a.seconds);
}
