/**
 * The fake API server's state as a test sees it, without the socket: objects to put, read, change
 * and delete behind the clients' backs (nodes, pods and any other resource), and what the fake has
 * served (requests, open watches, load). `FakeApiServer` (server.ts) adds the listener, tokens and
 * fault switches.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { makePod, type NodeInput, type ObjectInput, type PodInput } from './builders.js';
import { ApiHandler } from './http.js';
import type { LoadSnapshot } from './load.js';
import { RESOURCES, type JsonObject, type ResourceName, type ResourceType, type StoredNode, type StoredObject, type StoredPod } from './resources.js';
import type { RequestKind, RequestRecord } from './routing.js';
import { Store } from './store.js';
import type { ExpiredWatchMode } from './watch.js';

/** Fixed at start: how the fake stores and serves; every field has a default. */
export interface FakeApiStateOptions {
  /** Watch-expired behaviour; default 'event' (200 + ERROR event, as the real apiserver does). */
  expiredWatchMode?: ExpiredWatchMode;
  /** Events retained for watch replay before the oldest are compacted away. */
  maxHistory?: number;
  /** First resourceVersion minus one; real clusters never start at 0 and "0" means "any". */
  initialResourceVersion?: number;
  /** Gzip non-watch responses over 128 KiB to clients that accept gzip, as the apiserver does; default off. */
  compressResponses?: boolean;
}

/** Poll `predicate` until true; rejects after `timeoutMs`. Use instead of fixed sleeps in tests. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(5);
  }
}

/** The objects and the records of a fake API server. */
export class FakeApiState {
  protected readonly store: Store;
  protected readonly http: ApiHandler;

  protected constructor(opts: FakeApiStateOptions) {
    this.store = new Store({
      maxHistory: opts.maxHistory ?? 100_000,
      initialResourceVersion: opts.initialResourceVersion ?? 1000,
      expiredWatchMode: opts.expiredWatchMode ?? 'event',
    });
    this.http = new ApiHandler(this.store, { compress: opts.compressResponses ?? false });
  }

  // ---------------------------------------------------------------- nodes

  /** The latest resourceVersion, of any resource. */
  get resourceVersion(): string {
    return String(this.store.resourceVersion);
  }

  get nodeCount(): number {
    return this.store.count(RESOURCES.nodes);
  }

  getNode(name: string): StoredNode | undefined {
    return this.store.get(RESOURCES.nodes, undefined, name);
  }

  nodeNames(): string[] {
    return this.store.sortedObjects(RESOURCES.nodes).map((n) => n.metadata.name);
  }

  /**
   * Create or replace a node; emits ADDED/MODIFIED to open watches. Like the real
   * apiserver, an update that changes nothing is a no-op (no new resourceVersion, no event).
   */
  upsertNode(input: NodeInput): StoredNode {
    if (!input.metadata?.name) throw new Error('upsertNode: metadata.name is required');
    return this.putObject('nodes', undefined, input);
  }

  upsertNodes(inputs: Iterable<NodeInput>): void {
    for (const n of inputs) this.upsertNode(n);
  }

  /** Delete a node; emits DELETED. Returns false if it did not exist. */
  deleteNode(name: string): boolean {
    return this.deleteObject('nodes', undefined, name);
  }

  // ---------------------------------------------------------------- any resource

  /**
   * Create or replace an object, whatever its resourceVersion (a test writing behind a client's
   * back); a no-op if nothing changes. `namespace` is undefined for nodes and required otherwise.
   */
  putObject<T extends ObjectInput>(resource: ResourceName, namespace: string | undefined, obj: T): StoredObject {
    const type = this.typeFor(resource, namespace);
    const body = JSON.parse(JSON.stringify(obj)) as JsonObject & { metadata?: JsonObject };
    if (typeof body.metadata?.['name'] !== 'string' || body.metadata['name'] === '') throw new Error(`putObject ${resource}: metadata.name is required`);
    if (body.metadata['namespace'] !== undefined && body.metadata['namespace'] !== namespace) {
      throw new Error(`putObject ${resource}: metadata.namespace ${JSON.stringify(body.metadata['namespace'])} is not ${namespace}`);
    }
    return this.store.put(type, namespace, body);
  }

