/** Section 1, accuracy: the Markdown of a run (run.ts) and its budget lines. */
import { verdict, type BudgetRow } from '../report.js';
import { fmt, fmtSigned, table } from '../stats.js';
import type { AccuracyParams, AccuracyPhase, AccuracyResult, ToolWindow } from './run.js';

/** |mean − ping mean|, µs: idle, and while /metrics is scraped in a tight loop. */
export const ACCURACY_BUDGET = { idleUs: 50, loadUs: 200 };

/** What the tables show and how they were taken. */
function introduction(r: AccuracyResult, params: AccuracyParams): string {
  return (
    `Same source namespace, same targets, same window. Targets are user-space echo responders that reply after a set delay ` +
    `(\`delay0ms\` replies at once, from user space). ping probes each target every ${r.intervalMs} ms; the other tools every ` +
    `${Object.entries(params.accDetunedMs)
      .map(([k, v]) => `${v} ms (${k})`)
      .join(', ')}: detuned by 1-3 % so that their probes do not keep one ` +
    `phase against ping's and queue behind them at the responder for the whole window. The histogram tools' windows are the ` +
    `scrapes around the ping runs, so they hold a few more probes than ping's. ` +
    `"− injected" is the tool's figure minus the responder's delay, so it includes the responder's own ` +
    `user-space overhead, the same for every tool; "− ping" is the tool's mean minus iputils ping's mean over the same window, ` +
    `which is the requirement (|mean − ping| ≤ ${ACCURACY_BUDGET.idleUs} µs idle, ≤ ${ACCURACY_BUDGET.loadUs} µs under scrape load). ` +
    `"ping #2" is a second, identical ping in the same window: its "− ping" is what this method reads for a tool with no error. ` +
    `"± n" is the 95% interval of that difference from the spread of both tools' samples (mentat's estimated from its buckets). ` +
    `The responders run with real-time priority (SCHED_FIFO), so that the scrape load does not stretch the injected delay. ` +
    `Histogram tools (mentat, smokeping_prober) were given the same fine buckets (20 µs steps near each delay), so their p50/p99 ` +
    `are PromQL-style interpolations with about 20 µs resolution; ping's are exact. ` +
    `Sockets mentat opened: ${Object.entries(r.sockets)
      .map(([k, v]) => `${k}: ${(v ?? ['?']).join(', ')}`)
      .join('; ')}.`
  );
}

/** A phase's heading (and, under load, what the load was). */
function phaseHeading(phase: AccuracyPhase, params: AccuracyParams): string[] {
  if (phase.name === 'idle') return [`### Idle (${phase.seconds} s, all tools at once)`, ''];
  const l = phase.load!;
  return [
    `### mentat ${l.mode} while ${params.loadClients} clients scrape its /metrics in a tight loop (${phase.seconds} s)`,
    '',
    `Load: ${l.requests} scrapes in ${l.seconds.toFixed(1)} s (${fmt(l.requests / l.seconds)} /s), scrape latency p50 ${fmt(l.p50Ms, 2)} ms, ` +
      `p99 ${fmt(l.p99Ms, 2)} ms, max ${fmt(l.maxMs, 1)} ms, ${l.errors} errors${l.firstError ? ` (first: ${l.firstError})` : ''}.`,
    '',
  ];
}

/** One row per tool and target, each against ping's row of its target. */
function phaseTable(phase: AccuracyPhase): string {
  const pingRow = new Map(phase.rows.filter((x) => x.tool === 'ping (iputils)').map((x) => [x.target, x]));
  const budget = phase.name === 'idle' ? ACCURACY_BUDGET.idleUs : ACCURACY_BUDGET.loadUs;
  const rows = phase.rows.map((x: ToolWindow) => {
    const ref = pingRow.get(x.target);
    const vsPing = x === ref || ref === undefined ? undefined : (x.meanMs - ref.meanMs) * 1000;
    // 95% interval of the difference of two means from independent samples, µs.
    const ci = ref === undefined ? Number.NaN : 1.96 * Math.sqrt(x.varianceMs2 / x.replies + ref.varianceMs2 / ref.replies) * 1000;
    const isMentat = x.tool.startsWith('mentat');
    return [
      x.target,
      x.tool,
      `${x.replies}${x.sent !== undefined ? ` / ${x.sent}` : ''}`,
      fmt(x.meanMs, 3),
      fmtSigned((x.meanMs - x.injectedMs) * 1000),
      vsPing === undefined ? '(reference)' : `${fmtSigned(vsPing)} ± ${fmt(ci)}`,
      isMentat && vsPing !== undefined ? `≤ ${budget}: ${verdict(vsPing, ci, budget)}` : '',
      fmtSigned((x.p50Ms - x.injectedMs) * 1000),
      fmtSigned((x.p99Ms - x.injectedMs) * 1000),
      x.quantiles,
      fmt(x.lost),
    ];
  });
  return table(
    [
      'target',
      'tool',
      'replies / sent',
      'mean RTT ms',
      'mean − injected µs',
      'mean − ping µs',
      'budget µs',
      'p50 − injected µs',
      'p99 − injected µs',
      'quantiles',
      'lost',
    ],
    rows,
  );
}

/** The section's Markdown. */
export function accuracyReport(r: AccuracyResult, params: AccuracyParams): string {
  const out: string[] = ['## 1. Accuracy against peers', '', introduction(r, params), ''];
  for (const phase of r.phases) out.push(...phaseHeading(phase, params), phaseTable(phase), '');
  for (const n of r.notes) out.push(`Note: ${n}`, '');
  return out.join('\n');
}

/** The budget lines: |mean − ping| of each mentat and target, in each phase. */
export function accuracyBudgets(r: AccuracyResult, params: AccuracyParams): BudgetRow[] {
  const rows: BudgetRow[] = [];
  for (const phase of r.phases) {
    const budget = phase.name === 'idle' ? ACCURACY_BUDGET.idleUs : ACCURACY_BUDGET.loadUs;
    const ref = new Map(phase.rows.filter((x) => x.tool === 'ping (iputils)').map((x) => [x.target, x]));
    for (const x of phase.rows.filter((y) => y.tool.startsWith('mentat'))) {
      const ping = ref.get(x.target);
      if (!ping) continue;
      const diff = (x.meanMs - ping.meanMs) * 1000;
      const ci = 1.96 * Math.sqrt(x.varianceMs2 / x.replies + ping.varianceMs2 / ping.replies) * 1000;
      const when = phase.name === 'idle' ? 'idle' : `${params.loadClients} clients scraping`;
      rows.push([`${x.tool}, ${x.target}, ${when}: |mean − ping| ≤ ${budget} µs`, `${fmtSigned(diff)} ± ${fmt(ci)} µs`, verdict(diff, ci, budget)]);
    }
  }
  return rows;
}
