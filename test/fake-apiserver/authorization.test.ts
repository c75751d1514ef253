/**
 * Who may do what (authorization.ts): least privilege per user with the apiserver's 403 naming
 * verb, resource, API group and scope, lists and watches pinned to a name passing as a named
 * request, and the RBAC rendered from deploy/ as the real PodWatch meets it, for each role.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { ApiException, type KubeConfig, ListWatch, type V1ConfigMap, Watch } from '@kubernetes/client-node';
import { loadKubeClient } from '../../src/kube/client.js';
import { AGENT_POD_SELECTOR, PodWatch } from '../../src/kube/pod-watch.js';
import { RateLimitedLog } from '../../src/log.js';
import { agentPodLabels, kustomize, need } from '../deploy/render.js';
import { recordingLog } from '../support/node-list-parts.js';
import { permissionsFromManifests, serviceAccountUser } from '../support/rbac.js';
import { waitFor, type Permission } from './index.js';
import { AGENT, clientFor, CM_PATH, LEASE, LEASE_PATH, lease, nodeListWatch, NS, pinnedLeaseWatch, POD_PATH, record, send, setup } from './test-helpers.js';

test('permissions: least privilege per user, with the apiserver 403 naming verb, resource, API group and namespace', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const agent = await clientFor(env, AGENT);
  const rules: Permission[] = [
    { verb: 'list', resource: 'configmaps', namespace: NS },
    { verb: 'watch', resource: 'configmaps', namespace: NS },
    { verb: 'create', resource: 'leases', namespace: NS },
    ...(['get', 'list', 'watch', 'update'] as const).map((verb): Permission => ({ verb, resource: 'leases', namespace: NS, name: LEASE })),
  ];
  server.setPermissions(AGENT, rules);
  const deny = (subject: string, verb: string, resource: string, group: string, scope: string): string =>
    `${subject} is forbidden: User "${AGENT}" cannot ${verb} resource "${resource}" in API group "${group}" ${scope}`;

  const cmPut = await send(server, agent.token, 'PUT', `${CM_PATH}/x`, { metadata: { name: 'x' } });
  assert.deepEqual([cmPut.status, cmPut.body.reason], [403, 'Forbidden']);
  assert.equal(
    cmPut.body.message,
    `configmaps "x" is forbidden: User "system:serviceaccount:mentat:mentat" cannot update resource "configmaps" in API group "" in the namespace "mentat"`,
  );
  assert.deepEqual(cmPut.body.details, { name: 'x', kind: 'configmaps' });
  const otherLease = await send(server, agent.token, 'PUT', `${LEASE_PATH}/other`, lease('a', 'other'));
  assert.equal(otherLease.body.message, deny('leases.coordination.k8s.io "other"', 'update', 'leases', 'coordination.k8s.io', 'in the namespace "mentat"'));
  assert.equal((await send(server, agent.token, 'POST', LEASE_PATH, lease('a'))).status, 201, 'create is not restricted by name');
  assert.equal((await send(server, agent.token, 'PUT', `${LEASE_PATH}/${LEASE}`, lease('a'))).status, 200);
  const del = await send(server, agent.token, 'DELETE', `${LEASE_PATH}/${LEASE}`);
  assert.equal(del.body.message, deny(`leases.coordination.k8s.io "${LEASE}"`, 'delete', 'leases', 'coordination.k8s.io', 'in the namespace "mentat"'));
  const allLeases = await send(server, agent.token, 'GET', LEASE_PATH);
  assert.equal(allLeases.body.message, deny('leases.coordination.k8s.io', 'list', 'leases', 'coordination.k8s.io', 'in the namespace "mentat"'));
  const nodes = await send(server, agent.token, 'GET', '/api/v1/nodes');
  assert.equal(nodes.body.message, deny('nodes', 'list', 'nodes', '', 'at the cluster scope'));

  // The real clients: a list and watch pinned to the lease's name pass like a named request.
  const leaseLw = pinnedLeaseWatch(agent);
  const leaseSeen = record(t, leaseLw);
  await leaseLw.start();
  const cmLw = nodeListWatch(agent);
  const cmSeen = record(t, cmLw);
  await cmLw.start();
  await server.waitFor((s) => s.openWatches === 2, 2000, 'both watches open');
  assert.deepEqual(leaseSeen.events, [`add ${LEASE}`]);
  assert.deepEqual([...leaseSeen.errors, ...cmSeen.errors], []);
  const elsewhere = new ListWatch<V1ConfigMap>(
    '/api/v1/namespaces/kube-system/configmaps',
    new Watch(agent.kc),
    () => agent.core.listNamespacedConfigMap({ namespace: 'kube-system' }),
    false,
  );
  const elsewhereSeen = record(t, elsewhere);
  await elsewhere.start();
  assert.equal(elsewhereSeen.errors.length, 1);
  assert.ok(elsewhereSeen.errors[0] instanceof ApiException && elsewhereSeen.errors[0].code === 403);

  // Other users are unrestricted; lifting the restriction restores everything.
  assert.equal((await send(server, server.token, 'POST', CM_PATH, { metadata: { name: 'x' } })).status, 201);
  server.setPermissions(AGENT, undefined);
  assert.equal((await send(server, agent.token, 'PUT', `${CM_PATH}/x`, { metadata: { name: 'x' }, data: { a: '1' } })).status, 200);
});

/** The real PodWatch of NS, run with `kc` until the test ends: the pod addresses it reports, and its log. */
async function podWatchAs(t: TestContext, kc: KubeConfig): Promise<{ rec: ReturnType<typeof recordingLog>; seen: Array<Map<string, string[]>> }> {
  const client = await loadKubeClient();
  const rec = recordingLog();
  const seen: Array<Map<string, string[]>> = [];
  const watch = new PodWatch({
    client,
    kubeConfig: kc,
    namespace: NS,
    onPods: (byNode) => seen.push(byNode),
    log: rec.log,
    warnings: new RateLimitedLog(rec.log, 60_000, () => Date.now()),
    delay: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))),
  });
  t.after(() => watch.stop());
  watch.start();
  return { rec, seen };
}

