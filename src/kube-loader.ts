import { registerHooks } from 'node:module';

const SLIM_INDEX = new URL('./kube-gen-slim.js', import.meta.url).href;
let registered = false;

/**
 * Makes client-node's KubeConfig load without the generated index of every Kubernetes API (see
 * kube-api.ts): config.js imports it for two names only. Call before kube-api.js is imported.
 * A client-node whose config.js needs more from the index fails at import with the missing name.
 */
export function loadLessOfKubernetesClient(): void {
  if (registered) return;
  registered = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === './gen/index.js' && context.parentURL?.endsWith('/@kubernetes/client-node/dist/config.js')) return { url: SLIM_INDEX, shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
}
