import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO } from './support/agent-process.js';

const read = (file: string) => JSON.parse(readFileSync(join(REPO, file), 'utf8')) as Record<string, unknown>;

test('every dependency with an install script is approved or denied in allowScripts, so npm ci warns about none', () => {
  const lock = read('package-lock.json') as { packages: Record<string, { hasInstallScript?: boolean }> };
  const allow = (read('package.json')['allowScripts'] ?? {}) as Record<string, boolean>;
  const reviewed = new Set(Object.keys(allow).map((key) => key.replace(/(.)@.*$/, '$1')));
  const withScripts = Object.entries(lock.packages)
    .filter(([path, p]) => path !== '' && p.hasInstallScript)
    .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
  assert.deepEqual(
    withScripts.filter((name) => !reviewed.has(name)),
    [],
    'review these install scripts, then run npm approve-scripts (or deny-scripts) and say why in package.json\'s "//"',
  );
  assert.equal(allow['raw-socket'], true, "raw-socket's addon must be built");
});

test('each override is explained in package.json\'s "//", and nan is the version it forces', () => {
  const pkg = read('package.json') as { overrides: Record<string, string>; '//': string[] };
  for (const name of Object.keys(pkg.overrides))
    assert.ok(
      pkg['//'].some((note) => note.includes(name)),
      `override ${name} has no "//" note`,
    );
  const nan = JSON.parse(readFileSync(join(REPO, 'node_modules/nan/package.json'), 'utf8')) as { version: string };
  assert.equal(nan.version, pkg.overrides['nan']);
});
