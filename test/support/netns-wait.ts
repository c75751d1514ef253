/** Waits of the namespace harness: a link up with carrier, a node's eth0 usable on both families. */
import { run } from './netns-exec.js';
import type { ClusterNode } from './netns-types.js';

/** Wait for a link to be up with carrier. */
export async function waitLink(ns: string, dev: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
    const info = r.code === 0 ? (JSON.parse(r.stdout) as Array<{ operstate?: string; flags?: string[] }>)[0] : undefined;
    if (info?.operstate === 'UP' && (info.flags ?? []).includes('LOWER_UP')) return;
    if (Date.now() > deadline) throw new Error(`${dev} in ${ns} not up after 10 s: ${r.stdout || r.stderr}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** Wait for carrier and for IPv6 addresses to leave the tentative state. */
export async function waitUsable(node: ClusterNode): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await run('ip', ['-n', node.ns, '-j', 'addr', 'show', 'dev', 'eth0']);
    if (r.code === 0) {
      const info = (
        JSON.parse(r.stdout) as Array<{
          operstate?: string;
          flags?: string[];
          addr_info?: Array<{ family: string; local: string; tentative?: boolean; dadfailed?: boolean }>;
        }>
      )[0];
      const up = info?.operstate === 'UP' && (info.flags ?? []).includes('LOWER_UP');
      const v6 = info?.addr_info?.find((a) => a.family === 'inet6' && a.local === node.ipv6);
      const v6ok = !node.ipv6 || (v6 !== undefined && !v6.tentative && !v6.dadfailed);
      if (up && v6ok) return;
    }
    if (Date.now() > deadline) throw new Error(`node ${node.name} not usable after 10 s: ${r.stdout || r.stderr}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}
