/**
 * The container image, built from the Dockerfile and run for real: test/image/build.sh builds it
 * with buildah (no Docker engine, no registry: a local stand-in for the base image), then podman
 * runs it the way the default DaemonSet does (its uid, no capability, read-only root filesystem,
 * no_new_privs, the ping_group_range sysctl, its memory and CPU limits, no network but its own
 * loopback), as the host-network overlay's fallback does (root with NET_RAW only, raw ICMP), and
 * without the sysctl, where the agent must refuse to start with a clear message.
 * Needs root, buildah, podman, runc and debootstrap, and the Debian mirror and npm registry
 * reachable; skips without root or a tool, fails under CI=true. Everything it creates (storage,
 * images, containers) lives in one temporary folder, removed at the end even on failure.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { load } from 'js-yaml';
import { REPO } from '../support/agent-process.js';
import { CI, container, envOf, need, PKG, podSpec, resolvedEnv, type K8sObject, type Obj } from '../deploy/render.js';

/** The budget of the issue: Node alone is ~130 MB of it. */
const MAX_IMAGE_BYTES = 200_000_000;
const METRICS_PORT = 2112;

interface Exec {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function exec(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // The child is ours: ended by its PID if it hangs.
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs?: number): Promise<string> {
  const r = await exec(cmd, args, env, timeoutMs);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function ready(t: TestContext): boolean {
  if (process.getuid?.() !== 0) {
    assert.ok(!CI, 'CI runs as root');
    t.skip('needs root (debootstrap, buildah and podman with their own storage)');
    return false;
  }
  return ['buildah', 'podman', 'runc', 'debootstrap', 'npm'].every((tool) => need(t, tool, 'apt-get install buildah podman runc debootstrap') !== undefined);
}

/** podman run flags for a pod spec and its container, as the kubelet would apply them. */
function podmanFlags(pod: Obj, c: Obj): string[] {
  const podSc = pod['securityContext'] as { runAsUser: number; runAsGroup: number; sysctls?: { name: string; value: string }[] };
  const cSc = c['securityContext'] as { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean; capabilities: { drop: string[]; add?: string[] } };
  const limits = (c['resources'] as { limits: { cpu: string; memory: string } }).limits;
  // What the mapping below knows how to express; anything else must be added here.
  assert.deepEqual(cSc.capabilities.drop, ['ALL']);
  assert.equal(cSc.readOnlyRootFilesystem, true);
  assert.equal(cSc.allowPrivilegeEscalation, false);
  const memoryMi = /^(\d+)Mi$/.exec(limits.memory)?.[1];
  const milliCpu = /^(\d+)m$/.exec(limits.cpu)?.[1];
  assert.ok(memoryMi && milliCpu, `limits ${JSON.stringify(limits)}`);
  return [
    '--runtime',
    'runc',
    // A network namespace with nothing but its own loopback, as the pod's is before the CNI adds an interface.
    '--network',
    'none',
    '--user',
    `${podSc.runAsUser}:${podSc.runAsGroup}`,
    '--cap-drop=ALL',
    ...(cSc.capabilities.add ?? []).map((cap) => `--cap-add=${cap}`),
    // Kubernetes adds no tmpfs to a read-only root filesystem; podman would by default.
    '--read-only',
    '--read-only-tmpfs=false',
    '--security-opt',
    'no-new-privileges',
    ...(podSc.sysctls ?? []).flatMap((s) => ['--sysctl', `${s.name}=${s.value}`]),
    '--memory',
    `${memoryMi}m`,
    '--cpus',
    String(Number(milliCpu) / 1000),
  ];
}

/** The container's environment, less discovery (no API server here): it probes the loopback instead. */
function envFlags(c: Obj): string[] {
  const env = resolvedEnv(c, { 'spec.nodeName': 'node-a', 'metadata.name': 'mentat-x1y2z', 'metadata.namespace': 'mentat' });
  delete env['MENTAT_DISCOVERY'];
  env['MENTAT_TARGETS'] = 'lo=127.0.0.1';
  return Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
}

interface Variant {
  readonly pod: Obj;
  readonly c: Obj;
}

/** The default DaemonSet, and the same with the host-network overlay's patch applied by hand (root, NET_RAW, no sysctl). */
function variants(): { daemonSet: Variant; hostNetwork: Variant } {
  const ds = load(readFileSync(join(REPO, 'deploy/base/daemonset.yaml'), 'utf8')) as K8sObject;
  const daemonSet = { pod: podSpec(ds), c: container(ds, 'mentat') };
  const patch = load(readFileSync(join(REPO, 'deploy/overlays/host-network/daemonset-patch.yaml'), 'utf8')) as K8sObject;
  const patchPod = podSpec(patch);
  const patchC = container(patch, 'mentat');
  const hostNetwork = structuredClone(daemonSet);
  const podSc = hostNetwork.pod['securityContext'] as Obj;
  const psc = patchPod['securityContext'] as Obj;
  Object.assign(podSc, { runAsUser: psc['runAsUser'], runAsGroup: psc['runAsGroup'], runAsNonRoot: psc['runAsNonRoot'] });
  delete podSc['sysctls'];
  (hostNetwork.c['securityContext'] as Obj)['capabilities'] = (patchC['securityContext'] as Obj)['capabilities'];
  const mode = envOf(patchC).find((e) => e.name === 'MENTAT_ICMP_MODE');
  assert.ok(mode?.value);
  hostNetwork.c['env'] = envOf(hostNetwork.c).map((e) => (e.name === mode.name ? mode : e));
  return { daemonSet, hostNetwork };
}

/** Polls /readyz and /metrics from inside the container (its network is its own) until ready and a probe of lo succeeded. */
const INSIDE = `
const get = async (path) => { try { const r = await fetch('http://127.0.0.1:${METRICS_PORT}' + path); return { status: r.status, body: await r.text() }; } catch (e) { return { status: 0, body: String(e) }; } };
const deadline = Date.now() + 30000;
for (;;) {
  const readyz = await get('/readyz'), healthz = await get('/healthz'), metrics = await get('/metrics');
  const line = metrics.body.split('\\n').find((l) => l.startsWith('node_latency_probes_total{') && l.includes('destination_node="lo"') && l.includes('result="success"'));
  const result = { readyz: readyz.status, healthz: healthz.status, success: line ? Number(line.split(' ').at(-1)) : 0 };
  if ((result.readyz === 200 && result.success > 0) || Date.now() > deadline) { console.log(JSON.stringify(result)); break; }
  await new Promise((r) => setTimeout(r, 500));
}`;

interface Logged {
  readonly msg?: string;
  readonly level?: number;
  readonly icmp?: string[];
}

function logLines(text: string): Logged[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Logged);
}

/** Runs the image detached, checks it from inside, then SIGTERM: exit 0 and "mentat stopped". Returns the ICMP sockets it opened. */
async function runAndStop(t: TestContext, env: NodeJS.ProcessEnv, image: string, name: string, v: Variant): Promise<string[]> {
  await ok('podman', ['run', '--detach', '--name', name, ...podmanFlags(v.pod, v.c), ...envFlags(v.c), image], env);
  const inside = JSON.parse(await ok('podman', ['exec', name, 'node', '--input-type=module', '-e', INSIDE], env, 60_000)) as {
    readyz: number;
    healthz: number;
    success: number;
  };
  const stats = await exec('podman', ['stats', '--no-stream', '--format', '{{.MemUsage}} {{.CPUPerc}}', name], env);
  const logs = async () => (await ok('podman', ['logs', name], env)).trim();
  assert.deepEqual({ readyz: inside.readyz, healthz: inside.healthz }, { readyz: 200, healthz: 200 }, `${name}: ${await logs()}`);
  assert.ok(inside.success > 0, `${name}: no successful probe of the loopback: ${await logs()}`);
  await ok('podman', ['kill', '--signal', 'TERM', name], env);
  // The agent exits 0 within 5 s of SIGTERM; podman stop would SIGKILL after 10.
  const code = (await ok('podman', ['wait', name], env, 15_000)).trim();
  const output = await logs();
  const lines = logLines(output);
  assert.equal(code, '0', `${name}: exit code after SIGTERM: ${output}`);
  assert.ok(
    lines.some((l) => l.msg === 'mentat stopped'),
    `${name}: "mentat stopped": ${output}`,
  );
  assert.deepEqual(
    lines.filter((l) => (l.level ?? 0) >= 50),
    [],
    `${name}: no error or fatal line`,
  );
  const icmp = lines.find((l) => l.msg === 'mentat started')?.icmp ?? [];
  t.diagnostic(`${name}: ${inside.success} probes of lo answered, ICMP ${icmp.join(', ')}; memory, CPU: ${stats.stdout.trim()}`);
  return icmp;
}

async function build(t: TestContext, store: string, env: NodeJS.ProcessEnv): Promise<string> {
  const started = Date.now();
  const r = await exec('bash', [join(REPO, 'test/image/build.sh'), store], env, 15 * 60_000);
  assert.equal(r.code, 0, `test/image/build.sh failed:\n${r.stderr}`);
  t.diagnostic(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  for (const line of r.stderr.trim().split('\n')) t.diagnostic(line);
  return r.stdout.trim().split('\n').at(-1)!;
}

/** Removes every container, image and layer of the temporary storage, and the folder. */
async function removeStore(store: string, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    // Only with the folder's own configuration: without it podman would reset the machine's storage.
    const own = ['storage.conf', 'containers.conf'].every((f) => existsSync(join(store, f)));
    if (own) await exec('podman', ['system', 'reset', '--force'], env, 120_000);
  } finally {
    // Overlay mounts a killed podman left behind, under this folder only.
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${store}/`));
    for (const m of mounts.reverse()) await exec('umount', ['-l', m], env);
    rmSync(store, { recursive: true, force: true });
  }
}

test(
  'image: built from the Dockerfile, within 200 MB, runs as the DaemonSet and the host-network fallback do, refuses without the sysctl',
  { timeout: 20 * 60_000 },
  async (t) => {
    if (!ready(t)) return;
    const store = mkdtempSync(join(tmpdir(), 'mentat-image-test-'));
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      CONTAINERS_STORAGE_CONF: join(store, 'storage.conf'),
      CONTAINERS_CONF: join(store, 'containers.conf'),
      CONTAINERS_REGISTRIES_CONF: join(store, 'registries.conf'),
      TMPDIR: join(store, 'tmp'),
    };
    const prefix = `mentat-image-${process.pid}`;
    try {
      const image = await build(t, store, env);
      const size = Number(await ok('podman', ['image', 'inspect', '--format', '{{.Size}}', image], env));
      t.diagnostic(`image size: ${(size / 1e6).toFixed(1)} MB (${(size / 2 ** 20).toFixed(1)} MiB), budget ${MAX_IMAGE_BYTES / 1e6} MB`);
      assert.ok(size <= MAX_IMAGE_BYTES, `the image is ${size} bytes, over the budget of ${MAX_IMAGE_BYTES}`);
      const labels = JSON.parse(await ok('podman', ['image', 'inspect', '--format', '{{json .Labels}}', image], env)) as Record<string, string>;
      assert.equal(labels['org.opencontainers.image.version'], PKG.version, 'the VERSION build arg labels the image');

      const { daemonSet, hostNetwork } = variants();
      const dgram = await runAndStop(t, env, image, `${prefix}-daemonset`, daemonSet);
      assert.ok(dgram.includes('dgram/ipv4'), `the DaemonSet's pod uses unprivileged datagram ICMP: ${dgram.join(', ')}`);
      // Where the host's ping_group_range refuses datagram ICMP (here: a fresh namespace, "1 0").
      const raw = await runAndStop(t, env, image, `${prefix}-host-network`, hostNetwork);
      assert.ok(raw.includes('raw/ipv4'), `the host-network overlay falls back to raw ICMP with NET_RAW: ${raw.join(', ')}`);

      const noSysctl = structuredClone(daemonSet);
      delete (noSysctl.pod['securityContext'] as Obj)['sysctls'];
      const refused = await exec(
        'podman',
        ['run', '--rm', '--name', `${prefix}-no-sysctl`, ...podmanFlags(noSysctl.pod, noSysctl.c), ...envFlags(noSysctl.c), image],
        env,
      );
      const output = refused.stdout + refused.stderr;
      assert.equal(refused.code, 1, `without the sysctl: exit code: ${output}`);
      assert.match(
        output,
        /"mentat cannot start: opening an unprivileged ICMPv4 datagram socket was denied \(EACCES\): the process group is outside net\.ipv4\.ping_group_range/,
        output,
      );
    } finally {
      await removeStore(store, env);
    }
  },
);
