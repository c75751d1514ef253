/**
 * The environment of the agent container in deploy/base/daemonset.yaml, as the kubelet would give it:
 * the literal values, the downward-API ones supplied by the caller, and `$(VAR)` references expanded.
 * The benchmark runs the agent "as shipped" with it; bench/pod-memory.sh reads it from the command line:
 *
 *   node dist/bench/daemonset.js [--controller] NODE_NAME [POD_NAMESPACE]    # NAME=VALUE lines, in manifest order
 *
 * With --controller, the environment of the mentat-controller container in deploy/base/controller.yaml instead.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';

const MANIFEST = new URL('../../deploy/base/daemonset.yaml', import.meta.url);
const CONTROLLER_MANIFEST = new URL('../../deploy/base/controller.yaml', import.meta.url);

interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: unknown;
}

interface DaemonSet {
  readonly spec?: {
    readonly template?: { readonly spec?: { readonly containers?: ReadonlyArray<{ readonly name?: string; readonly env?: readonly EnvVar[] }> } };
  };
}

/** A container's env entries, in manifest order (the agent's by default). */
function manifestEnv(file = MANIFEST, name = 'mentat'): readonly EnvVar[] {
  // controller.yaml may hold several documents (the Deployment and what it needs): take the one with the container.
  const docs = readFileSync(file, 'utf8')
    .split(/^---$/m)
    .map((d) => load(d) as DaemonSet | undefined);
  const container = docs.flatMap((d) => d?.spec?.template?.spec?.containers ?? []).find((c) => c.name === name);
  if (!container?.env) throw new Error(`${fileURLToPath(file)}: no env in the ${name} container`);
  return container.env;
}

function expand(vars: readonly EnvVar[], downward: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of vars) {
    const raw = e.value !== undefined ? String(e.value) : downward[e.name];
    if (raw === undefined) continue;
    // Kubernetes expands $(NAME) from the entries before this one; unknown references stay as written.
    env[e.name] = raw.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);
  }
  return env;
}

/**
 * The container's environment. `downward` gives what `valueFrom` would (NODE_NAME, POD_NAME,
 * POD_NAMESPACE); an entry with `valueFrom` that it does not name is left out, as is POD_NAMESPACE
 * when it is absent from `downward` (so the caller can run the agent with or without a namespace).
 */
export function daemonSetEnv(downward: Readonly<Record<string, string>>): Record<string, string> {
  return expand(manifestEnv(), downward);
}

/** The mentat-controller container's environment in deploy/base/controller.yaml (MENTAT_ROLE=controller, its heap flags), likewise. */
export function controllerEnv(downward: Readonly<Record<string, string>>): Record<string, string> {
  return expand(manifestEnv(CONTROLLER_MANIFEST, 'mentat-controller'), downward);
}

/** The runtime's settings in the agent container: V8's heap flags and glibc's arenas. */
export const SHIPPED_RUNTIME_ENV = ((): Record<string, string> => {
  const all = daemonSetEnv({});
  const env: Record<string, string> = {};
  for (const name of ['NODE_OPTIONS', 'MALLOC_ARENA_MAX']) {
    const value = all[name];
    if (!value) throw new Error(`deploy/base/daemonset.yaml: no ${name} in the agent container`);
    env[name] = value.trim();
  }
  return env;
})();

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const controller = args[0] === '--controller';
  const [nodeName, namespace] = controller ? args.slice(1) : args;
  if (!nodeName) {
    process.stderr.write('usage: node dist/bench/daemonset.js [--controller] NODE_NAME [POD_NAMESPACE]\n');
    process.exit(2);
  }
  const downward = { NODE_NAME: nodeName, POD_NAME: `mentat-${nodeName}`, ...(namespace ? { POD_NAMESPACE: namespace } : {}) };
  const env = controller ? controllerEnv(downward) : daemonSetEnv(downward);
  for (const [k, v] of Object.entries(env)) {
    if (v.includes('\n')) throw new Error(`${k}: a value with a newline cannot be printed as a line`);
    process.stdout.write(`${k}=${v}\n`);
  }
}
