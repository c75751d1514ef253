/**
 * The shipped rules name the bad node: promtool unit tests on synthetic series of 20 nodes (a full
 * mesh, two zones), generated here because 380 pairs are too many to write by hand. One slow
 * destination, one slow origin, one bad pair between two healthy nodes (and one both lossy and
 * slow), one node scaled down as the autoscaler does it, one new node, one node uncordoned by a new
 * pod: the exact alerts that fire, and that no other does.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dump } from 'js-yaml';
import { LOCALIZATION_ALERTS } from './promql.js';
import { need, REPO, run } from './render.js';

const MINUTES = 40;
const PROBES_PER_MINUTE = 60;
const nodes = Array.from({ length: 20 }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);
const zoneOf = (n: string) => (Number(n.slice(1)) % 2 === 1 ? 'z-a' : 'z-b');

/** What happens to the pair origin → destination in minute m. */
interface Minute {
  /** Absent: the pair is not probed (or its agent not scraped) this minute. */
  readonly present: boolean;
  readonly rttSeconds: number;
  readonly lost: number;
}

const SLOW_DESTINATION = 'n03';
const SLOW_ORIGIN = 'n07';
const BAD_PAIR = ['n11', 'n12'] as const;
/** Lossy and slow at once: one alert for it, not one per kind. */
const WORSE_PAIR = ['n13', 'n14'] as const;
/** Cordoned until minute 12 by its old pod; a new pod reports it active from then on. */
const UNCORDONED = 'n16';
/** Cordoned and tainted at minute 8 (its agent says leaving), no longer probed and its agent stopped at minute 9. */
const LEAVING = 'n15';
/** Created at minute 5: probed (with loss while its network comes up) at once, its agent reports from minute 7, joining until 15. */
const NEW = 'n20';
const FAULTS_FROM = 10;

function pairMinute(origin: string, destination: string, m: number): Minute {
  if ((origin === LEAVING || destination === LEAVING) && m >= 9) return { present: false, rttSeconds: 0, lost: 0 };
  if (destination === NEW && m < 5) return { present: false, rttSeconds: 0, lost: 0 };
  if (origin === NEW && m < 7) return { present: false, rttSeconds: 0, lost: 0 };
  let rttSeconds = zoneOf(origin) === zoneOf(destination) ? 0.0002 : 0.001;
  let lost = 0;
  if (m >= FAULTS_FROM && (destination === SLOW_DESTINATION || origin === SLOW_ORIGIN)) rttSeconds += 0.005;
  if (m >= FAULTS_FROM && origin === BAD_PAIR[0] && destination === BAD_PAIR[1]) lost = PROBES_PER_MINUTE;
  if (m >= FAULTS_FROM && origin === WORSE_PAIR[0] && destination === WORSE_PAIR[1]) {
    lost = PROBES_PER_MINUTE * 0.3;
    rttSeconds += 0.01;
  }
  // The new node's network is not quite up in its first minutes: a third of its probes are lost.
  if ((origin === NEW || destination === NEW) && m < 9) lost = PROBES_PER_MINUTE / 3;
  return { present: true, rttSeconds, lost };
}

/** promtool's value list of a counter that grows by `inc(m)` each minute, `stale` once it is gone. */
function counter(inc: (m: number) => number | undefined): string {
  let total = 0;
  const values: string[] = [];
  let live = false;
  for (let m = 0; m <= MINUTES; m++) {
    const i = inc(m);
    if (i === undefined) {
      // A staleness marker where the series ends, as Prometheus writes one when a target stops exposing it.
      values.push(live ? 'stale' : '_');
      live = false;
      continue;
    }
    live = true;
    total += i;
    values.push(String(Number(total.toFixed(9))));
  }
  return values.join(' ');
}

function gauge(value: (m: number) => number | undefined): string {
  const values: string[] = [];
  let last: number | undefined;
  for (let m = 0; m <= MINUTES; m++) {
    const v = value(m);
    values.push(v !== undefined ? String(v) : last !== undefined ? 'stale' : '_');
    last = v;
  }
  return values.join(' ');
}

