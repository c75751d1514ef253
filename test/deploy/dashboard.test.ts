/**
 * The Grafana dashboard (deploy/dashboards/mentat.json): valid, its queries only on the agent's
 * metrics and labels, and every query accepted by promtool's PromQL parser.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dump } from 'js-yaml';
import { AGENT_LABELS, AGENT_METRICS, labelsIn, metricsIn } from './promql.js';
import { need, readRepo, run, type Obj } from './render.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos?: Obj;
  datasource?: { type: string; uid: string };
  targets?: { expr?: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}

interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
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

function checkQuery(expr: string, variables: ReadonlySet<string>): void {
  const metrics = metricsIn(expr);
  assert.ok(metrics.size > 0, `no metric in ${expr}`);
  for (const m of metrics) assert.ok(AGENT_METRICS.has(m), `unknown metric ${m} in ${expr}`);
  for (const l of labelsIn(expr)) assert.ok(AGENT_LABELS.has(l), `unknown label ${l} in ${expr}`);
  if ([...metrics].some((m) => m.startsWith('node_latency'))) {
    assert.ok(expr.includes('origin_node') && expr.includes('destination_node'), `${expr} filters or groups by origin_node and destination_node`);
  }
  for (const ref of expr.matchAll(/\$\{?(\w+)/g)) assert.ok(ref[1]!.startsWith('__') || variables.has(ref[1]!), `undefined variable $${ref[1]} in ${expr}`);
}

test('dashboard: valid JSON whose queries use only the agent\'s metrics and labels', (t) => {
  const dashboard = JSON.parse(readRepo('deploy/dashboards/mentat.json')) as Dashboard;
  assert.ok(dashboard.uid && dashboard.title);
  const variables = new Set(dashboard.templating.list.map((v) => v.name));
  const panels = allPanels(dashboard.panels);
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  const exprs = queries(panels);
  const titles = panels.map((p) => p.title.toLowerCase()).join('\n');
  for (const needed of ['p50', 'p99', 'loss', '×']) assert.ok(titles.includes(needed), `a panel about ${needed}`);
  assert.ok(panels.some((p) => p.type === 'table' || p.type === 'heatmap'), 'an origin × destination matrix');
  checkVariables(dashboard);
  for (const expr of exprs) checkQuery(expr, variables);

  const promtool = need(t, 'promtool', 'Debian package prometheus');
  if (!promtool) return;
  // The PromQL itself, with Grafana's variables filled in, as recording rules promtool parses.
  const grafana = (expr: string) => expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?(origin|destination)\}?/g, '.*');
  const dir = mkdtempSync(join(tmpdir(), 'mentat-dashboard-'));
  try {
    const file = join(dir, 'dashboard-rules.yaml');
    writeFileSync(file, dump({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `mentat_dashboard:query_${i}`, expr: grafana(expr) })) }] }));
    const r = run(promtool, ['check', 'rules', file]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
