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

test('with the loader hook, discovery loads neither the generated index nor the API facades', () => {
  const slim = modulesLoaded(true);
  const full = modulesLoaded(false);
  const heavy = (urls: string[]) => urls.filter((u) => /client-node\/dist\/gen\/(index|types\/ObservableAPI|types\/ObjectParamAPI|apis\/AppsV1Api)\.js$/.test(u));
  assert.ok(heavy(full).length >= 3, 'without the hook the whole generated client loads (the test can see it)');
  assert.deepEqual(heavy(slim), []);
  assert.ok(slim.some((u) => u.endsWith('/dist/src/kube-gen-slim.js')));
  // The models still load (ObjectSerializer deserializes node lists); the API classes do not.
  assert.ok(slim.filter((u) => u.includes('/gen/apis/')).length <= 3, 'CoreV1Api and its helpers only');
});
