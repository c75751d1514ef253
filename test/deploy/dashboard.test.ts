/**
 * The Grafana dashboard (deploy/dashboards/mentat.json): valid, laid out without overlaps, a
 * node-health view beside the pairs, its queries only on the agent's metrics and labels and on what
 * the rule file records, and every query accepted by promtool's PromQL parser.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dump, load } from 'js-yaml';
import { AGENT_LABELS, AGENT_METRICS, labelsIn, metricsIn } from './promql.js';
import { need, readRepo, run } from './render.js';

interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  collapsed?: boolean;
  gridPos?: GridPos;
  datasource?: { type: string; uid: string };
  targets?: { expr?: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}

interface Variable {
  name: string;
  type: string;
  query: unknown;
  includeAll?: boolean;
  multi?: boolean;
  options?: { text: string; value: string }[];
}

interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

/** What the rule file records: the dashboard may query it, as the alerts do. */
function recorded(): Set<string> {
  const file = load(readRepo('deploy/rules/mentat.rules.yaml')) as { groups: { rules: { record?: string }[] }[] };
  return new Set(file.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every query of the dashboard's panels; each panel laid out, with queries, on the data source variable. */
function queries(panels: readonly Panel[]): string[] {
  const exprs: string[] = [];
  for (const p of panels) {
    if (p.type === 'row') continue;
    assert.ok(p.gridPos, `${p.title}: gridPos`);
    assert.ok(p.targets && p.targets.length > 0, `${p.title}: has queries`);
    for (const target of p.targets) {
      assert.ok(target.expr, `${p.title}: PromQL expression`);
      exprs.push(target.expr);
      assert.equal((target.datasource ?? p.datasource)?.uid, '${datasource}', `${p.title}: uses the data source variable`);
    }
  }
  return exprs;
}

function checkVariables(dashboard: Dashboard): void {
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const query = typeof v.query === 'string' ? v.query : String((v.query as { query: string }).query);
    const m = /^label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*(\w+)\s*\)$/.exec(query);
    assert.ok(m, `variable ${v.name}: ${query}`);
    assert.ok(AGENT_METRICS.has(m[1]!) && AGENT_LABELS.has(m[2]!), `variable ${v.name}: ${query}`);
  }
}