  getObject(resource: ResourceName, namespace: string | undefined, name: string): StoredObject | undefined {
    return this.store.get(this.typeFor(resource, namespace), namespace, name);
  }

  /** Every object of a resource (in one namespace, or all), sorted by namespace and name. */
  listObjects(resource: ResourceName, namespace?: string): StoredObject[] {
    return this.store.sortedObjects(RESOURCES[resource]).filter((o) => namespace === undefined || o.metadata.namespace === namespace);
  }

  /**
   * Replace an object with `fn(current)` without copying it (cheap enough for thousands of updates a
   * second): `fn` returns a new object, sharing unchanged parts, or `current` for no change.
   */
  updateObject(resource: ResourceName, namespace: string | undefined, name: string, fn: (current: StoredObject) => StoredObject): StoredObject | undefined {
    return this.store.modify(this.typeFor(resource, namespace), namespace, name, fn);
  }

  /** Create or replace a pod built by `makePod`; a no-op if nothing changes. */
  upsertPod(namespace: string, input: PodInput): StoredPod {
    return this.putObject('pods', namespace, makePod(input));
  }

  /**
   * The first half of a graceful pod deletion, as the apiserver does it for a pod bound to a node:
   * deletionTimestamp and deletionGracePeriodSeconds set (MODIFIED); `deleteObject` is the kubelet's
   * final DELETE. Returns false if there is no such pod.
   */
  terminatePod(namespace: string, name: string, gracePeriodSeconds = 30): boolean {
    const at = new Date(Date.now() + gracePeriodSeconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    const done = this.updateObject('pods', namespace, name, (current) =>
      current.metadata['deletionTimestamp'] !== undefined
        ? current
        : { ...current, metadata: { ...current.metadata, deletionTimestamp: at, deletionGracePeriodSeconds: gracePeriodSeconds } },
    );
    return done !== undefined;
  }

  /** Delete an object; emits DELETED. Returns false if it did not exist. */
  deleteObject(resource: ResourceName, namespace: string | undefined, name: string): boolean {
    const type = this.typeFor(resource, namespace);
    if (!this.store.get(type, namespace, name)) return false;
    this.store.remove(type, namespace, name);
    return true;
  }

  /**
   * Forget all event history and list snapshots (like etcd compaction): watches from any
   * resourceVersion older than the current one, and outstanding continue tokens, get 410.
   */
  compactHistory(): void {
    this.store.compact();
  }
  // ---------------------------------------------------------------- observability

  /** Every request received, in arrival order. */
  get requests(): RequestRecord[] {
    return this.http.requests;
  }

  /** Requests received, by kind. */
  get counts(): Record<RequestKind, number> {
    return this.http.counts;
  }

  /** Open watches of every resource. */
  get openWatches(): number {
    return this.store.watches.watchCount();
  }

  openWatchesOf(resource: ResourceName): number {
    return this.store.watches.watchCount(resource);
  }

  /** Query strings of all requests of a kind (e.g. to check which resourceVersion a watch used). */
  queries(kind?: RequestKind): string[] {
    return this.requests.filter((r) => kind === undefined || r.kind === kind).map((r) => r.search);
  }

  /** Clears `requests` and `counts` (not the load accounting, see `resetLoad`). */
  resetStats(): void {
    this.http.resetStats();
  }

  /** Requests and bytes sent per user, resource and kind since the start or `resetLoad`. */
  load(): LoadSnapshot {
    return this.http.loadSnapshot();
  }

  resetLoad(): void {
    this.http.resetLoad();
  }

  waitFor(predicate: (s: this) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    return waitFor(() => predicate(this), timeoutMs, what);
  }

  // ---------------------------------------------------------------- internals

  protected typeFor(resource: ResourceName, namespace: string | undefined): ResourceType {
    const type = RESOURCES[resource];
    if (type.namespaced !== (namespace !== undefined)) {
      throw new Error(`${resource} ${type.namespaced ? 'need a namespace' : 'are cluster-scoped: pass no namespace'}`);
    }
    return type;
  }
}
