/**
 * What the fake API server stores and how the apiserver names it: the served resources (their
 * kinds, groups, scopes and field selectors), the stored objects' JSON wire form, and the Failure
 * Status bodies of the errors that every part of the fake sends.
 */

/** metadata.labels or metadata.annotations. */
export type Labels = Record<string, string>;

/** The resources the fake serves, by their plural (URL, RBAC) name. */
export type ResourceName = 'nodes' | 'configmaps' | 'leases' | 'pods';

/** One entry of a node's status.addresses. */
export interface NodeAddress {
  type: string;
  address: string;
}

/** Object metadata as stored and served; the server owns uid, resourceVersion and creationTimestamp. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  labels?: Labels;
  annotations?: Labels;
  [key: string]: unknown;
}

/** An object as stored and served: JSON wire form, without TypeMeta (like list items). */
export interface StoredObject {
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/** A node as stored and served. */
export interface StoredNode extends StoredObject {
  spec?: { unschedulable?: boolean; taints?: unknown[]; [key: string]: unknown };
  status?: { addresses?: NodeAddress[]; conditions?: Array<Record<string, unknown>>; [key: string]: unknown };
}

/** A pod as stored and served: what the fake looks at of one. */
export interface StoredPod extends StoredObject {
  spec?: {
    nodeName?: string;
    hostNetwork?: boolean;
    restartPolicy?: string;
    schedulerName?: string;
    serviceAccountName?: string;
    containers?: Array<{ name?: string; image?: string; [key: string]: unknown }>;
    [key: string]: unknown;
  };
  status?: { phase?: string; podIP?: string; podIPs?: Array<{ ip?: string }>; nominatedNodeName?: string; [key: string]: unknown };
}

/** A parsed JSON object, as a request body or a test's input is once copied. */
export type JsonObject = Record<string, unknown>;

/** What the store needs to know of a resource. */
export interface ResourceType {
  readonly resource: ResourceName;
  /** API group; '' is the core group. */
  readonly group: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespaced: boolean;
  /** Field selectors the apiserver supports beyond metadata.name (and metadata.namespace if namespaced). */
  readonly fields: Readonly<Record<string, (o: StoredObject) => string>>;
}

/** The served resources, as the apiserver describes them. */
export const RESOURCES: Readonly<Record<ResourceName, ResourceType>> = {
  nodes: {
    resource: 'nodes',
    group: '',
    apiVersion: 'v1',
    kind: 'Node',
    namespaced: false,
    fields: { 'spec.unschedulable': (o) => String((o as StoredNode).spec?.unschedulable === true) },
  },
  configmaps: { resource: 'configmaps', group: '', apiVersion: 'v1', kind: 'ConfigMap', namespaced: true, fields: {} },
  leases: { resource: 'leases', group: 'coordination.k8s.io', apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespaced: true, fields: {} },
  pods: {
    resource: 'pods',
    group: '',
    apiVersion: 'v1',
    kind: 'Pod',
    namespaced: true,
    // kube-apiserver's PodToSelectableFields (pkg/registry/core/pod/strategy.go): status.podIP is the first of podIPs.
    fields: {
      'spec.nodeName': (o) => (o as StoredPod).spec?.nodeName ?? '',
      'spec.restartPolicy': (o) => (o as StoredPod).spec?.restartPolicy ?? '',
      'spec.schedulerName': (o) => (o as StoredPod).spec?.schedulerName ?? '',
      'spec.serviceAccountName': (o) => (o as StoredPod).spec?.serviceAccountName ?? '',
      'spec.hostNetwork': (o) => String((o as StoredPod).spec?.hostNetwork === true),
      'status.phase': (o) => (o as StoredPod).status?.phase ?? '',
      'status.podIP': (o) => (o as StoredPod).status?.podIPs?.[0]?.ip ?? (o as StoredPod).status?.podIP ?? '',
      'status.nominatedNodeName': (o) => (o as StoredPod).status?.nominatedNodeName ?? '',
    },
  },
};

/** `configmaps`, `leases.coordination.k8s.io`: the resource as error messages name it. */
export function qualifiedResource(type: ResourceType): string {
  return type.group === '' ? type.resource : `${type.resource}.${type.group}`;
}

/** The object as GET and watch events carry it: with kind and apiVersion first. */
export function withTypeMeta(type: ResourceType, obj: StoredObject): JsonObject {
  return { kind: type.kind, apiVersion: type.apiVersion, ...obj };
}

/** Deep equality of two JSON values, regardless of key order (how the apiserver sees a no-op update). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && jsonEqual((a as JsonObject)[k], (b as JsonObject)[k]));
}

// ---------------------------------------------------------------- Status bodies and errors

/** Status.details: which object an error is about. */
export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: Array<{ reason: string; message: string; field: string }>;
  retryAfterSeconds?: number;
}

/** A Failure Status, the body of every error the apiserver sends. */
export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: { continue?: string };
  status: 'Failure';
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

/** A Failure Status as the apiserver sends it. */
export function statusBody(code: number, reason: string, message: string, details?: StatusDetails): StatusBody {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

/** A request the apiserver refuses; `status` is the body to send, `status.code` the HTTP status. */
export class ApiError extends Error {
  constructor(readonly status: StatusBody) {
    super(status.message);
  }
}

/** A 400 BadRequest. */
export function badRequest(message: string): ApiError {
  return new ApiError(statusBody(400, 'BadRequest', message));
}

/** details.{name, group, kind} as the apiserver fills them for an object's errors. */
export function objectDetails(type: ResourceType, name: string): StatusDetails {
  return { name, ...(type.group ? { group: type.group } : {}), kind: type.resource };
}

/** 404 NotFound, naming the object. */
export function notFound(type: ResourceType, name: string): ApiError {
  return new ApiError(statusBody(404, 'NotFound', `${qualifiedResource(type)} ${JSON.stringify(name)} not found`, objectDetails(type, name)));
}

/** 409 AlreadyExists, naming the object. */
export function alreadyExists(type: ResourceType, name: string): ApiError {
  return new ApiError(statusBody(409, 'AlreadyExists', `${qualifiedResource(type)} ${JSON.stringify(name)} already exists`, objectDetails(type, name)));
}

/** 409 Conflict, naming the object and why. */
export function conflict(type: ResourceType, name: string, why: string): ApiError {
  return new ApiError(
    statusBody(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(type)} ${JSON.stringify(name)}: ${why}`, objectDetails(type, name)),
  );
}
