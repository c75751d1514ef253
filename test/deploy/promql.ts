/**
 * Metric and label names in a PromQL expression, to hold the alerts and the dashboard to what the
 * agent exports (promtool parses an expression but cannot list what it reads).
 */

/** What the agent serves on /metrics, and the labels Prometheus and the agent put on it. */
export const AGENT_METRICS = new Set([
  'node_latency_bucket',
  'node_latency_sum',
  'node_latency_count',
  'node_latency_probes_total',
  'node_latency_sweep_bucket',
  'node_latency_sweep_sum',
  'node_latency_sweep_count',
  'node_latency_sweep_probes_total',
  'mentat_path_mtu_probes_total',
  'mentat_path_mtu_bytes',
  'mentat_targets',
  'mentat_probe_interval_seconds',
  'mentat_node_state',
  'mentat_node_source',
  'up',
]);
/** Labels of the agent's series, Prometheus' target labels, and the ones the recording rules add. */
export const AGENT_LABELS = new Set([
  'origin_node',
  'destination_node',
  'origin_zone',
  'destination_zone',
  'le',
  'result',
  'job',
  'instance',
  'pod',
  'node',
  'ip_family',
  'state',
  'kind',
  'direction',
  'mode',
  'path',
]);
/** The alerts test/deploy/localization.test.ts tests on 20 generated nodes. */
export const LOCALIZATION_ALERTS: readonly string[] = ['MentatNodeDegraded', 'MentatPathDegraded'];

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** Identifiers that are not functions, keywords, labels or durations. */
export function metricsIn(expr: string): Set<string> {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.$])([A-Za-z_:][\w:]*)\b(?!\s*\()/g)) {
    if (!PROMQL_WORDS.has(m[1]!.toLowerCase())) names.add(m[1]!);
  }
  return names;
}

export function labelsIn(expr: string): Set<string> {
  const labels = new Set<string>();
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const l of m[1]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean))
      labels.add(l);
  }
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const l of m[1]!.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.add(l[1]!);
  }
  return labels;
}
