/**
 * Churn soak (a script, not a test): the built agent in a network namespace discovers 200 nodes
 * through the fake Kubernetes API server while one node is added and one deleted every second.
 * Every 5 s it samples the agent's RSS, the destination_node series on /metrics against the live
 * nodes, the scrape latency and /healthz latency (polled every 100 ms: event-loop stalls), prints
 * a row, and at the end the table and the least-squares RSS slope in MiB/min.
 *
 *   npm run build && node dist/bench/soak.js [--minutes 10] [--quick] [--targets 200] [--every-ms 1000]
 *
 * --quick is one minute. Needs root (namespaces); touches nothing outside its own namespaces.
 * Exit code 0 when no stale series was seen and /metrics named exactly the live nodes at the end.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { churnHeader, churnRow, runChurn, seedChurn, type ChurnSample } from '../test/support/churn.js';
import { destinations, FaultControl, launchAgent, slope, until, type Agent } from '../test/support/fault-client.js';
import { createCluster, netnsSupported, type Cluster } from '../test/support/netns.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    quick: { type: 'boolean', default: false },
    targets: { type: 'string', default: '200' },
    'every-ms': { type: 'string', default: '1000' },
    'sample-ms': { type: 'string', default: '5000' },
  },
});
const minutes = values.quick ? 1 : Number(values.minutes);
const targets = Number(values.targets);
const everyMs = Number(values['every-ms']);
const sampleMs = Number(values['sample-ms']);
if (!(minutes > 0) || !(targets > 0) || !(everyMs > 0) || !(sampleMs > 0)) {
  process.stderr.write('usage: node dist/bench/soak.js [--minutes 10] [--quick] [--targets 200] [--every-ms 1000] [--sample-ms 5000]\n');
  process.exit(2);
}

const support = netnsSupported();
if (!support.ok) {
  process.stderr.write(`soak: network namespaces unavailable: ${support.reason ?? ''} (run as root with iproute2)\n`);
  process.exit(2);
}

const out = (line = ''): void => void process.stdout.write(`${line}\n`);
const fmt = (n: number, digits = 1): string => n.toFixed(digits);

async function main(): Promise<number> {
  let cluster: Cluster | undefined;
  let control: FaultControl | undefined;
  let agent: Agent | undefined;
  const dir = await mkdtemp(join(tmpdir(), 'mentat-soak-'));
  try {
    cluster = await createCluster({ nodes: 2, prefix: 'mts' });
    const [n0, n1] = cluster.nodes;
    control = await FaultControl.start(cluster, n0!.ns, dir);
    // Three times the live set: a new node never reuses the address of a live one.
    const pool = await cluster.addAddresses(n1!.ns, targets * 3);
    const seeded = await seedChurn(control, pool, targets);
    agent = launchAgent(cluster, n0!.ns, control, 2112, { NODE_NAME: 'node0', KUBECONFIG: control.kubeconfig });
    const a = agent;
    await until('/readyz 200', 30_000, async () => ((await a.get('/readyz')).status === 200 ? true : undefined), { context: () => a.describe() });
    await until(`${targets} destinations on /metrics`, 30_000, async () => (destinations(await a.scrape()).size >= targets ? true : undefined), {
      everyMs: 500,
    });
    const startRss = a.rssMiB();
    out(`mentat churn soak: ${targets} nodes, one added and one deleted every ${everyMs} ms, ${minutes} min, a sample every ${sampleMs / 1000} s`);
    out(`agent pid ${a.child.pid}, probe interval 1s (default), RSS at start ${fmt(startRss)} MiB`);
    out(`missing = live nodes older than 2.5 s without series; stale = series of nodes deleted over 2.5 s ago (a leak)`);
    out();
    out(churnHeader());
    const result = await runChurn(
      { control, agent: a, pool, targets, everyMs, durationMs: minutes * 60_000, sampleEveryMs: sampleMs, onSample: (s) => out(churnRow(s)) },
      seeded,
    );
    const settledAt = Date.now();
    const final = await until('series == live nodes after the churn', 10_000, async () => {
      const d = destinations(await a.scrape());
      return d.size === result.live.length && result.live.every((n) => d.has(n)) ? d : undefined;
    }).catch(() => undefined);
    const s = result.samples;
    const half = s.slice(Math.floor(s.length / 2));
    const steady = slope(half.map((x) => [x.atS / 60, x.rssMiB] as const));
    const worst = (f: (x: ChurnSample) => number) => Math.max(...s.map(f));
    const stale = s.reduce((acc, x) => acc + x.stale, 0);
    const missing = s.reduce((acc, x) => acc + x.missing, 0);
    out();
    out(`add+delete pairs: ${result.events} (${fmt(result.events / (minutes * 60), 2)}/s)`);
    out(`RSS: start ${fmt(startRss)} MiB, first sample ${fmt(s[0]!.rssMiB)}, last ${fmt(s[s.length - 1]!.rssMiB)}, max ${fmt(worst((x) => x.rssMiB))} MiB`);
    out(`RSS slope (least squares): ${fmt(result.rssSlopeMiBPerMin, 2)} MiB/min over the run; ${fmt(steady, 2)} MiB/min over the second half`);
    out(
      `series vs live: ${stale} stale and ${missing} missing observations over ${s.length} samples; at the end ${final ? `exactly the ${result.live.length} live nodes (${Date.now() - settledAt} ms after the churn stopped)` : 'NOT equal to the live nodes'}`,
    );
    out(
      `scrape latency: max ${fmt(worst((x) => x.scrapeMs))} ms; /healthz (event-loop stalls): mean ${fmt(s.reduce((acc, x) => acc + x.healthzMeanMs, 0) / s.length, 2)} ms, max ${fmt(worst((x) => x.healthzMaxMs))} ms, failures ${s.reduce((acc, x) => acc + x.healthzFailures, 0)}`,
    );
    const stop = await a.stop();
    out(`SIGTERM: exit ${stop.code} after ${stop.ms} ms`);
    return stale === 0 && final !== undefined && stop.code === 0 ? 0 : 1;
  } finally {
    await agent?.kill();
    control?.close();
    await cluster?.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