function inputSeries(): Array<{ series: string; values: string }> {
  const series: Array<{ series: string; values: string }> = [];
  for (const o of nodes) {
    for (const d of nodes) {
      if (o === d) continue;
      const labels = `origin_node="${o}",origin_zone="${zoneOf(o)}",destination_node="${d}",destination_zone="${zoneOf(d)}"`;
      const at = (m: number) => pairMinute(o, d, m);
      const ok = (m: number) => (at(m).present ? PROBES_PER_MINUTE - at(m).lost : undefined);
      series.push({ series: `node_latency_count{${labels}}`, values: counter(ok) });
      series.push({
        series: `node_latency_sum{${labels}}`,
        values: counter((m) => (at(m).present ? (PROBES_PER_MINUTE - at(m).lost) * at(m).rttSeconds : undefined)),
      });
      series.push({ series: `node_latency_probes_total{${labels},result="success"}`, values: counter(ok) });
      series.push({ series: `node_latency_probes_total{${labels},result="timeout"}`, values: counter((m) => (at(m).present ? at(m).lost : undefined)) });
      series.push({ series: `node_latency_probes_total{${labels},result="error"}`, values: counter((m) => (at(m).present ? 0 : undefined)) });
    }
    // Each agent's own node: its state, and whether Prometheus reaches it (the target stays in service discovery).
    const state = (m: number): string | undefined => {
      if (o === NEW) return m < 7 ? undefined : m < 15 ? 'joining' : 'active';
      if (o === LEAVING) return m < 8 ? 'active' : m < 9 ? 'leaving' : undefined;
      return 'active';
    };
    for (const s of ['active', 'joining', 'cordoned', 'leaving']) {
      if (o === UNCORDONED) {
        // Two pods one after the other: their series differ by the pod label, as scraped series do.
        series.push({
          series: `mentat_node_state{origin_node="${o}",pod="old",state="${s}"}`,
          values: gauge((m) => (m < 12 ? (s === 'cordoned' ? 1 : 0) : undefined)),
        });
        series.push({
          series: `mentat_node_state{origin_node="${o}",pod="new",state="${s}"}`,
          values: gauge((m) => (m >= 12 ? (s === 'active' ? 1 : 0) : undefined)),
        });
        continue;
      }
      series.push({
        series: `mentat_node_state{origin_node="${o}",state="${s}"}`,
        values: gauge((m) => (state(m) === undefined ? undefined : state(m) === s ? 1 : 0)),
      });
    }
    series.push({ series: `mentat_targets{origin_node="${o}",state="known"}`, values: gauge((m) => (state(m) === undefined ? undefined : 19)) });
    series.push({
      series: `up{job="mentat",node="${o}",instance="${o}:2112"}`,
      values: gauge((m) => (o === NEW && m < 7 ? undefined : o === LEAVING && m >= 9 ? 0 : 1)),
    });
  }
  return series;
}

const zoneLabels = (o: string, d: string) => ({ origin_node: o, origin_zone: zoneOf(o), destination_node: d, destination_zone: zoneOf(d) });

function alertTests(): unknown[] {
  const runbook = (alert: string) => `https://github.com/mentat-dev/mentat/blob/main/deploy/README.md#${alert.toLowerCase()}`;
  const degraded = [
    {
      exp_labels: { severity: 'warning', node: SLOW_DESTINATION },
      exp_annotations: {
        summary: `Node ${SLOW_DESTINATION} is degraded: latency to it, seen by most of the agents that probe it`,
        description: `round trips are 5ms above their zone pair's baseline for the median agent probing it. Look first at the node itself: deploy/README.md, runbook, MentatNodeDegraded.`,
        runbook_url: runbook('MentatNodeDegraded'),
      },
    },
    {
      exp_labels: { severity: 'warning', node: SLOW_ORIGIN },
      exp_annotations: {
        summary: `Node ${SLOW_ORIGIN} is degraded: latency from it, seen by most of the nodes it probes`,
        description: `round trips are 5ms above their zone pair's baseline for the median destination of its agent. Look first at the node itself: deploy/README.md, runbook, MentatNodeDegraded.`,
        runbook_url: runbook('MentatNodeDegraded'),
      },
    },
  ];
  const pathAlert = ([o, d]: readonly [string, string], lost: string) => ({
    exp_labels: { severity: 'warning', kind: 'loss', path: 'node', ...zoneLabels(o, d) },
    exp_annotations: {
      summary: `The path from ${o} to ${d}: loss, while both nodes are fine otherwise`,
      description: `${lost} of the probes from ${o} to ${d} fail; neither node is degraded towards the others. Look first at what lies between them: deploy/README.md, runbook, MentatPathDegraded.`,
      runbook_url: runbook('MentatPathDegraded'),
    },
  });
  const path = [pathAlert(BAD_PAIR, '100%'), pathAlert(WORSE_PAIR, '30%')];
  const quiet = ['MentatAgentDown', 'MentatNodeWithoutAgent', 'MentatNodeUnprobed', 'MentatStaleNodeList', 'MentatTargetsOverCap', 'MentatAgentsAbsent'];
  return [
    // Before the faults: the new node's loss and the leaving node raise nothing.
    ...[6, 8, 9].flatMap((m) => LOCALIZATION_ALERTS.map((alertname) => ({ eval_time: `${m}m`, alertname, exp_alerts: [] }))),
    // The faults start at minute 10; the 3-minute windows and the 2- and 3-minute holds make them fire by 16.
    { eval_time: '16m', alertname: 'MentatNodeDegraded', exp_alerts: degraded },
    { eval_time: '16m', alertname: 'MentatPathDegraded', exp_alerts: path },
    { eval_time: '30m', alertname: 'MentatNodeDegraded', exp_alerts: degraded },
    { eval_time: '30m', alertname: 'MentatPathDegraded', exp_alerts: path },
    ...quiet.flatMap((alertname) => [12, 30].map((m) => ({ eval_time: `${m}m`, alertname, exp_alerts: [] }))),
  ];
}

