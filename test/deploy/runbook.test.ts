/**
 * The runbook: every alert's runbook_url points at a heading of deploy/README.md, under the anchor
 * GitHub makes of it, so a link from an alert lands on its section.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { load } from 'js-yaml';
import { readRepo } from './render.js';

const RUNBOOK = 'deploy/README.md';
const RUNBOOK_URL = 'https://github.com/mentat-dev/mentat/blob/main/deploy/README.md';

/**
 * The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped but for `-`
 * and `_`, spaces to `-`, a repeated one suffixed -1, -2, ... Code blocks hold no headings.
 */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const m = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\s_-]/gu, '')
      .trim()
      .replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    found.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return found;
}

test("anchors: GitHub's, outside code blocks", () => {
  const md = '# Deploying mentat\n## Prometheus: Operator or plain\n```sh\n# not a heading\n```\n### `MentatNodeDegraded`\n## Alerts\n## Alerts\n';
  assert.deepEqual([...anchors(md)], ['deploying-mentat', 'prometheus-operator-or-plain', 'mentatnodedegraded', 'alerts', 'alerts-1']);
});

test(`runbook: every alert links to a section of ${RUNBOOK}`, () => {
  const groups = (load(readRepo('deploy/rules/mentat.rules.yaml')) as { groups: { rules: { alert?: string; annotations?: Record<string, string> }[] }[] })
    .groups;
  const alerts = groups.flatMap((g) => g.rules).filter((r) => r.alert);
  assert.ok(alerts.length > 0);
  const headings = anchors(readRepo(RUNBOOK));
  for (const { alert, annotations } of alerts) {
    const url = annotations?.['runbook_url'];
    assert.ok(url, `${alert}: runbook_url`);
    const [page, anchor] = url.split('#');
    assert.equal(page, RUNBOOK_URL, `${alert}: runbook_url is ${RUNBOOK}`);
    assert.ok(anchor && headings.has(anchor), `${alert}: ${RUNBOOK} has no heading with the anchor #${anchor}`);
  }
});
