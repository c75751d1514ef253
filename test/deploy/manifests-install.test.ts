/** The install as the docs give it: the one image reference, and the shell steps of README.md and deploy/README.md as written. */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { baseImage, kubectlOf, TARGETS } from './manifests-targets.js';
import { container, kustomize, NAMESPACE, one, PKG, readRepo, REPO } from './render.js';

test('the image reference lives in deploy/base/kustomization.yaml only, tagged with package.json version', (t) => {
  const image = baseImage();
  assert.equal(image.newTag, PKG.version);
  assert.equal(image.name, 'mentat', 'the manifests name the image only; images: sets registry and tag');
  const yamlFiles = (dir: string): string[] =>
    readdirSync(join(REPO, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
    );
  const naming = yamlFiles('deploy').filter((f) => readRepo(f).includes(image.newName));
  assert.deepEqual(
    naming.map((f) => relative('.', f)),
    ['deploy/base/kustomization.yaml'],
  );
  const kubectl = kubectlOf(t);
  if (!kubectl) return;
  const images = new Set(TARGETS.map((x) => String(container(one(kustomize(kubectl, x.dir), 'DaemonSet', 'mentat'), 'mentat')['image'])));
  assert.deepEqual([...images], [`${image.newName}:${PKG.version}`]);
});

/** The shell blocks of a Markdown section (from its heading to the next heading of its level or higher). */
function shellBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  assert.notEqual(start, -1, `heading ${heading}`);
  const level = /^#+/.exec(heading)![0].length;
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`\\n#{1,${level}} `));
  const section = end === -1 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

test('the install steps of README.md and deploy/README.md run as written: no placeholders, every -k path renders, the right namespace', (t) => {
  const blocks = [
    ...shellBlocks(readRepo('README.md'), '## Install in a cluster'),
    ...['## Install', '## Verify', '## Uninstall'].flatMap((h) => shellBlocks(readRepo('deploy/README.md'), h)),
  ];
  assert.ok(blocks.length >= 3);
  const kubectl = kubectlOf(t);
  for (const block of blocks) {
    const code = block.replace(/#.*$/gm, '');
    // <registry> is a shell redirection when pasted.
    assert.doesNotMatch(code, /<[a-z][\w -]*>/i, `a placeholder in:\n${block}`);
    // mentat's namespace, but for the ConfigMaps that go to Prometheus' or Grafana's.
    for (const line of code.split('\n').filter((l) => !/-k deploy\/(rules|dashboards)\b/.test(l))) {
      for (const m of line.matchAll(/\s-n\s+(\S+)/g)) assert.equal(m[1], NAMESPACE, `kubectl -n ${m[1]} in:\n${block}`);
    }
    // A background port-forward is given time to listen before curl uses it.
    if (/port-forward[^\n]*&/.test(code)) assert.match(code, /port-forward[^\n]*&[^\n]*\n?\s*sleep \d/, `port-forward & curl races:\n${block}`);
    if (!kubectl) continue;
    for (const m of code.matchAll(/\s-k\s+(deploy\S*)/g)) assert.ok(kustomize(kubectl, m[1]!).length > 0, m[1]);
  }
});
