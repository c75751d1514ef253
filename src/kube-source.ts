/* Kept apart from discovery.ts so that deciding whether Kubernetes is configured does not load the client. */

/** Where a kubeconfig comes from, in the usual order. */
export type KubeSource = { kind: 'in-cluster' } | { kind: 'file'; path: string } | { kind: 'none' };

/** In-cluster service account first, then KUBECONFIG, then ~/.kube/config. */
export function findKubeSource(input: {
  env: Readonly<Record<string, string | undefined>>;
  kubeconfig: string | undefined;
  home: string;
  exists: (path: string) => boolean;
}): KubeSource {
  const tokenPath = '/var/run/secrets/kubernetes.io/serviceaccount/token';
  if (input.env['KUBERNETES_SERVICE_HOST'] && input.exists(tokenPath)) return { kind: 'in-cluster' };
  if (input.kubeconfig) return { kind: 'file', path: input.kubeconfig.split(':')[0]! };
  const home = `${input.home}/.kube/config`;
  if (input.exists(home)) return { kind: 'file', path: home };
  return { kind: 'none' };
}

