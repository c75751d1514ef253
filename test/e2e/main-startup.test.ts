/** The built agent refusing to start (a bad value or flag, the controller without a cluster, an old Node) and its --version and --help. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MAIN, REPO } from '../support/agent-process.js';

const LOOPBACK = 'lo4=127.0.0.1,lo6=::1';

const BAD: Array<{ what: string; env?: Record<string, string>; args?: string[]; names: RegExp }> = [
  {
    what: 'interval in words',
    env: { MENTAT_PROBE_INTERVAL: 'fast' },
    names: /^MENTAT_PROBE_INTERVAL \(--probe-interval\) must be a duration with a unit.*; got "fast"$/,
  },
  { what: 'payload below the cookie, as a flag', args: ['--payload-size', '4'], names: /^MENTAT_PAYLOAD_SIZE \(--payload-size\) must be at least 8/ },
  {
    what: 'port out of range',
    env: { MENTAT_METRICS_PORT: '70000' },
    names: /^MENTAT_METRICS_PORT \(--metrics-port\) must be a port number from 0 to 65535; got "70000"$/,
  },
  {
    what: 'target address',
    env: { MENTAT_TARGETS: 'a=300.1.1.1' },
    names: /^MENTAT_TARGETS \(--targets\) has "300\.1\.1\.1", which is not an IPv4 or IPv6 address; give name=address pairs/,
  },
  { what: 'a flag without its value', args: ['--metrics-port'], names: /^--metrics-port needs a value, such as --metrics-port=2112$/ },
  {
    what: 'OTLP endpoint without a scheme',
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
    names: /^OTEL_EXPORTER_OTLP_ENDPOINT \(--otlp-endpoint\) must be an http:\/\/ or https:\/\/ URL/,
  },
  { what: 'negative packet budget', env: { MENTAT_MAX_PPS: '-1' }, names: /^MENTAT_MAX_PPS \(--max-pps\) must be a whole number from 0/ },
  {
    what: 'timeout above the interval',
    env: { MENTAT_PROBE_INTERVAL: '1s', MENTAT_PROBE_TIMEOUT: '2s' },
    names: /^MENTAT_PROBE_TIMEOUT \(--probe-timeout\) \(2s\) must not exceed MENTAT_PROBE_INTERVAL/,
  },
  {
    what: 'log level',
    env: { MENTAT_LOG_LEVEL: 'verbose' },
    names: /^MENTAT_LOG_LEVEL \(--log-level\) must be one of fatal, error, warn, info, debug, trace, silent; got "verbose"$/,
  },
  { what: 'misspelt flag', args: ['--probe-intervall', '1s'], names: /^unknown flag --probe-intervall; run with --help to list the settings$/ },
];

test('a bad value stops the real process with exit code 2 and exactly one stderr line naming the setting', { timeout: 30_000 }, async (t) => {
  const runs = await Promise.all(
    BAD.map(
      (c) =>
        new Promise<{ c: (typeof BAD)[number]; code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>((resolve) => {
          const started = Date.now();
          // Loopback targets: if a case wrongly passed validation, the agent would start here, not touch any network.
          const child = spawn(process.execPath, [MAIN, ...(c.args ?? [])], {
            cwd: REPO,
            env: {
              PATH: process.env['PATH'] ?? '/usr/bin:/bin',
              HOME: '/nonexistent',
              MENTAT_METRICS_HOST: '127.0.0.1',
              MENTAT_METRICS_PORT: '0',
              MENTAT_TARGETS: LOOPBACK,
              ...c.env,
            },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
          child.once('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ c, code, signal, stdout, stderr, ms: Date.now() - started });
          });
        }),
    ),
  );
  for (const r of runs) {
    assert.equal(r.code, 2, `${r.c.what}: exit code 2 (signal ${r.signal}); stdout ${r.stdout.slice(0, 300)}; stderr ${r.stderr}`);
    assert.equal(r.stdout, '', `${r.c.what}: nothing on stdout`);
    const lines = r.stderr.split('\n');
    assert.equal(lines.pop(), '', `${r.c.what}: stderr ends with a newline`);
    assert.equal(lines.length, 1, `${r.c.what}: exactly one stderr line: ${JSON.stringify(r.stderr)}`);
    const prefix = 'mentat: invalid configuration: ';
    assert.ok(lines[0]!.startsWith(prefix), `${r.c.what}: ${lines[0]}`);
    assert.match(lines[0]!.slice(prefix.length), r.c.names, r.c.what);
  }
  t.diagnostic(runs.map((r) => `${r.c.what} (${r.ms} ms): ${r.stderr.trim()}`).join('\n'));
});

test('the controller role without a cluster or a namespace exits 2 and says what it needs', { timeout: 20_000 }, async () => {
  for (const env of [{}, { POD_NAMESPACE: 'mentat' }, { MENTAT_TARGETS: LOOPBACK, POD_NAMESPACE: 'mentat' }]) {
    const child = spawn(process.execPath, [MAIN, '--role', 'controller'], {
      cwd: REPO,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent', MENTAT_METRICS_HOST: '127.0.0.1', MENTAT_METRICS_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    clearTimeout(timer);
    assert.equal(code, 2, `${JSON.stringify(env)}: exit 2; stdout ${stdout.slice(0, 500)}`);
    assert.match(stdout, /MENTAT_ROLE=controller needs Kubernetes \(a service account, or KUBECONFIG\) and POD_NAMESPACE/);
  }
});
test('--version and --help name the version of package.json', () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  const version = spawnSync(process.execPath, [MAIN, '--version'], { encoding: 'utf8' });
  assert.equal(version.status, 0);
  assert.equal(version.stdout, `mentat ${pkg.version}\n`);
  const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, new RegExp(`^mentat ${pkg.version.replaceAll('.', '\\.')}: `));
  assert.match(help.stdout, /--mesh {2}MENTAT_MESH \[auto\|full\|sampled\]/);
});

test("an older Node (the machine's own) is refused with one line that says what to run instead", (t) => {
  // The first `node` on PATH outside the repository: on this project's machines, the system's Node 20.
  const paths = (process.env['PATH'] ?? '').split(':').filter((p) => p !== '' && !p.startsWith(REPO));
  const system = paths.map((p) => join(p, 'node')).find((p) => existsSync(p));
  const major = system ? Number(spawnSync(system, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).stdout.trim()) : NaN;
  if (!system || !(major < 24)) {
    t.skip(`no Node older than 24 on PATH (${system ?? 'none'} ${Number.isNaN(major) ? '' : major})`);
    return;
  }
  const r = spawnSync(system, [MAIN], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', HOME: '/nonexistent' } });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(
    r.stderr,
    /^mentat: needs Node\.js 24 or newer; this is v\d+\.[\d.]+ \(.*\)\. In the repository run `npm start` \(it uses the Node 24 that `npm ci` installs in node_modules\/\.bin\), or node_modules\/\.bin\/node dist\/src\/main\.js\n$/,
  );
});