test('Pods and RBAC rendered from deploy/: agents may not read pods anywhere; the controller lists and watches them in its own namespace only, as PodWatch does', async (t) => {
  const kubectl = need(t, 'kubectl', 'the machine image');
  if (!kubectl) return;
  const env = await setup(t);
  const { server } = env;
  const rbac = permissionsFromManifests(kustomize(kubectl, 'deploy'));
  const agentUser = serviceAccountUser(NS, 'mentat');
  const controllerUser = serviceAccountUser(NS, 'mentat-controller');
  for (const [user, permissions] of rbac) server.setPermissions(user, permissions);
  const agent = await clientFor(env, agentUser);
  const controller = await clientFor(env, controllerUser);
  const labels = agentPodLabels();
  server.upsertPod(NS, { name: 'mentat-a', labels, nodeName: 'node-a', podIPs: ['198.19.1.2'] });
  server.upsertPod(NS, { name: 'mentat-b', labels, nodeName: 'node-b', podIPs: ['198.19.2.2', 'fd00:6d65:6e75::2'] });
  server.upsertPod('kube-system', { name: 'coredns', labels: { 'k8s-app': 'kube-dns' }, nodeName: 'node-a', podIPs: ['198.19.1.3'] });

  const deny = (user: string, verb: string, subject: string, scope: string) =>
    `${subject} is forbidden: User "${user}" cannot ${verb} resource "pods" in API group "" ${scope}`;
  for (const [verb, path, subject] of [
    ['list', `${POD_PATH}?labelSelector=${encodeURIComponent(AGENT_POD_SELECTOR)}`, 'pods'],
    ['watch', `${POD_PATH}?watch=true`, 'pods'],
    ['get', `${POD_PATH}/mentat-a`, 'pods "mentat-a"'],
  ] as const) {
    const r = await send(server, agent.token, 'GET', path);
    assert.deepEqual([r.status, r.body.message], [403, deny(agentUser, verb, subject, `in the namespace "${NS}"`)], `agent ${verb}`);
  }
  const elsewhere = await send(server, controller.token, 'GET', '/api/v1/namespaces/kube-system/pods');
  assert.deepEqual([elsewhere.status, elsewhere.body.message], [403, deny(controllerUser, 'list', 'pods', 'in the namespace "kube-system"')]);
  const everywhere = await send(server, controller.token, 'GET', '/api/v1/pods');
  assert.deepEqual([everywhere.status, everywhere.body.message], [403, deny(controllerUser, 'list', 'pods', 'at the cluster scope')]);
  const write = await send(server, controller.token, 'PUT', `${POD_PATH}/mentat-a`, server.getObject('pods', NS, 'mentat-a'));
  assert.deepEqual([write.status, write.body.message], [403, deny(controllerUser, 'update', 'pods "mentat-a"', `in the namespace "${NS}"`)]);
  assert.equal((await send(server, controller.token, 'GET', `${POD_PATH}/mentat-a`)).status, 200);

  // The real PodWatch, as each role: the controller's sees every node's pod addresses; the agent's is refused and says what to grant.
  const ctl = await podWatchAs(t, controller.kc);
  await waitFor(() => ctl.seen.length > 0 && server.openWatchesOf('pods') === 1, 5000, "the controller's pod watch");
  assert.deepEqual(Object.fromEntries(ctl.seen.at(-1)!), { 'node-a': ['198.19.1.2'], 'node-b': ['198.19.2.2', 'fd00:6d65:6e75::2'] });
  server.upsertPod(NS, { name: 'mentat-c', labels, nodeName: 'node-c', podIPs: ['198.19.3.2'] });
  server.terminatePod(NS, 'mentat-a');
  await waitFor(() => Object.keys(Object.fromEntries(ctl.seen.at(-1)!)).join() === 'node-b,node-c', 5000, 'a new pod in, a terminating one out');
  const agentWatch = await podWatchAs(t, agent.kc);
  await waitFor(() => agentWatch.rec.lines.some((l) => l.level === 'warn'), 5000, "the agent's refusal");
  assert.match(agentWatch.rec.lines.find((l) => l.level === 'warn')!.message, /403 Forbidden\): grant mentat-controller get, list and watch on "pods"/);
  assert.deepEqual(agentWatch.seen, []);
  const podRequests = server.requests.filter((r) => r.resource === 'pods' && r.user === agentUser && r.kind !== 'other');
  assert.ok(podRequests.length > 0 && podRequests.every((r) => r.status === 403), 'every pod request of the agent was refused');
});