function scoreTests(): unknown[] {
  return [
    // The localization scores themselves: the slow destination seen ~5 ms above its baseline by most of its observers.
    {
      expr: `round(mentat:node:destination_latency_excess_seconds{node="${SLOW_DESTINATION}"} * 1000)`,
      eval_time: '20m',
      exp_samples: [{ labels: `{node="${SLOW_DESTINATION}",path="node"}`, value: 5 }],
    },
    {
      expr: `round(mentat:node:origin_latency_excess_seconds{node="${SLOW_ORIGIN}"} * 1000)`,
      eval_time: '20m',
      exp_samples: [{ labels: `{node="${SLOW_ORIGIN}",path="node"}`, value: 5 }],
    },
    {
      expr: `mentat:node:destination_failed_ratio{node="${BAD_PAIR[1]}"}`,
      eval_time: '20m',
      exp_samples: [{ labels: `mentat:node:destination_failed_ratio{node="${BAD_PAIR[1]}",path="node"}`, value: 0 }],
    },
    {
      expr: `mentat:node:inactive`,
      eval_time: '11m',
      exp_samples: [`mentat:node:inactive{node="${LEAVING}"}`, `mentat:node:inactive{node="${NEW}"}`, `mentat:node:inactive{node="${UNCORDONED}"}`].map(
        (labels) => ({ labels, value: 1 }),
      ),
    },
    // The old pod's cordoned series is still within the hour, but the new pod says active: active it is.
    {
      expr: `mentat:node:inactive`,
      eval_time: '14m',
      exp_samples: [`mentat:node:inactive{node="${LEAVING}"}`, `mentat:node:inactive{node="${NEW}"}`].map((labels) => ({ labels, value: 1 })),
    },
    {
      expr: `round(mentat:zone_pair:latency_seconds{origin_zone="z-a",destination_zone="z-b"} * 1e6)`,
      eval_time: '20m',
      exp_samples: [{ labels: '{origin_zone="z-a",destination_zone="z-b",path="node"}', value: 1000 }],
    },
  ];
}

test('promtool on 20 synthetic nodes: one alert per bad node, one for the bad path, none for the leaving and the new node', (t) => {
  const promtool = need(t, 'promtool', 'Debian package prometheus');
  if (!promtool) return;
  const dir = mkdtempSync(join(tmpdir(), 'mentat-localization-'));
  try {
    copyFileSync(join(REPO, 'deploy/rules/mentat.rules.yaml'), join(dir, 'mentat.rules.yaml'));
    const file = {
      rule_files: ['mentat.rules.yaml'],
      evaluation_interval: '1m',
      tests: [{ interval: '1m', input_series: inputSeries(), alert_rule_test: alertTests(), promql_expr_test: scoreTests() }],
    };
    writeFileSync(join(dir, 'localization.test.yaml'), dump(file, { lineWidth: -1 }));
    const r = run(promtool, ['test', 'rules', join(dir, 'localization.test.yaml')]);
    assert.equal(r.status, 0, (r.stdout + r.stderr).slice(0, 6000));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
