/**
 * The release workflow (.github/workflows/release.yml), which cannot run here: valid YAML, a
 * multi-arch build and push on a v* tag, and its tag/version check run for real with bash.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { load } from 'js-yaml';
import { PKG, readRepo, REPO } from './render.js';

interface Step {
  id?: string;
  uses?: string;
  run?: string;
  shell?: string;
  env?: Record<string, string>;
  with?: Record<string, string | boolean>;
}

interface Workflow {
  on: { push: { tags: string[] } };
  permissions: Record<string, string>;
  jobs: Record<string, { steps: Step[] }>;
}

const workflow = load(readRepo('.github/workflows/release.yml')) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((j) => j.steps);
const versionStep = steps.find((s) => s.id === 'version');

function action(name: string): Step {
  const found = steps.find((s) => s.uses?.startsWith(`${name}@`));
  assert.ok(found, `a step uses ${name}`);
  return found;
}

/** The version step's script, as the runner would run it: bash, the step's env, GITHUB_OUTPUT. */
function runVersionStep(tag: string, owner: string): { status: number | null; stderr: string; stdout: string; outputs: Record<string, string> } {
  assert.ok(versionStep?.run);
  const dir = mkdtempSync(join(tmpdir(), 'mentat-release-'));
  try {
    const output = join(dir, 'output');
    writeFileSync(output, '');
    const env = { PATH: process.env['PATH'], TAG: tag, GITHUB_OUTPUT: output, GITHUB_REPOSITORY_OWNER: owner };
    // Only node is needed to read package.json; the runner has one, this machine's npm brings one.
    const r = spawnSync('bash', ['-e', '-c', versionStep.run], { cwd: REPO, env, encoding: 'utf8' });
    const outputs = Object.fromEntries(
      readFileSync(output, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('=', 2) as [string, string]),
    );
    return { status: r.status, stderr: r.stderr, stdout: r.stdout, outputs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('release workflow: on a v* tag, builds linux/amd64 and linux/arm64 from the Dockerfile and pushes to ghcr.io', () => {
  assert.deepEqual(workflow.on.push.tags, ['v*']);
  assert.equal(workflow.permissions['packages'], 'write');
  action('actions/checkout');
  action('docker/setup-qemu-action');
  action('docker/setup-buildx-action');
  assert.equal(action('docker/login-action').with?.['registry'], 'ghcr.io');
  const build = action('docker/build-push-action').with ?? {};
  assert.equal(build['context'], '.');
  assert.deepEqual(String(build['platforms']).split(','), ['linux/amd64', 'linux/arm64']);
  assert.equal(build['push'], true);
  assert.equal(build['tags'], '${{ steps.version.outputs.image }}:${{ steps.version.outputs.version }}');
  // The Dockerfile's version label comes from this build arg.
  assert.match(String(build['build-args']), /^VERSION=\$\{\{ steps\.version\.outputs\.version \}\}$/m);
  const dockerfile = readRepo('Dockerfile');
  assert.match(dockerfile, /^ARG VERSION=/m);
  assert.ok(dockerfile.includes('org.opencontainers.image.version="${VERSION}"'), 'the Dockerfile labels the image with the VERSION build arg');
  const order = ['docker/setup-qemu-action', 'docker/setup-buildx-action', 'docker/build-push-action'].map((name) => steps.indexOf(action(name)));
  assert.ok(steps.indexOf(versionStep!) < order[0]! && order[0]! < order[1]! && order[1]! < order[2]!, 'check the tag, then set up, then build');
});

test('release workflow: the tag must be package.json version, and the image is the one the manifests name', () => {
  assert.ok(versionStep?.run);
  assert.equal(versionStep.shell, 'bash');
  assert.doesNotMatch(versionStep.run, /\$\{\{/, 'no expression spliced into the script (a tag name is user input)');
  assert.equal(versionStep.env?.['TAG'], '${{ github.ref_name }}');

  const good = runVersionStep(`v${PKG.version}`, 'Mentat-Dev');
  assert.equal(good.status, 0, good.stderr + good.stdout);
  assert.deepEqual(good.outputs, { version: PKG.version, image: 'ghcr.io/mentat-dev/mentat' });
  const images = (load(readRepo('deploy/base/kustomization.yaml')) as { images: { newName: string }[] }).images;
  assert.equal(images[0]?.newName, good.outputs['image'], 'the manifests run what the release of mentat-dev/mentat pushes');

  for (const tag of ['v9.9.9', PKG.version, `v${PKG.version}-rc1`]) {
    const bad = runVersionStep(tag, 'mentat-dev');
    assert.equal(bad.status, 1, `tag ${tag} is refused`);
    assert.match(bad.stdout, new RegExp(`::error::tag ${tag.replace(/\./g, '\\.')} is not package\\.json's version v${PKG.version.replace(/\./g, '\\.')}`));
    assert.deepEqual(bad.outputs, {});
  }
});
