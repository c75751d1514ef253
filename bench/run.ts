/**
 * `npm run bench`: one benchmark run of the built agent in network namespaces.
 * It reports figures next to their budgets and never fails on them.
 *
 *   node dist/bench/run.js [--quick] [--only accuracy,cost,scale,cluster,api] [--sizes 1,100,1000,5000]
 *                          [--shipped-nodes 5000] [--api-sizes 100,1000,5000] [--api-cpu-limit 200] [--profile] [--out DIR]
 *
 * 1. Accuracy (accuracy/), 2. Cost (cost.ts), 3. Scale (scale/), 4. Cluster cost, simulated
 * (cluster.ts), 5. API server load (api/). This file reads the arguments, sets up the namespaces
 * the sections share, runs the sections, and writes the report.
 *
 * Needs root, iproute2, iputils-ping, fping and prometheus-smokeping-prober
 * (a missing peer is reported, not fatal); `--only cluster` needs none of it. Progress goes to
 * stderr, the result table to stdout and to bench/results/latest.md (+ latest.json).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FaultControl } from '../test/support/fault-client.js';
import { addAddresses, createCluster, netnsSupported, type ClusterNode } from '../test/support/netns.js';
import { accuracyBudgets, accuracyReport } from './accuracy/report.js';
import { accuracy, accuracyParams, type AccuracyResult } from './accuracy/run.js';
import { apiAddresses, apiParams, type ApiResult } from './api/params.js';
import { apiBudgets, apiReport } from './api/report.js';
import { api } from './api/run.js';
import { clusterCost, clusterSection, type ClusterRow } from './cluster.js';
import { progress, REPO, runSeconds, type Ctx } from './context.js';
import { cost, costLarge, costParams, costReport, type CostResult } from './cost.js';
import { NsHttp } from './http-client.js';
import { formatProfile, summariseProfile } from './profile.js';
import { budgetReport } from './report.js';
import { scaleAddresses, scaleParams, type ScaleResult } from './scale/params.js';
import { scaleBudgets, scaleReport } from './scale/report.js';
import { scale } from './scale/run.js';
import { table } from './stats.js';
import { have, SMOKEPING_BIN, versionOf } from './tools.js';

const ALL_SECTIONS = ['accuracy', 'cost', 'scale', 'cluster', 'api'] as const;
type Section = (typeof ALL_SECTIONS)[number];

// ------------------------------------------------------------------ options

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    sizes: { type: 'string' },
    'shipped-nodes': { type: 'string' },
    'api-sizes': { type: 'string' },
    'api-cpu-limit': { type: 'string' },
    'cluster-sizes': { type: 'string' },
    'api-heap': { type: 'string' },
    profile: { type: 'boolean', default: false },
    out: { type: 'string' },
    render: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  process.stdout.write(
    [
      'usage: node dist/bench/run.js [--quick] [--only accuracy,cost,scale,cluster,api] [--sizes 1,100,1000,5000] [--shipped-nodes 5000] [--api-sizes 100,1000,5000] [--api-cpu-limit 200] [--cluster-sizes 100,1000,5000,100000] [--profile] [--out DIR]',
      '  --quick          shorter windows, fewer scrapes, API sizes 100 and 1000',
      '  --only           run only these sections',
      "  --sizes          target counts of the scale section's full-mesh rows (at most 5000)",
      "  --shipped-nodes  nodes of the scale section's agent as shipped (default 5000; 0: no such row)",
      '  --api-sizes      node counts of the API section (default 100,1000,5000; --quick: 100,1000)',
      "  --api-cpu-limit  run each agent of the API section under this CPU limit, millicores (the DaemonSet's: 200); default none",
      "  --api-heap A,C   the API section's followers and controllers with these V8 heaps (--max-old-space-size, MiB) instead of the manifests'",
      '  --cluster-sizes  node counts of the cluster simulation (default 100,1000,5000; up to 100000)',
      '  --profile        run every mentat of the accuracy, cost and full-mesh runs with --cpu-prof and summarise the profiles',
      '  --out            where latest.md and latest.json go (default bench/results)',
      "  --render FILE    no run: the report again from a latest.json (after a change to the report's text)",
      '',
    ].join('\n'),
  );
  process.exit(0);
}

const QUICK = args.quick;
const SECTIONS = new Set<Section>((args.only?.split(',').map((s) => s.trim()) ?? [...ALL_SECTIONS]) as Section[]);
for (const s of SECTIONS)
  if (!(ALL_SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: unknown section ${s} (sections: ${ALL_SECTIONS.join(', ')})`);
const numbers = (text: string | undefined): number[] | undefined => text?.split(',').map(Number);

const ACCURACY = accuracyParams(QUICK);
const COST = costParams(QUICK);
const SCALE = scaleParams(QUICK, numbers(args.sizes), args['shipped-nodes'] === undefined ? undefined : Number(args['shipped-nodes']));
const CLUSTER_SIZES = numbers(args['cluster-sizes']) ?? [100, 1000, 5000];
for (const n of CLUSTER_SIZES) if (!Number.isInteger(n) || n < 2 || n > 100_000) throw new Error(`--cluster-sizes: ${n} is not 2..100000`);
const API = apiParams(QUICK, numbers(args['api-sizes']), args['api-cpu-limit'] === undefined ? 0 : Number(args['api-cpu-limit']), numbers(args['api-heap']));
/** Every section's parameters, as latest.json records them. */
const P = { ...ACCURACY, ...COST, ...SCALE, ...API, clusterSizes: CLUSTER_SIZES };

