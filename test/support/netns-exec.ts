/**
 * The commands under the namespace harness (netns.ts): run one with a deadline, iproute2 in batches,
 * sysctls through /proc/sys, namespaces listed and deleted with their processes, process groups
 * ended. No state: every function does one command's worth.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code; null if killed by a signal (e.g. the timeout). */
  code: number | null;
}

export interface ExecOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string;
}

export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code });
    });
    child.stdin.on('error', () => {}); // command may exit without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

/** Run and throw with stderr on a non-zero exit. */
export async function must(cmd: string, args: readonly string[], opts?: ExecOptions): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** `ip -n ns -batch -`: many iproute2 commands for one process spawn. */
export async function ipBatch(ns: string, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  await must('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 60_000 });
}

/** Write sysctls inside a namespace via /proc/sys (no procps dependency). */
export async function setSysctls(ns: string, values: Record<string, string>): Promise<void> {
  const script = Object.entries(values)
    .map(([k, v]) => `printf '%s\\n' '${v}' > /proc/sys/${k.replaceAll('.', '/')}`)
    .join(' && ');
  await must('ip', ['netns', 'exec', ns, 'sh', '-c', script]);
}

export async function getSysctls(ns: string, keys: readonly string[]): Promise<Record<string, string>> {
  const script = keys.map((k) => `cat /proc/sys/${k.replaceAll('.', '/')}`).join(' && ');
  const lines = (await must('ip', ['netns', 'exec', ns, 'sh', '-c', script])).trim().split('\n');
  return Object.fromEntries(keys.map((k, i) => [k, (lines[i] ?? '').trim()]));
}

export function listNetnsSync(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!.trim())
    .filter((n) => n !== '');
}

/** Kill every process inside ns and delete it; synchronous so it works in 'exit'. */
export function deleteNetnsSync(ns: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  for (const p of (pids.stdout ?? '').split(/\s+/)) {
    const pid = Number(p);
    if (pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

export async function deleteNetns(ns: string): Promise<void> {
  const pids = await run('ip', ['netns', 'pids', ns]);
  for (const p of pids.stdout.split(/\s+/)) {
    const pid = Number(p);
    if (pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  await run('ip', ['netns', 'del', ns]);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}
