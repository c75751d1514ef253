/**
 * What an HTTP request to the fake API server asks for: the route from the apiserver's URLs to a
 * resource, namespace, name and verb (a list or watch pinned to one name counts as a named
 * request, as the apiserver authorizes it), and the record the fake keeps of each request.
 */
import { RESOURCES, type ResourceName, type ResourceType } from './resources.js';
import { selectedName } from './selectors.js';

/** The RBAC verbs the fake serves. */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'delete';
/** What a request asked for; 'other' is anything the fake does not serve as a resource verb. */
export type RequestKind = Verb | 'other';
/** The resource a request addressed; 'other' for /version, /healthz and unknown paths. */
export type RequestResource = ResourceName | 'other';

/** One request as the server saw it. */
export interface RequestRecord {
  kind: RequestKind;
  resource: RequestResource;
  namespace?: string;
  name?: string;
  method: string;
  path: string;
  /** Raw query string including the leading `?` (or ''). */
  search: string;
  query: Record<string, string>;
  /** HTTP status sent (0 until the response head is written). */
  status: number;
  /** User the bearer token mapped to, if any. */
  user?: string;
  /** Arrival, wall-clock ms. */
  at: number;
}

/** Which requests a fault applies to; every field given must match. */
export interface RequestFilter {
  kind?: RequestKind;
  resource?: RequestResource;
  user?: string;
}

/** The user the apiserver reports for a request without valid credentials. */
export const ANONYMOUS = 'system:anonymous';

/** Paths the apiserver serves outside its resources. */
export const NON_RESOURCE = new Set(['/version', '/healthz', '/readyz', '/livez']);

/** Whether a request (or a row of the load accounting) is one that `f` selects. */
export function matchesFilter(f: RequestFilter, r: { kind: RequestKind; resource: RequestResource; user?: string | undefined }): boolean {
  return (f.kind === undefined || f.kind === r.kind) && (f.resource === undefined || f.resource === r.resource) && (f.user === undefined || f.user === r.user);
}

/** Where a request goes. */
export interface Route {
  kind: RequestKind;
  /** The verb the apiserver authorizes (patch, deletecollection, ... for what the fake does not serve). */
  verb: string;
  type?: ResourceType;
  namespace?: string;
  name?: string;
}

const PATH = /^\/(?:api\/v1|apis\/([^/]+)\/v1)\/(?:namespaces\/([^/]+)\/)?([^/]+)(?:\/([^/]+))?$/;

export function route(method: string, path: string, params: URLSearchParams): Route {
  const m = PATH.exec(path);
  const type = m ? Object.values(RESOURCES).find((t) => t.resource === m[3] && t.group === (m[1] ?? '')) : undefined;
  if (!m || !type) return { kind: 'other', verb: method.toLowerCase() };
  let namespace: string | undefined;
  let name: string | undefined;
  try {
    namespace = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    name = m[4] === undefined ? undefined : decodeURIComponent(m[4]);
  } catch {
    return { kind: 'other', verb: method.toLowerCase() };
  }
  // A namespace on a cluster-scoped resource, or a named namespaced object without one, is no URL the apiserver serves.
  if ((namespace !== undefined && !type.namespaced) || (name !== undefined && type.namespaced && namespace === undefined)) {
    return { kind: 'other', verb: method.toLowerCase() };
  }
  const watch = params.get('watch') === 'true' || params.get('watch') === '1';
  const verb =
    method === 'GET'
      ? name !== undefined
        ? 'get'
        : watch
          ? 'watch'
          : 'list'
      : method === 'POST'
        ? 'create'
        : method === 'PUT'
          ? 'update'
          : method === 'PATCH'
            ? 'patch'
            : method === 'DELETE'
              ? name !== undefined
                ? 'delete'
                : 'deletecollection'
              : method.toLowerCase();
  // Served: reads everywhere, create on collections, update and delete on objects.
  const served =
    verb === 'get' ||
    verb === 'list' ||
    verb === 'watch' ||
    (verb === 'create' && name === undefined) ||
    ((verb === 'update' || verb === 'delete') && name !== undefined);
  // An apiserver authorizes a list or watch pinned to one name (fieldSelector metadata.name=x) like a named request.
  const pinned = (verb === 'list' || verb === 'watch') && name === undefined ? selectedName(params.get('fieldSelector') ?? '') : undefined;
  return {
    kind: served ? verb : 'other',
    verb,
    type,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : pinned !== undefined ? { name: pinned } : {}),
  };
}
