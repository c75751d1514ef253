/**
 * The fake API server's storage, behaving as etcd does: one store of objects keyed by resource,
 * namespace and name; one resourceVersion counter for every resource; creates, updates with
 * conflicts, no-op updates and deletes with preconditions, each recorded in the event history that
 * watches replay (watch.ts); lists paged over consistent snapshots (lists.ts). It knows nothing of
 * HTTP and answers through `Reply`.
 */
import { randomUUID } from 'node:crypto';
import { ListPages } from './lists.js';
import {
  alreadyExists,
  conflict,
  jsonEqual,
  notFound,
  RESOURCES,
  type JsonObject,
  type ObjectMeta,
  type ResourceName,
  type ResourceType,
  type StoredObject,
} from './resources.js';
import { WatchHub, type Reply, type WatchHubOptions } from './watch.js';

/** Which server-owned metadata a write takes from the caller (tests) or makes anew (HTTP create). */
export type Origin = 'caller' | 'request';

/** DeleteOptions.preconditions. */
export interface Preconditions {
  uid?: string;
  resourceVersion?: string;
}

/** Fixed at start: how much history is kept and where resourceVersions begin. */
export type StoreOptions = WatchHubOptions;

/** Objects of every resource under one resourceVersion counter, with their history, watches and list snapshots. */
export class Store {
  private readonly objects = new Map<ResourceName, Map<string, StoredObject>>();
  /** Per resource, sorted by namespace/name; cached until the next add or delete of that resource. */
  private readonly sorted = new Map<ResourceName, readonly StoredObject[]>();
  /** Each object's state before its last write (undefined: created by it), kept from `lagCacheReads()` on. */
  private readonly before = new Map<string, StoredObject | undefined>();
  private lagging = false;
  private rv: number;
  /** The event history and open watches. */
  readonly watches: WatchHub;
  /** The snapshots of paged lists. */
  readonly lists = new ListPages();

