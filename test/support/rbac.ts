/**
 * RBAC as rendered from deploy/: every ServiceAccount's permissions, from the Roles, ClusterRoles
 * and their bindings that `kubectl kustomize deploy` produces, in the form the in-repo API server
 * enforces per user (the user being system:serviceaccount:NAMESPACE:NAME, as kube-apiserver names
 * a service account token's subject). Tests then hold the agents to what the manifests grant.
 */
import type { K8sObject } from '../deploy/render.js';
import type { Permission } from '../fake-apiserver/index.js';

const VERBS = new Set(['get', 'list', 'watch', 'create', 'update', 'delete']);
const RESOURCES = new Set(['nodes', 'configmaps', 'leases', 'pods']);

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs?: string[];
}

/** The user name of a service account, as in a token's `sub`. */
export const serviceAccountUser = (namespace: string, name: string): string => `system:serviceaccount:${namespace}:${name}`;

/** Each bound service account's permissions; verbs and resources the fake server does not serve are left out. */
export function permissionsFromManifests(objects: readonly K8sObject[]): Map<string, Permission[]> {
  const roles = new Map<string, Rule[]>();
  for (const o of objects) {
    if (o.kind === 'Role' || o.kind === 'ClusterRole')
      roles.set(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, (o['rules'] as Rule[] | undefined) ?? []);
  }
  const out = new Map<string, Permission[]>();
  for (const b of objects) {
    if (b.kind !== 'RoleBinding' && b.kind !== 'ClusterRoleBinding') continue;
    const ref = b['roleRef'] as { kind: string; name: string };
    const scope = b.kind === 'RoleBinding' ? b.metadata.namespace : undefined;
    const rules = roles.get(`${ref.kind}/${ref.kind === 'Role' ? (b.metadata.namespace ?? '') : ''}/${ref.name}`);
    if (!rules) throw new Error(`${b.kind} ${b.metadata.name} refers to ${ref.kind} ${ref.name}, which deploy/ does not define`);
    for (const s of (b['subjects'] as Array<{ kind: string; name: string; namespace?: string }> | undefined) ?? []) {
      if (s.kind !== 'ServiceAccount') continue;
      const user = serviceAccountUser(s.namespace ?? b.metadata.namespace ?? '', s.name);
      const list = out.get(user) ?? [];
      for (const rule of rules) {
        for (const resource of rule.resources ?? []) {
          if (!RESOURCES.has(resource)) continue;
          for (const verb of rule.verbs ?? []) {
            if (verb !== '*' && !VERBS.has(verb)) continue;
            const names = rule.resourceNames && rule.resourceNames.length > 0 ? rule.resourceNames : [undefined];
            for (const name of names) {
              list.push({
                verb: verb as Permission['verb'],
                resource: resource as Permission['resource'],
                ...(scope === undefined ? {} : { namespace: scope }),
                ...(name === undefined ? {} : { name }),
              });
            }
          }
        }
      }
      out.set(user, list);
    }
  }
  return out;
}
