/** Section 5, API load: what the API server sent each process, as totals, rates and means. */
import type { LoadCount } from '../../test/fake-apiserver/index.js';
import type { Traffic } from './params.js';
import type { LoadSnapshot } from './server.js';

/** What the server sent `user` so far, in total and by resource. */
export function trafficOf(s: LoadSnapshot, user: string): Traffic {
  const t: Traffic = { bytes: 0, requests: 0, byResource: {} };
  for (const r of s.rows) {
    if (r.user !== user) continue;
    t.bytes += r.bytes;
    t.requests += r.requests;
    const c = (t.byResource[r.resource] ??= { requests: 0, bytes: 0 });
    c.requests += r.requests;
    c.bytes += r.bytes;
  }
  return t;
}

/** `after` − `before`, optionally divided by `seconds` (a rate). */
export function delta(before: Traffic, after: Traffic, seconds = 1): Traffic {
  const byResource: Record<string, LoadCount> = {};
  for (const [k, v] of Object.entries(after.byResource)) {
    const b = before.byResource[k] ?? { requests: 0, bytes: 0 };
    byResource[k] = { requests: (v.requests - b.requests) / seconds, bytes: (v.bytes - b.bytes) / seconds };
  }
  return { bytes: (after.bytes - before.bytes) / seconds, requests: (after.requests - before.requests) / seconds, byResource };
}

/** `t` less what `rate` would have brought in `seconds` (never below zero). */
export function beyond(t: Traffic, rate: Traffic, seconds: number): Traffic {
  const byResource: Record<string, LoadCount> = {};
  for (const [k, v] of Object.entries(t.byResource)) {
    const r = rate.byResource[k] ?? { requests: 0, bytes: 0 };
    byResource[k] = { requests: Math.max(0, v.requests - r.requests * seconds), bytes: Math.max(0, v.bytes - r.bytes * seconds) };
  }
  return { bytes: Math.max(0, t.bytes - rate.bytes * seconds), requests: Math.max(0, t.requests - rate.requests * seconds), byResource };
}

/** The mean of each figure over `list`. */
export function mean<T extends Traffic>(list: readonly T[]): T {
  const byResource: Record<string, LoadCount> = {};
  for (const t of list)
    for (const [k, v] of Object.entries(t.byResource)) {
      const c = (byResource[k] ??= { requests: 0, bytes: 0 });
      c.requests += v.requests / list.length;
      c.bytes += v.bytes / list.length;
    }
  const out: Record<string, unknown> = { byResource };
  for (const key of Object.keys(list[0] ?? {}))
    if (key !== 'byResource') out[key] = list.reduce((a, t) => a + Number((t as unknown as Record<string, number>)[key]), 0) / list.length;
  return out as unknown as T;
}

/** Requests for Nodes. */
export const nodesRequests = (t: Traffic): number => t.byResource['nodes']?.requests ?? 0;