  constructor(opts: StoreOptions) {
    this.rv = opts.initialResourceVersion;
    this.watches = new WatchHub(opts);
    for (const r of Object.keys(RESOURCES) as ResourceName[]) this.objects.set(r, new Map());
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get(type: ResourceType, namespace: string | undefined, name: string): StoredObject | undefined {
    return this.table(type).get(keyOf(type, namespace, name));
  }

  /** From now on, GETs with resourceVersion=0 are served one write behind (see getLagging); off forgets it. */
  lagCacheReads(on: boolean): void {
    this.lagging = on;
    if (!on) this.before.clear();
  }

  /**
   * What a watch cache one write behind serves for a GET with resourceVersion=0: the object before
   * its last change (absent if it was created by that change), or as it is when it never changed.
   */
  getLagging(type: ResourceType, namespace: string | undefined, name: string): StoredObject | undefined {
    if (!this.lagging) return this.get(type, namespace, name);
    const key = lagKey(type, namespace, name);
    return this.before.has(key) ? this.before.get(key) : this.get(type, namespace, name);
  }

  /** Like `getLagging`, but a missing object is the apiserver's 404. */
  requireLagging(type: ResourceType, namespace: string | undefined, name: string): StoredObject {
    const o = this.getLagging(type, namespace, name);
    if (!o) throw notFound(type, name);
    return o;
  }

  /** Like `get`, but a missing object is the apiserver's 404. */
  require(type: ResourceType, namespace: string | undefined, name: string): StoredObject {
    const o = this.get(type, namespace, name);
    if (!o) throw notFound(type, name);
    return o;
  }

  count(type: ResourceType): number {
    return this.table(type).size;
  }

  /** Every object of a resource, sorted by namespace then name; never mutated, so it doubles as a snapshot. */
  sortedObjects(type: ResourceType): readonly StoredObject[] {
    let s = this.sorted.get(type.resource);
    if (!s) {
      s = [...this.table(type).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => o);
      this.sorted.set(type.resource, s);
    }
    return s;
  }

  /** POST: a new object; 409 AlreadyExists if the name is taken. */
  create(type: ResourceType, namespace: string | undefined, body: JsonObject, origin: Origin): StoredObject {
    const name = nameOf(body);
    if (this.get(type, namespace, name)) throw alreadyExists(type, name);
    return this.commit(type, this.build(type, namespace, name, body, undefined, origin), undefined);
  }

  /**
   * PUT: replaces an existing object (404 if absent). A metadata.resourceVersion in the body must
   * be the current one (409 Conflict otherwise); an update that changes nothing is a no-op.
   */
  update(type: ResourceType, namespace: string | undefined, name: string, body: JsonObject): StoredObject {
    const prev = this.get(type, namespace, name);
    if (!prev) throw notFound(type, name);
    const rv = (body['metadata'] as JsonObject | undefined)?.['resourceVersion'];
    if (rv !== undefined && rv !== '' && rv !== prev.metadata.resourceVersion) {
      throw conflict(type, name, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    return this.replace(type, namespace, name, body, prev);
  }

  /** Test-side create-or-replace, whatever the resourceVersion; a no-op if nothing changes. */
  put(type: ResourceType, namespace: string | undefined, body: JsonObject): StoredObject {
    const name = nameOf(body);
    const prev = this.get(type, namespace, name);
    if (!prev) return this.commit(type, this.build(type, namespace, name, body, undefined, 'caller'), undefined);
    return this.replace(type, namespace, name, body, prev);
  }

  /**
   * Replaces an object with `fn(current)` without copying it: `fn` must return a new object (it
   * may share unchanged parts) or `current` itself for no change. undefined if there is no such object.
   */
  modify(type: ResourceType, namespace: string | undefined, name: string, fn: (current: StoredObject) => StoredObject): StoredObject | undefined {
    const prev = this.get(type, namespace, name);
    if (!prev) return undefined;
    const next = fn(prev);
    if (next === prev) return prev;
    // A metadata of its own: `next` may share the stored one, and commit stamps the resourceVersion in it.
    return this.commit(type, { ...next, metadata: { ...next.metadata } }, prev);
  }

  /** DELETE: removes an object (404 if absent, 409 if a precondition fails); returns its final state. */
  remove(type: ResourceType, namespace: string | undefined, name: string, pre: Preconditions = {}): StoredObject {
    const prev = this.get(type, namespace, name);
    if (!prev) throw notFound(type, name);
    if (pre.uid !== undefined && pre.uid !== prev.metadata.uid) {
      throw conflict(type, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${prev.metadata.uid}`);
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== prev.metadata.resourceVersion) {
      throw conflict(
        type,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${prev.metadata.resourceVersion}`,
      );
    }
    this.table(type).delete(keyOf(type, namespace, name));
    if (this.lagging) this.before.set(lagKey(type, namespace, name), prev);
    this.sorted.delete(type.resource);
    const rv = ++this.rv;
    // The DELETED event carries the final state stamped with the deletion revision.
    const obj: StoredObject = { ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } };
    this.watches.record({ rv, type: 'DELETED', resource: type.resource, obj, prev });
    return obj;
  }

  /** Forgets all history and list snapshots, like etcd compaction at the current revision. */
  compact(): void {
    this.watches.compact(this.rv);
    this.lists.clear();
  }

  /** GET on a collection: one page, consistent with earlier pages of the same continue chain. */
  list(type: ResourceType, namespace: string | undefined, params: URLSearchParams, reply: Reply): void {
    this.lists.list(type, namespace, params, reply, { rv: this.rv, compactedRv: this.watches.oldestRv, objects: () => this.sortedObjects(type) });
  }

  /** GET ?watch=true: replay from resourceVersion (or the current state), then live events. */
  watch(type: ResourceType, namespace: string | undefined, params: URLSearchParams, reply: Reply): void {
    this.watches.watch(type, namespace, params, reply, { rv: this.rv, objects: () => this.sortedObjects(type) });
  }

  /** BOOKMARK at the current resourceVersion to watches that asked for them (or all, with `force`). */
  bookmark(force: boolean, resource?: ResourceName): number {
    return this.watches.bookmark(this.rv, force, resource);
  }

  // ---------------------------------------------------------------- internals

  private table(type: ResourceType): Map<string, StoredObject> {
    const t = this.objects.get(type.resource);
    if (!t) throw new Error(`no such resource: ${type.resource}`);
    return t;
  }

  /** The stored form of a body: no TypeMeta, server-owned metadata first (the apiserver's field order). */
  private build(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body: JsonObject,
    prev: StoredObject | undefined,
    origin: Origin,
  ): StoredObject {
    const rest = { ...body };
    delete rest['kind'];
    delete rest['apiVersion'];
    delete rest['metadata'];
    const given = { ...((body['metadata'] as JsonObject | undefined) ?? {}) };
    const fromCaller = (k: string): string | undefined => (origin === 'caller' && typeof given[k] === 'string' ? given[k] : undefined);
    const uid = prev?.metadata.uid ?? fromCaller('uid') ?? randomUUID();
    const creationTimestamp = prev?.metadata.creationTimestamp ?? fromCaller('creationTimestamp') ?? nowRfc3339();
    for (const k of ['name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp']) delete given[k];
    const metadata: ObjectMeta = {
      name,
      ...(type.namespaced && namespace !== undefined ? { namespace } : {}),
      uid,
      resourceVersion: prev?.metadata.resourceVersion ?? '',
      creationTimestamp,
      ...given,
    };
    return { metadata, ...rest };
  }

  private replace(type: ResourceType, namespace: string | undefined, name: string, body: JsonObject, prev: StoredObject): StoredObject {
    const candidate = this.build(type, namespace, name, body, prev, 'caller');
    if (jsonEqual(candidate, prev)) return prev;
    return this.commit(type, candidate, prev);
  }

  /** Stamps the next resourceVersion, stores, and emits ADDED or MODIFIED. */
  private commit(type: ResourceType, obj: StoredObject, prev: StoredObject | undefined): StoredObject {
    obj.metadata.resourceVersion = String(++this.rv);
    const table = this.table(type);
    table.set(keyOf(type, obj.metadata.namespace, obj.metadata.name), obj);
    if (this.lagging) this.before.set(lagKey(type, obj.metadata.namespace, obj.metadata.name), prev);
    // Only adds change the order; a modification just makes the cached array stale.
    this.sorted.delete(type.resource);
    this.watches.record(
      prev ? { rv: this.rv, type: 'MODIFIED', resource: type.resource, obj, prev } : { rv: this.rv, type: 'ADDED', resource: type.resource, obj },
    );
    return obj;
  }
}

/** keyOf within one resource; the lagging reads keep every resource in one map. */
function lagKey(type: ResourceType, namespace: string | undefined, name: string): string {
  return `${type.resource}/${keyOf(type, namespace, name)}`;
}

function keyOf(type: ResourceType, namespace: string | undefined, name: string): string {
  return type.namespaced ? `${namespace ?? ''}/${name}` : name;
}

function nameOf(body: JsonObject): string {
  const name = (body['metadata'] as JsonObject | undefined)?.['name'];
  if (typeof name !== 'string' || name === '') throw new Error('metadata.name is required');
  return name;
}

function nowRfc3339(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}