function checkQuery(expr: string, variables: ReadonlySet<string>, records: ReadonlySet<string>): void {
  const metrics = metricsIn(expr);
  assert.ok(metrics.size > 0, `no metric in ${expr}`);
  for (const m of metrics) assert.ok(AGENT_METRICS.has(m) || records.has(m), `unknown metric ${m} in ${expr}`);
  for (const l of labelsIn(expr)) assert.ok(AGENT_LABELS.has(l), `unknown label ${l} in ${expr}`);
  // The per-pair series follow the origin and destination variables; the sweep has no destination_node.
  if ([...metrics].some((m) => m.startsWith('node_latency') && !m.startsWith('node_latency_sweep'))) {
    assert.ok(expr.includes('origin_node') && expr.includes('destination_node'), `${expr} filters or groups by origin_node and destination_node`);
  }
  // Every selector of the agent's per-path series follows the path variable; the rules' per-path
  // scores do too, or are joined on path with one that does.
  for (const m of metrics) {
    if (PER_PATH_RECORDS.test(m)) assert.ok(expr.includes('path=~"$path"'), `${m} in ${expr}: filtered by path=~"$path"`);
    if (!PER_PATH_SERIES.test(m)) continue;
    for (const selector of expr.matchAll(new RegExp(`\\b${m}(\\{[^}]*\\})?`, 'g'))) {
      assert.ok(selector[1]?.includes('path=~"$path"'), `${m} in ${expr}: every selector filtered by path=~"$path"`);
    }
  }
  for (const ref of expr.matchAll(/\$\{?(\w+)/g)) assert.ok(ref[1]!.startsWith('__') || variables.has(ref[1]!), `undefined variable $${ref[1]} in ${expr}`);
}

/** Panels that share a grid (the top level, or the inside of a collapsed row) must not overlap. */
function checkLayout(panels: readonly Panel[], where: string): void {
  const placed = panels.map((p) => {
    assert.ok(p.gridPos, `${p.title}: gridPos`);
    return { title: p.title, g: p.gridPos };
  });
  for (const { title, g } of placed) {
    assert.ok(g.w > 0 && g.h > 0 && g.x >= 0 && g.y >= 0 && g.x + g.w <= 24, `${title}: gridPos ${JSON.stringify(g)} fits the 24 columns`);
  }
  for (const [i, a] of placed.entries()) {
    for (const b of placed.slice(i + 1)) {
      const apart = a.g.x + a.g.w <= b.g.x || b.g.x + b.g.w <= a.g.x || a.g.y + a.g.h <= b.g.y || b.g.y + b.g.h <= a.g.y;
      assert.ok(apart, `${where}: "${a.title}" overlaps "${b.title}"`);
    }
  }
  for (const row of panels.filter((p) => p.type === 'row' && p.collapsed)) checkLayout(row.panels ?? [], `row ${row.title}`);
}

/** The agent's series that carry `path`: latency and loss (pairs and sweep), MTU probes. */
const PER_PATH_SERIES = /^(node_latency|mentat_path_mtu)/;
/** The rules' per-path records (the node scores, pairs and baselines), but not mentat:node:inactive or :reporting. */
const PER_PATH_RECORDS = /^mentat:(pair|zone_pair|node):(?!inactive$|reporting$)/;

/** The per-node scores of the rules: each has its worst nodes over time. */
const SCORES = [
  'mentat:node:destination_latency_excess_seconds',
  'mentat:node:origin_latency_excess_seconds',
  'mentat:node:destination_failed_ratio',
  'mentat:node:origin_failed_ratio',
];
/** The rest of the node-health view: what the alerts would name, what they measure against, and the agents' state. */
const NODE_HEALTH: readonly (readonly [string, string])[] = [
  ['degraded nodes', 'mentat:node:degraded'],
  ['zone-pair baselines', 'mentat:zone_pair:latency_seconds'],
  ['sweep mean by zone pair', 'node_latency_sweep_count'],
  ['sweep loss by zone pair', 'node_latency_sweep_probes_total'],
  ['targets by state', 'mentat_targets'],
  ['nodes not active', 'mentat_node_state'],
];

test("dashboard: valid JSON whose queries use only the agent's metrics and labels and what the rules record", (t) => {
  const dashboard = JSON.parse(readRepo('deploy/dashboards/mentat.json')) as Dashboard;
  assert.ok(dashboard.uid && dashboard.title);
  const variables = new Set(dashboard.templating.list.map((v) => v.name));
  const panels = allPanels(dashboard.panels);
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  const exprs = queries(panels);
  const titles = panels.map((p) => p.title.toLowerCase()).join('\n');
  for (const needed of ['p50', 'p99', 'loss', '×']) assert.ok(titles.includes(needed), `a panel about ${needed}`);
  assert.ok(
    panels.some((p) => p.type === 'table' || p.type === 'heatmap'),
    'an origin × destination matrix',
  );
  checkVariables(dashboard);
  const records = recorded();
  for (const expr of exprs) checkQuery(expr, variables, records);
  checkLayout(dashboard.panels, 'dashboard');

  const promtool = need(t, 'promtool', 'Debian package prometheus');
  if (!promtool) return;
  // The PromQL itself, with Grafana's variables filled in, as recording rules promtool parses.
  const grafana = (expr: string) => expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?(origin|destination|path)\}?/g, '.*');
  const dir = mkdtempSync(join(tmpdir(), 'mentat-dashboard-'));
  try {
    const file = join(dir, 'dashboard-rules.yaml');
    writeFileSync(
      file,
      dump({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `mentat_dashboard:query_${i}`, expr: grafana(expr) })) }] }),
    );
    const r = run(promtool, ['check', 'rules', file]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("dashboard: a node-health view beside the pair matrix, on the rules' per-node scores and the agents' state", () => {
  const dashboard = JSON.parse(readRepo('deploy/dashboards/mentat.json')) as Dashboard;
  const panels = allPanels(dashboard.panels);
  assert.ok(
    panels.some((p) => p.type === 'row' && /node health/i.test(p.title)),
    'a row "Node health"',
  );
  const reading = (metric: string) => panels.filter((p) => p.targets?.some((x) => x.expr !== undefined && metricsIn(x.expr).has(metric)));
  for (const [what, metric] of NODE_HEALTH) assert.ok(reading(metric).length > 0, `a panel of ${what} (${metric})`);
  for (const metric of SCORES) {
    assert.ok(
      reading(metric).some((p) => p.type === 'timeseries' && p.targets!.some((x) => x.expr!.startsWith('topk('))),
      `${metric}: the worst nodes over time`,
    );
  }
  assert.ok(
    reading('mentat:node:degraded').some((p) => p.type === 'table'),
    'degraded nodes as a table',
  );
});

test('dashboard: a path variable (node, pod, all) on the latency and loss panels, and a path-MTU row', () => {
  const dashboard = JSON.parse(readRepo('deploy/dashboards/mentat.json')) as Dashboard;
  const path = dashboard.templating.list.find((v) => v.name === 'path');
  assert.ok(path, 'a variable path');
  // Explicit values, not includeAll or multi: Grafana would regex-escape `node|` (which also matches series without path, from older agents).
  assert.equal(path.type, 'custom');
  assert.ok(!path.includeAll && !path.multi, 'one value, not escaped');
  assert.deepEqual(
    path.options?.map((o) => [o.text, o.value]),
    [
      ['node', 'node|'],
      ['pod', 'pod'],
      ['all', '.*'],
    ],
  );
  assert.equal(path.query, 'node : node|,pod : pod,all : .*');
  const panels = allPanels(dashboard.panels);
  const reading = (metric: string) => panels.filter((p) => p.targets?.some((x) => x.expr !== undefined && metricsIn(x.expr).has(metric)));
  for (const metric of ['node_latency_bucket', 'node_latency_probes_total', 'mentat:node:destination_failed_ratio']) {
    assert.ok(reading(metric).length > 0 && reading(metric).every((p) => p.targets!.some((x) => x.expr!.includes('path=~"$path"'))), `${metric}: by path`);
  }
  const row = dashboard.panels.findIndex((p) => p.type === 'row' && /mtu/i.test(p.title));
  assert.ok(row >= 0, 'a row "Path MTU"');
  const next = dashboard.panels.slice(row + 1).findIndex((p) => p.type === 'row');
  const inRow = dashboard.panels.slice(row + 1, next < 0 ? undefined : row + 1 + next);
  const inRowReading = (metric: string) => inRow.filter((p) => p.targets?.some((x) => x.expr !== undefined && metricsIn(x.expr).has(metric)));
  assert.ok(
    inRowReading('mentat_path_mtu_probes_total').some(
      (p) => p.type === 'timeseries' && /loss/i.test(p.title) && p.targets!.some((x) => x.expr!.includes('result="lost"')),
    ),
    'MTU probe loss per pair',
  );
  assert.ok(inRowReading('mentat_path_mtu_bytes').length > 0, 'the reported path MTU');
  for (const record of ['mentat:node:mtu_black_hole', 'mentat:pair:mtu_black_hole'])
    assert.ok(inRowReading(record).length > 0, `what the MTU alerts would name: ${record}`);
});
