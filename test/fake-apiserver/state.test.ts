/**
 * The test-side API to the fake's objects (state.ts, builders.ts): pods put in by `upsertPod`,
 * terminated by `terminatePod` and deleted by `deleteObject` behind the clients' backs, as a
 * label-selected ListWatch in one namespace and paged, field-selected lists of the controller see them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiException, ListWatch, type V1Pod, Watch } from '@kubernetes/client-node';
import { AGENT_POD_SELECTOR } from '../../src/kube/pod-watch.js';
import { agentPodLabels } from '../deploy/render.js';
import { waitFor, type FakeApiServer, type PodInput } from './index.js';
import { NS, POD_PATH, record, setup } from './test-helpers.js';

/** The labels of the agent DaemonSet's pod template, read from deploy/. */
const labels = agentPodLabels();

/** A pod of the agent DaemonSet on node`i`, with the labels of the DaemonSet's pod template. */
function agentPod(i: number, ips: string[] = [`198.19.${i}.2`]): PodInput {
  return { name: `mentat-${i}`, labels, nodeName: `node${i}`, podIPs: ips };
}

/** Agent pods 0 to 4 and a controller pod in NS; agent pod 7 in another namespace. */
function putPods(server: FakeApiServer): void {
  for (let i = 0; i < 5; i++) server.upsertPod(NS, agentPod(i));
  server.upsertPod(NS, {
    name: 'mentat-controller-x',
    labels: { ...labels, 'app.kubernetes.io/component': 'controller' },
    nodeName: 'node0',
    podIPs: ['198.19.0.9'],
  });
  server.upsertPod('elsewhere', agentPod(7));
}

test("Pods: the DaemonSet's labels match the agent selector; a label-selected list in one namespace is paged from one snapshot; the apiserver's pod field selectors", async (t) => {
  const { server, api } = await setup(t);
  putPods(server);

  // Paged, as the controller lists (limit and continue within the namespace, one snapshot).
  const p1 = await api.listNamespacedPod({ namespace: NS, labelSelector: AGENT_POD_SELECTOR, limit: 2 });
  assert.equal(p1.kind, 'PodList');
  assert.deepEqual(
    p1.items.map((p) => p.metadata?.name),
    ['mentat-0', 'mentat-1'],
  );
  assert.equal(p1.metadata?.remainingItemCount, undefined, 'no count of the rest under a label selector');
  server.upsertPod(NS, agentPod(5));
  const p2 = await api.listNamespacedPod({ namespace: NS, labelSelector: AGENT_POD_SELECTOR, limit: 10, _continue: p1.metadata?._continue ?? '' });
  assert.deepEqual(
    p2.items.map((p) => p.metadata?.name),
    ['mentat-2', 'mentat-3', 'mentat-4'],
    'the later pages come from the first page snapshot',
  );
  assert.equal(p2.metadata?.resourceVersion, p1.metadata?.resourceVersion);
  const first = p1.items[0];
  assert.deepEqual(
    { node: first?.spec?.nodeName, ip: first?.status?.podIP, ips: first?.status?.podIPs?.map((p) => p.ip), phase: first?.status?.phase },
    { node: 'node0', ip: '198.19.0.2', ips: ['198.19.0.2'], phase: 'Running' },
  );
  // The apiserver's pod field selectors; anything else is a 400.
  assert.deepEqual(
    (await api.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.nodeName=node3' })).items.map((p) => p.metadata?.name),
    ['mentat-3'],
  );
  assert.deepEqual(
    (await api.listPodForAllNamespaces({ fieldSelector: 'status.podIP=198.19.7.2' })).items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`),
    ['elsewhere/mentat-7'],
  );
  await assert.rejects(
    api.listNamespacedPod({ namespace: NS, fieldSelector: 'status.hostIP=1.2.3.4' }),
    (err: unknown) => err instanceof ApiException && err.code === 400 && String(err.body).includes('field label not supported: status.hostIP'),
  );
});

test('Pods: a label-selected ListWatch in one namespace follows pods scheduled, given IPs, terminating and gone', async (t) => {
  const env = await setup(t);
  const { server, api } = env;
  putPods(server);
  server.upsertPod(NS, agentPod(5));

  const lw = new ListWatch<V1Pod>(
    POD_PATH,
    new Watch(env.kc),
    () => api.listNamespacedPod({ namespace: NS, labelSelector: AGENT_POD_SELECTOR }),
    false,
    AGENT_POD_SELECTOR,
  );
  const seen = record(t, lw);
  await lw.start();
  await server.waitFor((s) => s.openWatchesOf('pods') === 1, 2000, 'pod watch open');
  assert.deepEqual(
    seen.events,
    [0, 1, 2, 3, 4, 5].map((i) => `add mentat-${i}`),
  );
  const watchReq = server.requests.find((r) => r.kind === 'watch');
  assert.deepEqual(
    { resource: watchReq?.resource, namespace: watchReq?.namespace, selector: watchReq?.query['labelSelector'], rv: watchReq?.query['resourceVersion'] },
    { resource: 'pods', namespace: NS, selector: AGENT_POD_SELECTOR, rv: server.resourceVersion },
  );

  // A new pod scheduled without an IP, then given one; a pod terminating, then gone; a pod relabelled out of the selector.
  server.upsertPod(NS, { name: 'mentat-6', labels, nodeName: 'node6', phase: 'Pending' });
  server.upsertPod(NS, agentPod(6));
  assert.ok(server.terminatePod(NS, 'mentat-1'));
  assert.ok(server.terminatePod(NS, 'mentat-1'), 'terminating twice changes nothing');
  assert.ok(server.deleteObject('pods', NS, 'mentat-1'));
  server.upsertPod(NS, { ...agentPod(2), labels: { app: 'something-else' } });
  server.upsertPod('elsewhere', agentPod(8));
  await waitFor(() => seen.events.length === 11, 2000, 'five more events');
  assert.deepEqual(seen.events.slice(6), ['add mentat-6', 'update mentat-6', 'update mentat-1', 'delete mentat-1', 'delete mentat-2']);
  assert.deepEqual(
    lw.get('mentat-6', NS)?.status?.podIPs?.map((p) => p.ip),
    ['198.19.6.2'],
  );
  assert.equal(lw.latestResourceVersion(), String(Number(server.resourceVersion) - 1), 'the last event was in another namespace');
  assert.deepEqual(seen.errors, []);
});
