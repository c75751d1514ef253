/** Formatting the sections share, and the budgets at a glance that open the report. */
import { fmt, table } from './stats.js';

/** One line of the budget summary: what is asked, what was measured, the verdict. */
export type BudgetRow = [budget: string, measured: string, verdict: string];

export const ok = (within: boolean): string => (within ? 'ok' : 'OVER');

/** ok, OVER (beyond the noise), or over but within the 95% interval of the noise. */
export const verdict = (value: number, ci: number, budget: number): string =>
  Math.abs(value) <= budget ? 'ok' : Math.abs(value) - (Number.isFinite(ci) ? ci : 0) > budget ? 'OVER' : 'over, within noise';

/** KiB as MiB with one decimal, or an en dash. */
export const mib = (kib: number | undefined): string => fmt(kib === undefined ? undefined : kib / 1024, 1);

/** Bytes in B, kB, MB or GB (powers of 1000: network rates are counted so). */
export function bytes(n: number | undefined, digits = 1): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  const abs = Math.abs(n);
  if (abs < 1000) return `${n.toFixed(0)} B`;
  if (abs < 1e6) return `${(n / 1e3).toFixed(digits)} kB`;
  if (abs < 1e9) return `${(n / 1e6).toFixed(digits)} MB`;
  return `${(n / 1e9).toFixed(digits)} GB`;
}

/** The summary of every section's budget rows; empty when no section has budgets. */
export function budgetReport(rows: readonly BudgetRow[]): string {
  if (rows.length === 0) return '';
  return ['## Budgets at a glance', '', table(['budget', 'measured', 'verdict'], rows), ''].join('\n');
}
