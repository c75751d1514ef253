/** From "is there a cluster?" to a loaded client and kubeconfig, with each failure told apart. */
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeClient } from './client.js';
import type { KubeSource } from './source.js';

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
  const { loadKubeConfig } = await import('./discovery.js');
  try {
    const kubeConfig = loadKubeConfig(client, source);
    return { kind: 'ready', client, kubeConfig, server: kubeConfig.getCurrentCluster()?.server };
  } catch (err) {
    return { kind: 'config', message: `cannot load the Kubernetes configuration: ${(err as Error).message}` };
  }
}