// ===================================================================== main

function environment(): Record<string, string> {
  const git = (a: string[]): string => {
    try {
      return execFileSync('git', ['-C', REPO, ...a], { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  const dirty = git(['status', '--porcelain', '--', 'src', 'native']) !== '' ? ' (src modified)' : '';
  return {
    date: new Date().toISOString(),
    mode: QUICK ? 'quick' : 'full',
    // BENCH_REV names the build when the tree is not a git checkout (e.g. a `git archive` export).
    mentat: process.env['BENCH_REV'] ?? `${git(['rev-parse', '--short', 'HEAD'])}${dirty}`,
    node: process.version,
    kernel: release(),
    cpu: `${cpus()[0]?.model ?? '?'} × ${cpus().length}`,
    // Other work on the machine skews every figure: say how busy it was before the run.
    'load average before the run (1, 5 min)': loadavg()
      .slice(0, 2)
      .map((x) => x.toFixed(2))
      .join(', '),
    ping: versionOf('ping', ['-V']),
    fping: versionOf('fping', ['-v']),
    smokeping_prober: versionOf(SMOKEPING_BIN, ['--version']),
  };
}

interface Results {
  environment: Record<string, string>;
  parameters: typeof P;
  accuracy?: AccuracyResult;
  cost?: CostResult;
  scale?: ScaleResult;
  cluster?: ClusterRow[];
  api?: ApiResult;
  /** Wall time of each section, s. */
  sectionSeconds: Partial<Record<Section, number>>;
  seconds?: number;
}

let cleanupDir: string | undefined;

/** Runs `fn` as section `name`, recording its wall time. */
async function timed<T>(results: Results, name: Section, fn: () => Promise<T> | T): Promise<T> {
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    results.sectionSeconds[name] = (Date.now() - t0) / 1000;
  }
}

/** The sections that run agents in namespaces, with the namespaces, the fake API server and the HTTP hands they share. */
async function namespaced(results: Results, dir: string, profileDir: string | undefined): Promise<void> {
  const support = netnsSupported();
  if (!support.ok) {
    process.stderr.write(`bench: network namespaces are needed (run as root with iproute2): ${support.reason}\n`);
    process.exit(1);
  }
  if ((SECTIONS.has('accuracy') || SECTIONS.has('cost')) && !have('ping', ['-V'])) {
    process.stderr.write('bench: ping is needed (apt-get install -y iputils-ping fping prometheus-smokeping-prober)\n');
    process.exit(1);
  }
  const farmSize = Math.max(
    SECTIONS.has('cost') ? Math.max(COST.costTargets, COST.costLargeTargets) : 0,
    SECTIONS.has('scale') ? scaleAddresses(SCALE) : 0,
    SECTIONS.has('api') ? apiAddresses(API) : 0,
    1,
  );
  const cluster = await createCluster({ nodes: 2 + ACCURACY.accDelaysMs.length, prefix: 'mtb' });
  let control: FaultControl | undefined;
  let http: NsHttp | undefined;
  try {
    const [src, farm, ...responderNodes] = cluster.nodes as ClusterNode[];
    control = await FaultControl.start(cluster, src!.ns, dir);
    http = await NsHttp.start(cluster, src!.ns);
    progress(`adding ${farmSize} addresses to ${farm!.ns}`);
    const farmAddresses = await addAddresses(cluster, farm!.ns, farmSize);
    const ctx: Ctx = { cluster, control, http, dir, src: src!, farm: farm!, farmAddresses, profileDir, responderNodes };
    if (SECTIONS.has('accuracy')) results.accuracy = await timed(results, 'accuracy', () => accuracy(ctx, ACCURACY));
    if (SECTIONS.has('cost')) {
      results.cost = await timed(results, 'cost', async () => {
        const small = await cost(ctx, COST);
        const large = await costLarge(ctx, COST);
        return large ? { ...small, large } : small;
      });
    }
    if (SECTIONS.has('scale')) results.scale = await timed(results, 'scale', () => scale(ctx, SCALE));
    if (SECTIONS.has('api')) results.api = await timed(results, 'api', () => api(ctx, API));
  } finally {
    http?.close();
    control?.close();
    await cluster.destroy();
  }
}

/** The report; the parameters are the run's own (results.parameters), so a saved run renders as it ran. */
function report(results: Results, profileDir: string | undefined): string {
  const env = results.environment;
  const params = results.parameters;
  const budgets = [
    ...(results.accuracy ? accuracyBudgets(results.accuracy, params) : []),
    ...(results.scale ? scaleBudgets(results.scale) : []),
    ...(results.api ? apiBudgets(results.api) : []),
  ];
  const parts = [
    '# mentat benchmark',
    '',
    table(
      ['', ''],
      Object.entries(env).map(([k, v]) => [k, v]),
    ),
    '',
    budgetReport(budgets),
  ];
  if (results.accuracy) parts.push(accuracyReport(results.accuracy, params));
  if (results.cost) parts.push(costReport(results.cost));
  if (results.scale) parts.push(scaleReport(results.scale, params));
  if (results.cluster) parts.push(clusterSection(results.cluster, results.sectionSeconds.cluster ?? 0));
  if (results.api) parts.push(apiReport(results.api));
  if (profileDir && (results.accuracy || results.cost)) {
    const others: string[] = [];
    for (const sub of readdirSync(profileDir).filter((d) => !d.startsWith('scale-'))) {
      for (const f of readdirSync(join(profileDir, sub)).filter((f) => f.endsWith('.cpuprofile')))
        others.push(`${sub}: ${formatProfile(summariseProfile(join(profileDir, sub, f)))}`);
    }
    if (others.length > 0) parts.push('## CPU profiles of the other runs (--profile)', '', '```', ...others, '```', '');
  }
  const bySection = Object.entries(results.sectionSeconds)
    .map(([k, v]) => `${k} ${v.toFixed(0)} s`)
    .join(', ');
  parts.push(
    `Run time ${(results.seconds ?? 0).toFixed(0)} s (${env['mode']}; ${bySection}). Figures are reported, never judged: the run exits 0 whatever they are.`,
    '',
  );
  return parts.join('\n');
}

/** Writes the report (and, for a run, the results) to `--out`. */
function write(results: Results, profileDir: string | undefined, withJson: boolean): void {
  const text = report(results, profileDir);
  process.stdout.write(text);
  const outDir = args.out ?? join(REPO, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latest.md'), text);
  if (withJson) writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(results, (_k, v: unknown) => (v === Infinity ? 'Infinity' : v), 2)}\n`);
  progress(`wrote ${join(outDir, 'latest.md')}${withJson ? ' and latest.json' : ''}`);
}

async function main(): Promise<void> {
  if (args.render) {
    // JSON has no Infinity: the run wrote it as a string.
    write(JSON.parse(readFileSync(args.render, 'utf8'), (_k, v: unknown) => (v === 'Infinity' ? Infinity : v)) as Results, undefined, false);
    return;
  }
  const env = environment();
  const dir = mkdtempSync(join(tmpdir(), 'mentat-bench-'));
  cleanupDir = dir;
  const profileDir = args.profile ? join(dir, 'profiles') : undefined;
  if (profileDir) mkdirSync(profileDir);
  progress(`mode ${env['mode']}, sections ${[...SECTIONS].join(', ')}; namespaces under prefix mtb`);
  const results: Results = { environment: env, parameters: P, sectionSeconds: {} };
  if ([...SECTIONS].some((s) => s !== 'cluster')) await namespaced(results, dir, profileDir);
  if (SECTIONS.has('cluster')) {
    progress(`cluster: the mesh selection simulated at ${CLUSTER_SIZES.join(', ')} nodes`);
    results.cluster = await timed(results, 'cluster', () => clusterCost(CLUSTER_SIZES));
  }
  results.seconds = runSeconds();

  write(results, profileDir, true);
  if (profileDir) {
    const keep = join(args.out ?? join(REPO, 'bench', 'results'), 'profiles');
    rmSync(keep, { recursive: true, force: true });
    execFileSync('cp', ['-r', profileDir, keep]);
    progress(`CPU profiles copied to ${keep}`);
  }
}

// Ctrl-C: netns.ts kills what it spawned and deletes the namespaces on exit; the temp dir goes here.
process.on('exit', () => {
  if (cleanupDir) rmSync(cleanupDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    process.exit(130);
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
