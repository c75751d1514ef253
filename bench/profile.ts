/**
 * Summaries of V8 .cpuprofile files (node --cpu-prof): where the sampled time
 * went, by function (self time) and by module or package.
 *
 *   node dist/bench/profile.js FILE.cpuprofile...
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  file: string;
  /** The part of the profile summarised, when not all of it. */
  window?: string;
  /** Wall time covered by the profile, seconds. */
  wallSeconds: number;
  /** Sampled time that was not (idle), seconds. */
  busySeconds: number;
  byFunction: Array<{ name: string; seconds: number; share: number }>;
  byModule: Array<{ name: string; seconds: number; share: number }>;
}

/** node_modules/<pkg>, the project file, node:internal/..., or a V8 pseudo-frame such as (garbage collector). */
function moduleOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist) return dist[1]!;
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  return url;
}

/** A time range in the profile's clock (CLOCK_MONOTONIC µs, as process.hrtime.bigint() / 1000n). */
export interface ProfileWindow {
  readonly label: string;
  readonly fromUs: number;
  readonly toUs: number;
}

export function summariseProfile(path: string, top = 12, window?: ProfileWindow): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; the time a sample stands for is the next delta.
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const us = deltas[i + 1] ?? deltas[i] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + us);
  }
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    busy += us;
    const m = moduleOf(url, functionName);
    const name = url === '' ? functionName || '(anonymous)' : `${functionName || '(anonymous)'} ${m}:${lineNumber + 1}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, seconds: us / 1e6, share: busy > 0 ? us / busy : 0 }));
  const from = window ? Math.max(window.fromUs, profile.startTime) : profile.startTime;
  const to = window ? Math.min(window.toUs, profile.endTime) : profile.endTime;
  return {
    file: basename(path),
    ...(window ? { window: window.label } : {}),
    wallSeconds: Math.max(0, to - from) / 1e6,
    busySeconds: busy / 1e6,
    byFunction: rank(fn),
    byModule: rank(mod),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [`${s.file}${s.window ? ` [${s.window}]` : ''}: ${s.busySeconds.toFixed(2)} s busy of ${s.wallSeconds.toFixed(1)} s`];
  lines.push('  by module:');
  for (const m of s.byModule) lines.push(`    ${(m.share * 100).toFixed(1).padStart(5)}%  ${m.seconds.toFixed(2).padStart(6)} s  ${m.name}`);
  lines.push('  by function (self):');
  for (const f of s.byFunction) lines.push(`    ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.seconds.toFixed(2).padStart(6)} s  ${f.name}`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const file of process.argv.slice(2)) process.stdout.write(`${formatProfile(summariseProfile(file))}\n`);
}
