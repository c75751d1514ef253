/**
 * The namespace harness's process-wide part: whether namespaces can be made here (a test skips, or
 * fails under CI, when not), the last-resort cleanup of this process's clusters at exit or on a
 * signal, and the sweep of namespaces left by a crashed earlier run (its PID gone).
 */
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { deleteNetnsSync, escapeRe, listNetnsSync, pidAlive } from './netns-exec.js';

/** Namespace names start with it unless a test gives its own prefix. */
export const DEFAULT_PREFIX = 'mtt';

let supportCache: { ok: boolean; reason?: string } | undefined;

/** Root, iproute2 present, and a namespace can actually be created. */
export function netnsSupported(): { ok: boolean; reason?: string } {
  if (supportCache) return supportCache;
  const probe = (): { ok: boolean; reason?: string } => {
    if (process.platform !== 'linux') return { ok: false, reason: `platform is ${process.platform}` };
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'not running as root' };
    const v = spawnSync('ip', ['-V'], { encoding: 'utf8' });
    if (v.error || v.status !== 0) return { ok: false, reason: '`ip` (iproute2) not found' };
    const name = `${DEFAULT_PREFIX}-${process.pid.toString(36)}-p`;
    const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
    if (add.status !== 0) return { ok: false, reason: `cannot create a network namespace: ${add.stderr.trim()}` };
    const veth = spawnSync('ip', ['-n', name, 'link', 'add', 'name', 'pa', 'type', 'veth', 'peer', 'name', 'pb'], { encoding: 'utf8' });
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    if (veth.status !== 0) return { ok: false, reason: `cannot create veth pairs: ${veth.stderr.trim()}` };
    return { ok: true };
  };
  supportCache = probe();
  return supportCache;
}

/**
 * Call at the top of a test that needs namespaces. Returns true when the test
 * can go on; otherwise skips it — except under CI (CI=true), where a missing
 * capability is an environment bug and must fail loudly instead of skipping.
 */
export function requireNetns(t: TestContext): boolean {
  const s = netnsSupported();
  if (s.ok) return true;
  if (process.env.CI === 'true') throw new Error(`network namespaces required under CI: ${s.reason ?? 'unsupported'}`);
  t.skip(`network namespaces unavailable: ${s.reason ?? 'unsupported'}`);
  return false;
}

/** The clusters of this process that are not destroyed yet. */
export const liveClusters = new Set<{ destroySync(): void; allNamespaces(): string[] }>();
/** The prefixes whose leftovers were swept by this process. */
export const sweptPrefixes = new Set<string>();
let exitHooksInstalled = false;

/**
 * Last-resort cleanup if the test process exits or is signalled without
 * running destroy(): kill our children and delete our namespaces
 * synchronously. A SIGKILLed run leaves leftovers for the next sweep instead.
 */
export function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  const cleanupSync = (): void => {
    for (const c of liveClusters) c.destroySync();
  };
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      cleanupSync();
      process.removeListener(sig, handler);
      // Keep the default "die by this signal" behaviour unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Remove namespaces named with `prefix` whose creating process no longer exists. */
export function sweepLeftovers(prefix: string = DEFAULT_PREFIX): string[] {
  const re = new RegExp(`^${escapeRe(prefix)}-([0-9a-z]+)-([0-9a-z]+)(?:b|n\\d+|p\\d*|r\\d+)?$`);
  const ours = new Set<string>();
  for (const c of liveClusters) for (const ns of c.allNamespaces()) ours.add(ns);
  const removed: string[] = [];
  for (const ns of listNetnsSync()) {
    const m = re.exec(ns);
    if (!m || ours.has(ns)) continue;
    const pid = parseInt(m[1]!, 36);
    if (pid !== process.pid && pidAlive(pid)) continue; // another live test process
    deleteNetnsSync(ns);
    removed.push(ns);
  }
  return removed;
}
