/*
 * The fence around @kubernetes/client-node (written for 2.0.1). Everything that uses the package
 * against its grain is here and in client-stand-in.ts, nowhere else:
 *
 * - Its index, the CoreV1Api facade and its ObjectSerializer load every generated API class and
 *   model of Kubernetes: about 24 MiB of heap before the first node is listed, in a pod with 128 MiB.
 *   So KubeConfig, ListWatch, Watch and the request pieces are imported by their paths in dist/.
 * - config.js and cache.js still import the generated index and the serializer for a few names; a
 *   module-resolution hook (node:module registerHooks, "active development" in Node 24) hands them
 *   client-stand-in.js instead, matched by the importing file's path.
 *
 * Both work only while client-node has no `exports` map and keeps these files where they are.
 * loadKubeClient() checks that, and says what moved (KubeClientLayoutError) instead of failing
 * later with an error that reads like a configuration problem.
 */
import { registerHooks } from 'node:module';
import type { KubeConfig, ListWatch, Watch } from '@kubernetes/client-node';

/** The version these paths were read from; named in the error when they no longer fit. */
export const FENCED_VERSION = '2.0.1';

const PACKAGE = '@kubernetes/client-node';
const STAND_IN = new URL('./client-stand-in.js', import.meta.url).href;

/** Each deep import and the names the agent takes from it. */
export const DEEP_IMPORTS = {
  'dist/config.js': ['KubeConfig'],
  'dist/cache.js': ['ListWatch'],
  'dist/watch.js': ['Watch'],
  'dist/gen/http/http.js': ['RequestContext', 'HttpMethod'],
  'dist/gen/http/isomorphic-fetch.js': ['IsomorphicFetchHttpLibrary'],
  'dist/gen/configuration.js': ['createConfiguration'],
  'dist/gen/servers.js': ['ServerConfiguration'],
} as const satisfies Record<string, readonly string[]>;

/** client-node module → what it imports that client-stand-in.ts stands in for. */
const REPLACED: ReadonlyArray<readonly [parent: string, specifier: string]> = [
  [`/${PACKAGE}/dist/config.js`, './gen/index.js'],
  [`/${PACKAGE}/dist/cache.js`, './serializer.js'],
];

/** client-node's layout is not what this fence was written for: a build problem, not a user's. */
export class KubeClientLayoutError extends Error {
  override readonly name = 'KubeClientLayoutError';
}

/** An HTTP response from the API server, body as text. */
export interface KubeResponse {
  readonly status: number;
  readonly body: string;
}

export interface KubeRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path and query, e.g. /api/v1/nodes?limit=100. */
  readonly path: string;
  readonly body?: unknown;
  /** The request is aborted after this long (client-node's own Watch bounds its requests the same way). */
  readonly timeoutMs: number;
}

/** What the agent uses of client-node. */
export interface KubeClient {
  readonly KubeConfig: typeof KubeConfig;
  readonly ListWatch: typeof ListWatch;
  readonly Watch: typeof Watch;
  /** One request signed by the kubeconfig (token, client certificate, CA), sent with client-node's fetch. */
  send(kubeConfig: KubeConfig, request: KubeRequest): Promise<KubeResponse>;
}

let hooked = false;

