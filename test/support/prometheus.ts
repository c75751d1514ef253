import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster } from './netns.js';
import type { FaultControl } from './fault-client.js';

/** True when Debian's prometheus binary is installed. */
export function prometheusAvailable(): boolean {
  return spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface PrometheusServer {
  readonly url: string;
  readonly process: ChildProcess;
  /** Runs an instant query; returns the first sample's value (NaN when there is none). */
  query(expr: string): Promise<number>;
  /** Runs an instant query and returns the raw result vector. */
  queryVector(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
}

/** A real Prometheus inside a namespace, scraping `targets` every second. */
export async function startPrometheus(cluster: Cluster, ns: string, control: FaultControl, dir: string, targets: string[], port = 9090): Promise<PrometheusServer> {
  const config = join(dir, 'prometheus.yml');
  await writeFile(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: mentat',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const url = `http://127.0.0.1:${port}`;
  const child = cluster.spawnIn(ns, 'prometheus', [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  child.stdout?.resume();
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
  const queryVector = async (expr: string) => {
    const r = await control.fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (r.status !== 200) throw new Error(`query ${expr} failed: ${r.status} ${r.body}`);
    const parsed = JSON.parse(r.body) as { data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    return parsed.data.result;
  };
  return {
    url,
    process: child,
    queryVector,
    async query(expr) {
      const result = await queryVector(expr);
      return result.length === 0 ? Number.NaN : Number(result[0]!.value[1]);
    },
  };
}
