/** The fence around client-node: it loads without the generated index, and says what moved when its layout changes. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { checkLayout, DEEP_IMPORTS, FENCED_VERSION, KubeClientLayoutError, loadKubeClient } from '../../src/kube/client.js';
import { bootstrapKubernetes } from '../../src/kube/kubeconfig.js';
import { REPO } from '../support/agent-process.js';

/** Modules a fresh process loads for the Kubernetes client: through the fence, or by the same paths without its hook. */
function modulesLoaded(throughFence: boolean): string[] {
  const load = throughFence
    ? `const client = await (await import('./dist/src/kube/client.js')).loadKubeClient();
       if (typeof client.ListWatch !== 'function' || typeof client.KubeConfig !== 'function') throw new Error('no client');`
    : `await import('@kubernetes/client-node/dist/cache.js'); await import('@kubernetes/client-node/dist/config.js');`;
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ load(url, context, next) { seen.push(url); return next(url, context); } });
    ${load}
    console.log(JSON.stringify(seen));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: REPO });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

test('through the fence, the client loads no generated API class or model', () => {
  const fenced = modulesLoaded(true);
  const plain = modulesLoaded(false);
  const generated = (urls: string[]) => urls.filter((u) => /client-node\/dist\/gen\/(index\.js|types\/|apis\/|models\/)/.test(u));
  const models = (urls: string[]) => urls.filter((u) => u.includes('client-node/dist/gen/models/'));
  // Without the hook, ListWatch's serializer alone brings every model: the test can see them.
  assert.ok(models(plain).length > 500, `without the hook the models load (${models(plain).length})`);
  assert.deepEqual(generated(fenced), []);
  assert.ok(fenced.some((u) => u.endsWith('/dist/src/kube/client-stand-in.js')));
  // What the agent does use of client-node still loads.
  for (const used of ['/dist/config.js', '/dist/cache.js', '/dist/watch.js', '/dist/gen/http/isomorphic-fetch.js']) {
    assert.ok(
      fenced.some((u) => u.endsWith(`@kubernetes/client-node${used}`)),
      used,
    );
  }
});

test('the installed client-node has the layout the fence was written for', async () => {
  const client = await loadKubeClient();
  assert.equal(typeof client.Watch, 'function');
  const installed = (await import('@kubernetes/client-node/package.json', { with: { type: 'json' } })).default as { version: string };
  assert.equal(installed.version, FENCED_VERSION, 'a new client-node version: check src/kube/client.ts, then update FENCED_VERSION');
});

test('a moved file or a missing export is named, with the versions and what to do', () => {
  const present = Object.fromEntries(Object.entries(DEEP_IMPORTS).map(([path, names]) => [path, Object.fromEntries(names.map((n) => [n, () => {}]))]));
  assert.doesNotThrow(() => checkLayout(present, FENCED_VERSION));
  const moved = { ...present, 'dist/watch.js': new Error("Cannot find module '/x/dist/watch.js'\nRequire stack: ...") };
  const renamed = { ...present, 'dist/gen/http/http.js': { HttpMethod: {} } };
  assert.throws(
    () => checkLayout(moved, '3.0.0'),
    (err: Error) => {
      assert.ok(err instanceof KubeClientLayoutError);
      assert.match(
        err.message,
        /client-node 3\.0\.0 does not have the layout src\/kube\/client\.ts was written for \(2\.0\.1\): dist\/watch\.js cannot be imported \(Cannot find module '\/x\/dist\/watch\.js'\)/,
      );
      assert.match(err.message, /Pin @kubernetes\/client-node to 2\.0\.1, or update the deep imports/);
      return true;
    },
  );
  assert.throws(() => checkLayout(renamed, '2.1.0'), /dist\/gen\/http\/http\.js no longer exports RequestContext/);
});

test('a layout failure is reported as such, not as a configuration problem', async () => {
  const layout = await bootstrapKubernetes({ kind: 'in-cluster' }, () => Promise.reject(new KubeClientLayoutError('dist/watch.js cannot be imported')));
  assert.deepEqual(layout, { kind: 'layout', message: 'dist/watch.js cannot be imported' });
  const config = await bootstrapKubernetes({ kind: 'file', path: '/nonexistent/kubeconfig' });
  assert.equal(config.kind, 'config');
  assert.match(config.kind === 'config' ? config.message : '', /^cannot load the Kubernetes configuration: /);
});

test('the stand-in serializer serializes the strings ListWatch gives it, and refuses anything else', async () => {
  const { ObjectSerializer } = await import('../../src/kube/client-stand-in.js');
  assert.equal(ObjectSerializer.serialize('kubernetes.io/os=linux', 'string'), 'kubernetes.io/os=linux');
  assert.throws(() => ObjectSerializer.serialize({ a: 1 }, 'V1LabelSelector'), /cannot serialize a V1LabelSelector/);
});
