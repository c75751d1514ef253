/**
 * bench/pod-memory.sh, which the README's sizing rests on, still measures what it says: an agent as
 * shipped that follows the controller's list, and the controller itself, each in a memory cgroup with
 * its shipped limit, under deploy/'s RBAC. A small cluster, so it runs in CI; the figures are the
 * benchmark's to report, the test only checks the run measured the right thing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { REPO, need } from '../deploy/render.js';
import { requireNetns } from '../support/netns-lifecycle.js';

const NODES = 30;

/** Runs the script with `env` and returns its last line's key=value fields. */
async function podMemory(t: TestContext, env: Record<string, string>, limitMiB: number): Promise<Map<string, string>> {
  const child = spawn('bash', ['bench/pod-memory.sh', String(NODES), String(limitMiB)], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  t.after(() => child.kill('SIGTERM'));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, `bench/pod-memory.sh exited ${code}: ${err}${out}`);
  const line = out.trim().split('\n').at(-1) ?? '';
  // Fields are key=value separated by spaces; values with spaces are quoted or parenthesised, which no key below needs.
  return new Map(line.split(' ').flatMap((f) => (f.includes('=') ? [[f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] as [string, string]] : [])));
}

test('pod-memory: an agent as shipped follows the published list inside its 128Mi cgroup', async (t) => {
  if (!requireNetns(t) || !need(t, 'kubectl', 'deploy/ RBAC is rendered with kubectl kustomize')) return;
  const f = await podMemory(t, { SHIPPED: '1', FOLLOWER: '1' }, 128);
  assert.equal(f.get('node_list'), 'published', 'the measured agent follows the controller');
  assert.equal(f.get('rbac'), 'deploy', "the agent's token is held to deploy/'s RBAC");
  assert.equal(f.get('ready'), 'yes');
  assert.equal(f.get('alive'), 'yes');
  assert.equal(f.get('destinations'), String(NODES - 1), "it probes every other node: their addresses pass the agent's checks");
  assert.ok(Number.parseInt(f.get('cgroup_peak') ?? '', 10) > 0, `a cgroup peak was read: ${f.get('cgroup_peak')}`);
});

test('pod-memory: WHO=controller measures the controller, which leads and publishes every node', async (t) => {
  if (!requireNetns(t) || !need(t, 'kubectl', 'deploy/ RBAC is rendered with kubectl kustomize')) return;
  const f = await podMemory(t, { WHO: 'controller' }, 256);
  assert.equal(f.get('node_list'), 'controller');
  assert.equal(f.get('leader'), '1', 'the controller leads');
  assert.equal(f.get('published'), String(NODES), 'and has published every node');
  assert.equal(f.get('rbac'), 'deploy');
  assert.equal(f.get('alive'), 'yes');
});