function registerStandIn(): void {
  if (hooked) return;
  hooked = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const parent = context.parentURL;
      if (parent && REPLACED.some(([p, s]) => s === specifier && parent.endsWith(p))) return { url: STAND_IN, shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
}

type Loaded = Record<keyof typeof DEEP_IMPORTS, Record<string, unknown>>;

/**
 * Checks that each deep import has the names taken from it.
 * @throws KubeClientLayoutError naming the file and the names that are missing
 */
export function checkLayout(modules: Readonly<Record<string, Readonly<Record<string, unknown>> | Error>>, version: string): void {
  const problems: string[] = [];
  for (const [path, names] of Object.entries(DEEP_IMPORTS)) {
    const module = modules[path];
    if (module === undefined || module instanceof Error) {
      problems.push(`${path} cannot be imported${module ? ` (${module.message.split('\n')[0]})` : ''}`);
      continue;
    }
    const missing = names.filter((name) => module[name] === undefined);
    if (missing.length > 0) problems.push(`${path} no longer exports ${missing.join(', ')}`);
  }
  if (problems.length > 0) {
    throw new KubeClientLayoutError(
      `the installed ${PACKAGE} ${version} does not have the layout src/kube/client.ts was written for (${FENCED_VERSION}): ${problems.join('; ')}. ` +
        `Pin ${PACKAGE} to ${FENCED_VERSION}, or update the deep imports in src/kube/client.ts and client-stand-in.ts`,
    );
  }
}

async function importAll(): Promise<Record<string, Record<string, unknown> | Error>> {
  const entries = await Promise.all(
    Object.keys(DEEP_IMPORTS).map(async (path) => {
      try {
        return [path, (await import(`${PACKAGE}/${path}`)) as Record<string, unknown>] as const;
      } catch (err) {
        return [path, err as Error] as const;
      }
    }),
  );
  return Object.fromEntries(entries) as Record<string, Record<string, unknown> | Error>;
}

async function installedVersion(): Promise<string> {
  try {
    const { createRequire } = await import('node:module');
    const manifest = createRequire(import.meta.url)(`${PACKAGE}/package.json`) as { version?: string };
    return manifest.version ?? 'of unknown version';
  } catch {
    // No package.json export to read: the version stays unnamed, the layout check still runs.
    return 'of unknown version';
  }
}

let loading: Promise<KubeClient> | undefined;

/**
 * Loads the parts of client-node the agent uses, without its generated APIs and models.
 * @throws KubeClientLayoutError when client-node's files have moved
 */
export function loadKubeClient(): Promise<KubeClient> {
  loading ??= (async () => {
    registerStandIn();
    const modules = await importAll();
    checkLayout(modules, await installedVersion());
    const m = modules as Loaded;
    const RequestContext = m['dist/gen/http/http.js']['RequestContext'] as new (url: string, method: unknown) => RequestContextLike;
    const HttpMethod = m['dist/gen/http/http.js']['HttpMethod'] as Record<string, unknown>;
    const FetchLibrary = m['dist/gen/http/isomorphic-fetch.js']['IsomorphicFetchHttpLibrary'] as new () => FetchLibraryLike;
    const http = new FetchLibrary();
    return {
      KubeConfig: m['dist/config.js']['KubeConfig'] as typeof KubeConfig,
      ListWatch: m['dist/cache.js']['ListWatch'] as typeof ListWatch,
      Watch: m['dist/watch.js']['Watch'] as typeof Watch,
      async send(kubeConfig, request) {
        const cluster = kubeConfig.getCurrentCluster();
        if (!cluster) throw new Error('the Kubernetes configuration has no current cluster: set current-context');
        const context = new RequestContext(`${cluster.server}${request.path}`, HttpMethod[request.method]);
        context.setHeaderParam('Accept', 'application/json');
        context.setHeaderParam('User-Agent', USER_AGENT);
        if (request.body !== undefined) {
          context.setHeaderParam('Content-Type', 'application/json');
          context.setBody(JSON.stringify(request.body));
        }
        context.setSignal(AbortSignal.timeout(request.timeoutMs));
        await kubeConfig.applySecurityAuthentication(context as never);
        const response = await http.send(context).toPromise();
        return { status: response.httpStatusCode, body: await response.body.text() };
      },
    };
  })();
  return loading;
}

const USER_AGENT = 'mentat';

/** The slice of client-node's RequestContext used here (its declared type lives in the generated index). */
interface RequestContextLike {
  setHeaderParam(name: string, value: string): void;
  setBody(body: string): void;
  setSignal(signal: AbortSignal): void;
}

interface FetchLibraryLike {
  send(request: RequestContextLike): { toPromise(): Promise<{ httpStatusCode: number; body: { text(): Promise<string> } }> };
}
