/**
 * A pod's CPU limit for a process of the benchmark: a cgroup of its own with a CFS quota (cgroup v1's
 * cpu controller, or v2's cpu.max), removed once the process has ended. Cgroups are named after the
 * benchmark's PID, so leftovers of a run that was killed are found and removed by the next one.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PREFIX = 'mentat-bench-cpu-';
const PERIOD_US = 100_000;

/** The directory cgroups with a CPU quota go in; undefined when neither layout is there. */
function root(): { dir: string; v2: boolean } | undefined {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return { dir: '/sys/fs/cgroup', v2: true };
  if (existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')) return { dir: '/sys/fs/cgroup/cpu', v2: false };
  return undefined;
}

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`);

export class CpuLimits {
  private readonly made: string[] = [];
  private readonly at: { dir: string; v2: boolean };

  /** `millicores` as a pod's limits.cpu (200 for "200m"). @throws without a cgroup cpu controller */
  constructor(private readonly millicores: number) {
    if (!Number.isInteger(millicores) || millicores < 1) throw new Error(`CPU limit: ${millicores} is not a whole number of millicores`);
    const at = root();
    if (!at) throw new Error('CPU limit: no cgroup cpu controller (neither /sys/fs/cgroup/cgroup.controllers nor /sys/fs/cgroup/cpu)');
    this.at = at;
    sweep(at.dir);
  }

  /** Puts `pid` into a cgroup of its own with the quota. */
  limit(pid: number): void {
    const dir = join(this.at.dir, `${PREFIX}${process.pid}-${this.made.length}`);
    mkdirSync(dir);
    this.made.push(dir);
    const quota = Math.round((this.millicores / 1000) * PERIOD_US);
    if (this.at.v2) writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    else {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
    }
    writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  }

  /** Removes the cgroups whose processes have ended; returns the ones still in use. */
  release(): string[] {
    const left: string[] = [];
    for (const dir of this.made.splice(0)) if (!remove(dir)) left.push(dir);
    this.made.push(...left);
    return left;
  }
}

/** rmdir of an empty cgroup; false while a process is still in it. */
function remove(dir: string): boolean {
  try {
    if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() !== '') return false;
    rmdirSync(dir);
    return true;
  } catch {
    return !existsSync(dir);
  }
}

/** Removes the empty cgroups of benchmark runs that are gone. */
function sweep(dir: string): void {
  for (const name of readdirSync(dir)) {
    const pid = Number(/^mentat-bench-cpu-(\d+)-\d+$/.exec(name)?.[1]);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) remove(join(dir, name));
  }
}
