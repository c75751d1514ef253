/**
 * In-process fake Kubernetes API server for tests: serves Nodes (`/api/v1/nodes`), ConfigMaps
 * (`/api/v1/namespaces/NS/configmaps`), Pods (`/api/v1/namespaces/NS/pods`, `/api/v1/pods`) and Leases
 * (`/apis/coordination.k8s.io/v1/namespaces/NS/leases`)
 * with the real protocol (resourceVersions from one counter, chunked lists with continue tokens,
 * watch streams with history replay, 410 Expired, bookmarks; get, create, update with conflicts,
 * delete) over plain HTTP on 127.0.0.1, so the real `@kubernetes/client-node` can run against it
 * unmodified. It authorizes per user against an RBAC-like table, can fail or hang requests, and
 * counts requests and bytes sent per user, resource and kind of request.
 *
 * Layout, each part importing only those before it: resources.ts (kinds, wire form, Status
 * errors), selectors.ts, watch.ts (history, watch streams), lists.ts (pages, continue tokens) <-
 * store.ts (objects, one resourceVersion counter) <- routing.ts, authorization.ts, bodies.ts,
 * load.ts <- http.ts (the handler, faults) <- builders.ts, state.ts (the test-side API to objects
 * and records) <- server.ts (listener, kubeconfig, fault switches) <- this file, the barrel that
 * tests import <- heartbeats.ts.
 *
 * Deliberately not implemented: protobuf and YAML bodies, PATCH, deletecollection, subresources,
 * generateName, namespaces as objects (every namespace exists), managedFields, sendInitialEvents,
 * pods/status and graceful pod deletion over HTTP (a DELETE removes a pod at once; `terminatePod`
 * stands in for the kubelet's graceful end: deletionTimestamp first, then the DELETE)
 * and resourceVersionMatch (lists are always served from the latest state, which satisfies both
 * "Any" and "NotOlderThan").
 */

export type { AuthMode, Permission } from './authorization.js';
export { makeNode, makePod, makeRealisticNode } from './builders.js';
export type { InputMeta, NodeInput, ObjectInput, PodInput } from './builders.js';
export type { FailSpec } from './http.js';
export { sumLoad } from './load.js';
export type { LoadCount, LoadRow, LoadSnapshot } from './load.js';
export { RESOURCES, statusBody } from './resources.js';
export type { Labels, NodeAddress, ObjectMeta, ResourceName, StatusBody, StoredNode, StoredObject, StoredPod } from './resources.js';
export { ANONYMOUS } from './routing.js';
export type { RequestFilter, RequestKind, RequestRecord, RequestResource, Verb } from './routing.js';
export { parseFieldSelector, parseLabelSelector } from './selectors.js';
export { FakeApiServer } from './server.js';
export type { FakeApiServerOptions } from './server.js';
export { waitFor } from './state.js';
export type { ExpiredWatchMode, WatchEventType } from './watch.js';
