/** The agent's Kubernetes client loads without client-node's index of every API and model. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

/** Modules a fresh process loads for discovery.js, with or without the loader hook. */
function modulesLoaded(withHook: boolean): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ load(url, context, next) { seen.push(url); return next(url, context); } });
    if (${withHook}) (await import('./dist/src/kube-loader.js')).loadLessOfKubernetesClient();
    const { loadKubeConfig, NodeDiscovery } = await import('./dist/src/discovery.js');
    if (typeof loadKubeConfig !== 'function' || typeof NodeDiscovery !== 'function') throw new Error('discovery did not load');
    console.log(JSON.stringify(seen));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: new URL('../..', import.meta.url).pathname });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

test('with the loader hook, discovery loads no generated API class or model', () => {
  const slim = modulesLoaded(true);
  const full = modulesLoaded(false);
  const generated = (urls: string[]) => urls.filter((u) => /client-node\/dist\/gen\/(index\.js|types\/|apis\/|models\/)/.test(u));
  const models = (urls: string[]) => urls.filter((u) => u.includes('client-node/dist/gen/models/'));
  // Without the hook, ListWatch's serializer alone brings every model: the test can see them.
  assert.ok(models(full).length > 500, `without the hook the models load (${models(full).length})`);
  assert.deepEqual(generated(slim), []);
  assert.ok(slim.some((u) => u.endsWith('/dist/src/kube-gen-slim.js')));
  // What the agent does use of client-node still loads.
  for (const used of ['/dist/config.js', '/dist/cache.js', '/dist/watch.js', '/dist/gen/http/isomorphic-fetch.js']) {
    assert.ok(slim.some((u) => u.endsWith(`@kubernetes/client-node${used}`)), used);
  }
});

test('the stand-in serializer serializes the strings ListWatch gives it, and refuses anything else', async () => {
  const { ObjectSerializer } = await import('../src/kube-gen-slim.js');
  assert.equal(ObjectSerializer.serialize('kubernetes.io/os=linux', 'string'), 'kubernetes.io/os=linux');
  assert.throws(() => ObjectSerializer.serialize({ a: 1 }, 'V1LabelSelector'), /cannot serialize a V1LabelSelector/);
});
