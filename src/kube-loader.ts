import { registerHooks } from 'node:module';

const SLIM = new URL('./kube-gen-slim.js', import.meta.url).href;
/** client-node module → what it imports that kube-gen-slim.ts stands in for. */
const REPLACED: ReadonlyArray<readonly [parent: string, specifier: string]> = [
  ['/@kubernetes/client-node/dist/config.js', './gen/index.js'],
  ['/@kubernetes/client-node/dist/cache.js', './serializer.js'],
];
let registered = false;

/**
 * Makes client-node's KubeConfig and ListWatch load without the generated index of every
 * Kubernetes API and model (see kube-api.ts). Call before kube-api.js is imported. A client-node
 * that needs more of a replaced module fails at import with the missing name, or at the call.
 */
export function loadLessOfKubernetesClient(): void {
  if (registered) return;
  registered = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const parent = context.parentURL;
      if (parent && REPLACED.some(([p, s]) => s === specifier && parent.endsWith(p))) return { url: SLIM, shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
}
