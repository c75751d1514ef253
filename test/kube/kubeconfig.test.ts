import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findKubeSource } from '../../src/kube/kubeconfig.js';

test('kube config is found in-cluster, then KUBECONFIG, then ~/.kube/config', () => {
  const none = () => false;
  const all = () => true;
  assert.deepEqual(findKubeSource({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, kubeconfig: '/k', home: '/h', exists: all }), { kind: 'in-cluster' });
  assert.deepEqual(findKubeSource({ env: {}, kubeconfig: '/k:/other', home: '/h', exists: none }), { kind: 'file', path: '/k' });
  assert.deepEqual(findKubeSource({ env: {}, kubeconfig: undefined, home: '/h', exists: (p) => p === '/h/.kube/config' }), {
    kind: 'file',
    path: '/h/.kube/config',
  });
  assert.deepEqual(findKubeSource({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, kubeconfig: undefined, home: '/h', exists: none }), { kind: 'none' });
});
