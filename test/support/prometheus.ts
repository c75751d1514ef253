/** A real Prometheus for the e2e tests: started in a namespace, its scrape targets replaced at runtime, queried and asked for alerts. */
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster } from './netns.js';
import type { FaultControl } from './fault-client.js';

/** True when Debian's prometheus binary is installed. */
export function prometheusAvailable(): boolean {
  return spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Call at the top of a test that needs Prometheus: false (the test skipped) without it, an error under CI. */
export function requirePrometheus(t: { skip(message: string): void }): boolean {
  if (prometheusAvailable()) return true;
  if (process.env['CI'] === 'true') throw new Error('prometheus is required under CI (apt-get install prometheus)');
  t.skip('prometheus is not installed');
  return false;
}

export interface PrometheusServer {
  readonly url: string;
  readonly process: ChildProcess;
  /** Replaces the scraped targets (file-based discovery: what Kubernetes discovery does when pods come and go). */
  setTargets(targets: ReadonlyArray<{ target: string; labels?: Record<string, string> }>): Promise<void>;
  /** Active alerts, pending and firing. */
  alerts(): Promise<Array<{ labels: Record<string, string>; state: string; activeAt: string; value: string }>>;
  /** Runs an instant query; returns the first sample's value (NaN when there is none). */
  query(expr: string): Promise<number>;
  /** Runs an instant query and returns the raw result vector. */
  queryVector(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
}

export interface PrometheusOptions {
  /** Scrape and rule evaluation interval in seconds (default 1). */
  readonly intervalS?: number;
  /** Rule files to load (absolute paths). */
  readonly ruleFiles?: readonly string[];
  /** Labels of each target (e.g. the `node` label the alerts use), by target. */
  readonly labels?: Readonly<Record<string, Record<string, string>>>;
}

/** Writes prometheus.yml in `dir`: job mentat from the file-based discovery of `targetsFile`, every `intervalS`, with `ruleFiles`. */
async function writeConfig(dir: string, targetsFile: string, options: PrometheusOptions): Promise<string> {
  const config = join(dir, 'prometheus.yml');
  const interval = `${options.intervalS ?? 1}s`;
  await writeFile(
    config,
    [
      'global:',
      `  scrape_interval: ${interval}`,
      `  evaluation_interval: ${interval}`,
      ...(options.ruleFiles ? ['rule_files:', ...options.ruleFiles.map((f) => `  - '${f}'`)] : []),
      'scrape_configs:',
      '  - job_name: mentat',
      '    file_sd_configs:',
      `      - files: ['${targetsFile}']`,
      '',
    ].join('\n'),
  );
  return config;
}

/** Polls /-/ready for up to 20 s; fails with Prometheus' last stderr if it exits or stays unready. */
async function untilReady(control: FaultControl, url: string, child: ChildProcess): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await control.fetch(`${url}/-/ready`, { timeoutMs: 2000 });
    if (r.status === 200) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`prometheus did not become ready: ${stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** A real Prometheus inside a namespace, scraping `targets` (job mentat) every second, or as `options` say. */
export async function startPrometheus(
  cluster: Cluster,
  ns: string,
  control: FaultControl,
  dir: string,
  targets: string[],
  port = 9090,
  options: PrometheusOptions = {},
): Promise<PrometheusServer> {
  const targetsFile = join(dir, 'targets.json');
  const setTargets = async (list: ReadonlyArray<{ target: string; labels?: Record<string, string> }>): Promise<void> => {
    // Written to a temporary name and renamed: Prometheus never reads half a file.
    await writeFile(`${targetsFile}.tmp`, JSON.stringify(list.map((t) => ({ targets: [t.target], labels: t.labels ?? {} }))));
    await rename(`${targetsFile}.tmp`, targetsFile);
  };
  await setTargets(targets.map((target) => ({ target, ...(options.labels?.[target] ? { labels: options.labels[target] } : {}) })));
  const config = await writeConfig(dir, targetsFile, options);
  const url = `http://127.0.0.1:${port}`;
  const child = cluster.spawnIn(ns, 'prometheus', [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  child.stdout?.resume();
  await untilReady(control, url, child);
  const queryVector = async (expr: string) => {
    const r = await control.fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (r.status !== 200) throw new Error(`query ${expr} failed: ${r.status} ${r.body}`);
    const parsed = JSON.parse(r.body) as { data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    return parsed.data.result;
  };
  return {
    url,
    process: child,
    setTargets,
    async alerts() {
      const r = await control.fetch(`${url}/api/v1/alerts`);
      if (r.status !== 200) throw new Error(`alerts: ${r.status} ${r.body}`);
      return (JSON.parse(r.body) as { data: { alerts: Array<{ labels: Record<string, string>; state: string; activeAt: string; value: string }> } }).data
        .alerts;
    },
    queryVector,
    async query(expr) {
      const result = await queryVector(expr);
      return result.length === 0 ? Number.NaN : Number(result[0]!.value[1]);
    },
  };
}
