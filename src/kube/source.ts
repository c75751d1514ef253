/* Kept apart from discovery.ts so that deciding whether Kubernetes is configured does not load the client. */

/** Where a kubeconfig comes from, in the usual order. */
export type KubeSource = { kind: 'in-cluster' } | { kind: 'file'; path: string } | { kind: 'none' };

/** Where Kubernetes mounts a pod's service-account token. */
export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** The service account a token belongs to (its `sub` claim), to name in permission errors. */
export function serviceAccountOf(token: string): string | undefined {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown } | null;
    return typeof claims?.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

/** In-cluster service account first, then KUBECONFIG, then ~/.kube/config. */
export function findKubeSource(input: {
  env: Readonly<Record<string, string | undefined>>;
  kubeconfig: string | undefined;
  home: string;
  exists: (path: string) => boolean;
}): KubeSource {
  if (input.env['KUBERNETES_SERVICE_HOST'] && input.exists(SERVICE_ACCOUNT_TOKEN)) return { kind: 'in-cluster' };
  if (input.kubeconfig) return { kind: 'file', path: input.kubeconfig.split(':')[0]! };
  const home = `${input.home}/.kube/config`;
  if (input.exists(home)) return { kind: 'file', path: home };
  return { kind: 'none' };
}
