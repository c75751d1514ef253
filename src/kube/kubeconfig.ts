/**
 * Where the cluster's configuration is and how it is loaded, in one place. client-node is imported
 * only when a configuration was found (it is tens of MiB): deciding whether Kubernetes is configured
 * loads nothing.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeClient } from './client.js';

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

/** From "is there a cluster?" to a loaded client and kubeconfig, with each failure told apart. */
export type KubeBootstrap =
  | { readonly kind: 'ready'; readonly client: KubeClient; readonly kubeConfig: KubeConfig; readonly server: string | undefined }
  /** client-node's files are not where the fence expects them: a build problem. */
  | { readonly kind: 'layout'; readonly message: string }
  /** The kubeconfig or service account cannot be loaded: the user's to fix. */
  | { readonly kind: 'config'; readonly message: string };

/** Loads client-node (only now: it is tens of MiB) and the kubeconfig `source` names. */
export async function bootstrapKubernetes(source: Exclude<KubeSource, { kind: 'none' }>, load?: () => Promise<KubeClient>): Promise<KubeBootstrap> {
  const { KubeClientLayoutError, loadKubeClient } = await import('./client.js');
  let client: KubeClient;
  try {
    client = await (load ?? loadKubeClient)();
  } catch (err) {
    if (err instanceof KubeClientLayoutError) return { kind: 'layout', message: err.message };
    throw err;
  }
  try {
    const kubeConfig = loadKubeConfig(client, source);
    return { kind: 'ready', client, kubeConfig, server: kubeConfig.getCurrentCluster()?.server };
  } catch (err) {
    return { kind: 'config', message: `cannot load the Kubernetes configuration: ${(err as Error).message}` };
  }
}

/** Loads the KubeConfig a KubeSource names. */
export function loadKubeConfig(client: KubeClient, source: KubeSource): KubeConfig {
  const kc = new client.KubeConfig();
  if (source.kind === 'in-cluster') kc.loadFromCluster();
  else if (source.kind === 'file') kc.loadFromFile(source.path);
  else throw new Error('no Kubernetes configuration');
  return kc;
}
