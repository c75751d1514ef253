/**
 * Who may do what on the fake API server: an RBAC-like table of permissions per user, checked
 * against a request's route, and the apiserver's 403 that names the user, verb, resource, API
 * group and scope of a refused request.
 */
import { ApiError, qualifiedResource, statusBody, type ResourceName } from './resources.js';
import type { Route, Verb } from './routing.js';

/** 'ok': tokens are checked as usual; 401/403: every API request is refused so. */
export type AuthMode = 'ok' | 401 | 403;

/** One allowed (verb, resource[, namespace][, name]); omitted namespace = every namespace and the cluster scope. */
export interface Permission {
  verb: Verb | '*';
  resource: ResourceName | '*';
  namespace?: string;
  /** Like RBAC resourceNames: never matches create, nor a list or watch without fieldSelector metadata.name. */
  name?: string;
}

/** Whether `permissions` (undefined: unrestricted) allow the request routed as `r`. */
export function authorized(permissions: readonly Permission[] | undefined, r: Route): boolean {
  if (!permissions || !r.type) return true;
  const { type } = r;
  return permissions.some(
    (p) =>
      (p.verb === '*' || p.verb === r.verb) &&
      (p.resource === '*' || p.resource === type.resource) &&
      (p.namespace === undefined || p.namespace === r.namespace) &&
      (p.name === undefined || p.name === r.name),
  );
}

/** The apiserver's 403, naming the user, verb, resource, API group and scope. */
export function forbidden(user: string, r: Route, path: string): ApiError {
  const { type } = r;
  if (!type) return new ApiError(statusBody(403, 'Forbidden', `forbidden: User ${JSON.stringify(user)} cannot ${r.verb} path ${JSON.stringify(path)}`));
  const subject = r.name !== undefined ? `${qualifiedResource(type)} ${JSON.stringify(r.name)}` : qualifiedResource(type);
  const scope = r.namespace !== undefined ? `in the namespace ${JSON.stringify(r.namespace)}` : 'at the cluster scope';
  return new ApiError(
    statusBody(
      403,
      'Forbidden',
      `${subject} is forbidden: User ${JSON.stringify(user)} cannot ${r.verb} resource ${JSON.stringify(type.resource)} in API group ${JSON.stringify(type.group)} ${scope}`,
      { ...(r.name !== undefined ? { name: r.name } : {}), ...(type.group ? { group: type.group } : {}), kind: type.resource },
    ),
  );
}
