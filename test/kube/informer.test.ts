/**
 * CachedInformer, the list+watch under the Node and the Pod watches, against the in-repo API server
 * over real HTTP: a label-selected collection, the events of one list in one callback, unchanged
 * values costing nothing, deletes, a refused list retried with a backoff that starts over once a
 * request goes through, and no callback after stop().
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { PODS } from '../../src/kube/api.js';
import { loadKubeClient } from '../../src/kube/client.js';
import { CachedInformer, type CachedInformerOptions } from '../../src/kube/informer.js';
import { waitFor } from '../fake-apiserver/index.js';
import { setup } from '../fake-apiserver/test-helpers.js';

const NS = 'mentat';
const LABELS = { app: 'agent' };

type Callbacks = Pick<CachedInformerOptions<V1Pod, string>, 'onChange' | 'onError'> & Partial<CachedInformerOptions<V1Pod, string>>;

/** The agent pods of NS, cached as the node each is on (label app=agent, pages of 100). */
async function podNodes(kubeConfig: KubeConfig, callbacks: Callbacks): Promise<CachedInformer<V1Pod, string>> {
  return new CachedInformer<V1Pod, string>({
    client: await loadKubeClient(),
    kubeConfig,
    collection: PODS(NS),
    labelSelector: 'app=agent',
    pageSize: 100,
    listTimeoutMs: 5000,
    trim: (pod) => pod,
    toCached: (pod) => pod.spec?.nodeName,
    delay: () => new Promise((r) => setTimeout(r, 10)),
    ...callbacks,
  });
}

test('CachedInformer: one callback per list, only selected objects, unchanged values cost nothing, deletes and changes arrive', async (t) => {
  const { server, kc: kubeConfig } = await setup(t);
  for (let i = 0; i < 250; i++) server.upsertPod(NS, { name: `agent-${i}`, labels: LABELS, nodeName: `n${i}`, podIPs: [`10.244.0.${i}`] });
  server.upsertPod(NS, { name: 'other', labels: { app: 'other' }, nodeName: 'n0', podIPs: ['10.244.9.9'] });

  const calls: string[][] = [];
  const errors: number[] = [];
  let listed = 0;
  const informer = await podNodes(kubeConfig, {
    same: (a, b) => a === b,
    onChange: (values) => calls.push([...values].sort()),
    onListed: (count) => {
      listed = count;
    },
    onError: (_err, retryInMs) => errors.push(retryInMs),
  });
  informer.start();
  await waitFor(() => calls.length === 1, 5000, 'the first list');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(calls.length, 1, 'the 250 objects of three pages arrive as one callback');
  assert.equal(listed, 250);
  assert.equal(calls[0]!.length, 250, 'the object outside the label selector is not cached');

  // A status change that leaves the value alone: no callback. A move: one.
  server.upsertPod(NS, { name: 'agent-1', labels: LABELS, nodeName: 'n1', podIPs: ['10.244.1.1'] });
  server.upsertPod(NS, { name: 'agent-2', labels: LABELS, nodeName: 'moved', podIPs: ['10.244.0.2'] });
  await waitFor(() => calls.length === 2, 5000, 'the move');
  assert.ok(calls[1]!.includes('moved') && !calls[1]!.includes('n2'));
  server.deleteObject('pods', NS, 'agent-3');
  await waitFor(() => calls.length === 3, 5000, 'the delete');
  assert.equal(calls[2]!.length, 249);
  assert.ok(!calls[2]!.includes('n3'));
  assert.deepEqual(errors, [], 'no error on the way');

  await informer.stop();
  server.upsertPod(NS, { name: 'agent-4', labels: LABELS, nodeName: 'after-stop' });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(calls.length, 3, 'nothing after stop()');
});

test('CachedInformer: a refused list is retried with a growing backoff, which starts over once a list goes through', async (t) => {
  const { server, dir } = await setup(t);
  server.upsertPod(NS, { name: 'agent-0', labels: LABELS, nodeName: 'n0' });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(await server.writeKubeconfig(dir, { user: 'system:serviceaccount:mentat:mentat-controller' }));
  server.setPermissions('system:serviceaccount:mentat:mentat-controller', []);

  const calls: string[][] = [];
  const errors: Array<{ status: unknown; retryInMs: number }> = [];
  const informer = await podNodes(kubeConfig, {
    onChange: (values) => calls.push([...values]),
    onError: (err, retryInMs) => errors.push({ status: (err as { statusCode?: unknown }).statusCode, retryInMs }),
    minBackoffMs: 100,
    maxBackoffMs: 400,
  });
  t.after(() => informer.stop());
  informer.start();
  await waitFor(() => errors.length >= 4, 5000, 'four refusals');
  assert.deepEqual(
    errors.slice(0, 4).map((e) => e.retryInMs),
    [100, 200, 400, 400],
    'doubling, capped',
  );
  assert.equal(calls.length, 0, 'nothing is reported while nothing is known');

  server.setPermissions('system:serviceaccount:mentat:mentat-controller', undefined);
  await waitFor(() => calls.length === 1, 5000, 'the list once allowed');
  assert.deepEqual(calls[0], ['n0']);
  const before = errors.length;
  // Refused again, and the watch cut: the first failure after the list (the cut, or the refused
  // re-watch, whichever client-node reports) waits the shortest backoff again.
  server.setPermissions('system:serviceaccount:mentat:mentat-controller', []);
  server.cutWatches('pods');
  await waitFor(() => errors.slice(before).some((e) => e.status === 403), 5000, 'the refused watch reported');
  assert.equal(errors[before]!.retryInMs, 100, 'the backoff started over after the list went through');
});

test('CachedInformer: stopped while its list is in flight, it opens no watch once the list answers', async (t) => {
  const { server, kc: kubeConfig } = await setup(t);
  server.upsertPod(NS, { name: 'agent-0', labels: LABELS, nodeName: 'n0' });
  const calls: string[][] = [];
  const informer = await podNodes(kubeConfig, { onChange: (values) => calls.push([...values]), onError: () => {} });
  server.hang({ kind: 'list', resource: 'pods' });
  informer.start();
  await waitFor(() => server.requests.some((r) => r.kind === 'list' && r.resource === 'pods'), 5000, 'the list sent');
  await informer.stop();
  // client-node's ListWatch goes on to watch when a list it started before stop() answers: the fence aborts that watch.
  assert.equal(server.clearHangs(), 1, 'the held list is answered now');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(server.openWatchesOf('pods'), 0, 'no watch left open');
  assert.deepEqual(calls, [], 'and no callback');
});
