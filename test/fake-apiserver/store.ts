/**
 * The fake API server's storage, behaving as etcd plus the apiserver's watch cache do: one store of
 * objects keyed by resource, namespace and name; one resourceVersion counter for every resource;
 * one event history, compacted as a whole; consistent list snapshots behind continue tokens; watch
 * streams with history replay, 410 Expired, bookmarks and the per-watcher ADDED/DELETED translation
 * of selectors. It knows nothing of HTTP and answers through `Reply`.
 */
import { randomUUID } from 'node:crypto';

/** metadata.labels or metadata.annotations. */
export type Labels = Record<string, string>;

/** The resources the fake serves, by their plural (URL, RBAC) name. */
export type ResourceName = 'nodes' | 'configmaps' | 'leases' | 'pods';

/** The `type` of a watch event line. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** How a watch from a compacted resourceVersion is refused. */
export type ExpiredWatchMode = 'event' | 'http';

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

function notFound(type: ResourceType, name: string): ApiError {
  return new ApiError(statusBody(404, 'NotFound', `${qualifiedResource(type)} ${JSON.stringify(name)} not found`, objectDetails(type, name)));
}

function alreadyExists(type: ResourceType, name: string): ApiError {
  return new ApiError(statusBody(409, 'AlreadyExists', `${qualifiedResource(type)} ${JSON.stringify(name)} already exists`, objectDetails(type, name)));
}

function conflict(type: ResourceType, name: string, why: string): ApiError {
  return new ApiError(
    statusBody(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(type)} ${JSON.stringify(name)}: ${why}`, objectDetails(type, name)),
  );
}

// ---------------------------------------------------------------- selectors

type Matcher = (o: StoredObject) => boolean;

// Label selector grammar subset used in practice: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k.
const KEY = String.raw`[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const VAL = String.raw`(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const RE_EQ = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VAL})$`);
const RE_SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`);
const RE_EXISTS = new RegExp(`^(${KEY})$`);
const RE_NOT_EXISTS = new RegExp(`^!\\s*(${KEY})$`);

function splitTopLevel(s: string): string[] {
  // Commas inside `in (...)` value lists do not separate requirements.
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.map((p) => p.trim());
}

/** A labelSelector as a predicate (undefined: matches everything); a bad one throws a 400 ApiError. */
export function parseLabelSelector(selector: string): Matcher | undefined {
  if (selector.trim() === '') return undefined;
  const reqs: Array<(labels: Labels) => boolean> = [];
  for (const part of splitTopLevel(selector)) {
    let m: RegExpExecArray | null;
    if ((m = RE_EQ.exec(part))) {
      const [, key = '', op, value = ''] = m;
      reqs.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if ((m = RE_SET.exec(part))) {
      const [, key = '', op, list = ''] = m;
      const values = new Set(list.split(',').map((v) => v.trim()));
      reqs.push(op === 'in' ? (l) => l[key] !== undefined && values.has(l[key]) : (l) => l[key] === undefined || !values.has(l[key]));
    } else if ((m = RE_NOT_EXISTS.exec(part))) {
      const key = m[1] ?? '';
      reqs.push((l) => !(key in l));
    } else if ((m = RE_EXISTS.exec(part))) {
      const key = m[1] ?? '';
      reqs.push((l) => key in l);
    } else {
      throw badRequest(`unable to parse requirement: ${JSON.stringify(part)}`);
    }
  }
  return (o) => {
    const labels = o.metadata.labels ?? {};
    return reqs.every((r) => r(labels));
  };
}

/** A fieldSelector as a predicate, with exactly the fields the apiserver supports for `type` (default nodes). */
export function parseFieldSelector(selector: string, type: ResourceType = RESOURCES.nodes): Matcher | undefined {
  if (selector.trim() === '') return undefined;
  const reqs: Matcher[] = [];
  for (const part of selector.split(',').map((p) => p.trim())) {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const [, field = '', op, value = ''] = m;
    let get: ((o: StoredObject) => string) | undefined = type.fields[field];
    if (field === 'metadata.name') get = (o) => o.metadata.name;
    else if (field === 'metadata.namespace' && type.namespaced) get = (o) => o.metadata.namespace ?? '';
    if (!get) throw badRequest(`field label not supported: ${field}`);
    const read = get;
    reqs.push(op === '!=' ? (o) => read(o) !== value : (o) => read(o) === value);
  }
  return (o) => reqs.every((r) => r(o));
}

/** The name a fieldSelector pins (metadata.name=x), which the apiserver authorizes like a named request. */
export function selectedName(fieldSelector: string): string | undefined {
  const names = fieldSelector
    .split(',')
    .map((p) => /^\s*metadata\.name\s*==?\s*(.+?)\s*$/.exec(p)?.[1])
    .filter((n) => n !== undefined);
  return names.length === 1 ? names[0] : undefined;
}

function combine(a: Matcher | undefined, b: Matcher | undefined): Matcher | undefined {
  if (a && b) return (o) => a(o) && b(o);
  return a ?? b;
}

// ---------------------------------------------------------------- wire helpers

/** The object as GET and watch events carry it: with kind and apiVersion first. */
export function withTypeMeta(type: ResourceType, obj: StoredObject): JsonObject {
  return { kind: type.kind, apiVersion: type.apiVersion, ...obj };
}

/** One line of a watch stream. */
export function eventLine(type: WatchEventType, object: unknown): string {
  return `${JSON.stringify({ type, object })}\n`;
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

function encodeContinue(resource: ResourceName, rv: number, start: number): string {
  // Same envelope shape as the apiserver's token (base64 JSON with the snapshot revision).
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', r: resource, rv, start })).toString('base64url');
}

function decodeContinue(token: string, resource: ResourceName): { rv: number; start: number } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'rv' in parsed && 'start' in parsed && 'r' in parsed && parsed.r === resource) {
      const { rv, start } = parsed;
      if (Number.isSafeInteger(rv) && Number.isSafeInteger(start) && (start as number) >= 0) {
        return { rv: rv as number, start: start as number };
      }
    }
  } catch {
    // fall through
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}

function parseRv(raw: string): number {
  if (!/^\d+$/.test(raw)) throw badRequest(`invalid resource version: ${raw}`);
  return Number(raw);
}

function nowRfc3339(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

// ---------------------------------------------------------------- the store

/** How the store answers a request: one JSON body, or a watch stream. */
export interface Reply {
  json(code: number, body: unknown): void;
  /** Starts a 200 watch stream; its head goes out at once. */
  stream(): WatchStream;
}

/** One open watch response. */
export interface WatchStream {
  write(text: string): void;
  /** Ends the stream cleanly (the terminating chunk), after `text` if given. */
  end(text?: string): void;
  /** Destroys the connection mid-stream. */
  cut(): void;
  onClose(fn: () => void): void;
}

interface HistoryEntry {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: ResourceName;
  /** Current object; for DELETED the last state stamped with the deletion resourceVersion. */
  obj: StoredObject;
  /** Previous state (MODIFIED/DELETED), needed to translate events for selector-filtered watches. */
  prev?: StoredObject;
}

/** Serialized event lines of one history entry, by delivered type, shared by every watch that gets them. */
type LineCache = Partial<Record<'ADDED' | 'MODIFIED' | 'DELETED', string>>;

interface WatchConn {
  type: ResourceType;
  namespace: string | undefined;
  stream: WatchStream;
  bookmarks: boolean;
  matches: Matcher | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** Which server-owned metadata a write takes from the caller (tests) or makes anew (HTTP create). */
export type Origin = 'caller' | 'request';

/** DeleteOptions.preconditions. */
export interface Preconditions {
  uid?: string;
  resourceVersion?: string;
}

/** Fixed at start: how much history is kept and where resourceVersions begin. */
export interface StoreOptions {
  maxHistory: number;
  initialResourceVersion: number;
  expiredWatchMode: ExpiredWatchMode;
}

const MAX_SNAPSHOTS = 32;

/** Objects, history and watches of every resource, under one resourceVersion counter. */
export class Store {
  private readonly objects = new Map<ResourceName, Map<string, StoredObject>>();
  /** Per resource, sorted by namespace/name; cached until the next add or delete of that resource. */
  private readonly sorted = new Map<ResourceName, readonly StoredObject[]>();
  private readonly history: HistoryEntry[] = [];
  /** Each object's state before its last write (undefined: created by it), kept from `lagCacheReads()` on. */
  private readonly before = new Map<string, StoredObject | undefined>();
  private lagging = false;
  private readonly watches = new Map<ResourceName, Set<WatchConn>>();
  private readonly snapshots = new Map<string, readonly StoredObject[]>();
  private readonly maxHistory: number;
  private rv: number;
  /** Watches must start at or after this revision; older ones get 410 Expired. */
  private compactedRv: number;
  expiredWatchMode: ExpiredWatchMode;
  /** Server-side end of watches that send no timeoutSeconds; undefined = never. */
  defaultWatchTimeoutMs: number | undefined;
  /** Lists ignore `limit` and answer in one page, as the apiserver's watch cache does. */
  ignoreLimit = false;

  constructor(opts: StoreOptions) {
    this.maxHistory = opts.maxHistory;
    this.rv = opts.initialResourceVersion;
    this.compactedRv = this.rv;
    this.expiredWatchMode = opts.expiredWatchMode;
    for (const r of Object.keys(RESOURCES) as ResourceName[]) {
      this.objects.set(r, new Map());
      this.watches.set(r, new Set());
    }
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
    this.emit({ rv, type: 'DELETED', resource: type.resource, obj, prev });
    return obj;
  }

  /** Forgets all history and list snapshots, like etcd compaction at the current revision. */
  compact(): void {
    this.history.length = 0;
    this.compactedRv = this.rv;
    this.snapshots.clear();
  }

  /** GET on a collection: one page, consistent with earlier pages of the same continue chain. */
  list(type: ResourceType, namespace: string | undefined, params: URLSearchParams, reply: Reply): void {
    const matches = this.selector(type, params);
    const limitRaw = this.ignoreLimit ? null : params.get('limit');
    const limit = limitRaw === null || limitRaw === '' ? 0 : Number(limitRaw);
    if (!Number.isSafeInteger(limit) || limit < 0) throw badRequest(`invalid limit: ${limitRaw}`);
    const cont = params.get('continue');

    let snapshotRv: number;
    let items: readonly StoredObject[];
    let start = 0;
    if (cont) {
      const tok = decodeContinue(cont, type.resource);
      const snap = this.snapshots.get(`${type.resource}@${tok.rv}`);
      if (!snap || tok.rv < this.compactedRv) {
        throw new ApiError(
          statusBody(
            410,
            'Expired',
            // kube-apiserver's message, word for word.
            'The provided continue parameter is too old to display a consistent list result. ' +
              'You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. ' +
              'Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted ' +
              'between the time the first chunk was returned and now may show up in the list.',
          ),
        );
      }
      snapshotRv = tok.rv;
      items = snap;
      start = Math.min(tok.start, snap.length);
    } else {
      snapshotRv = this.rv;
      items = this.sortedObjects(type);
    }

    const inScope = (o: StoredObject): boolean => namespace === undefined || o.metadata.namespace === namespace;
    const page: StoredObject[] = [];
    let i = start;
    for (; i < items.length && (limit === 0 || page.length < limit); i++) {
      const o = items[i];
      if (o && inScope(o) && (!matches || matches(o))) page.push(o);
    }
    const metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number } = {
      resourceVersion: String(snapshotRv),
    };
    // Like etcd's key range: more keys in the range (namespace), matching the selector or not, means another page.
    const rest = namespace === undefined ? items.length - i : items.slice(i).filter(inScope).length;
    if (limit > 0 && rest > 0) {
      // Remember the snapshot so later pages are consistent with this one (like an etcd read at rv).
      const key = `${type.resource}@${snapshotRv}`;
      if (!this.snapshots.has(key)) {
        this.snapshots.set(key, items);
        if (this.snapshots.size > MAX_SNAPSHOTS) {
          const oldest = this.snapshots.keys().next().value;
          if (oldest !== undefined) this.snapshots.delete(oldest);
        }
      }
      metadata.continue = encodeContinue(type.resource, snapshotRv, i);
      if (!matches) metadata.remainingItemCount = rest;
    }
    reply.json(200, { kind: `${type.kind}List`, apiVersion: type.apiVersion, metadata, items: page });
  }

  /** GET ?watch=true: replay from resourceVersion (or the current state), then live events. */
  watch(type: ResourceType, namespace: string | undefined, params: URLSearchParams, reply: Reply): void {
    const matches = this.selector(type, params);
    const rvRaw = params.get('resourceVersion') ?? '';
    const timeoutRaw = params.get('timeoutSeconds');
    let timeoutMs = this.defaultWatchTimeoutMs;
    if (timeoutRaw !== null && timeoutRaw !== '') {
      if (!/^\d+$/.test(timeoutRaw)) throw badRequest(`invalid timeoutSeconds: ${timeoutRaw}`);
      const s = Number(timeoutRaw);
      if (s > 0) timeoutMs = s * 1000;
    }
    const inScope = (o: StoredObject): boolean => namespace === undefined || o.metadata.namespace === namespace;

    let replay: string[];
    if (rvRaw === '' || rvRaw === '0') {
      // Unset/"0": synthetic ADDED for the current state, then live events.
      replay = this.sortedObjects(type)
        .filter((o) => inScope(o) && (!matches || matches(o)))
        .map((o) => eventLine('ADDED', withTypeMeta(type, o)));
    } else {
      const from = parseRv(rvRaw);
      if (from < this.compactedRv) {
        const status = statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
        if (this.expiredWatchMode === 'http') reply.json(410, status);
        else reply.stream().end(eventLine('ERROR', status));
        return;
      }
      replay = [];
      for (let i = this.firstAfter(from); i < this.history.length; i++) {
        const e = this.history[i];
        const line = e && e.resource === type.resource && inScope(e.obj) ? convert(type, e, matches, {}) : undefined;
        if (line !== undefined) replay.push(line);
      }
    }

    const stream = reply.stream();
    const w: WatchConn = { type, namespace, stream, bookmarks: params.get('allowWatchBookmarks') === 'true', matches, timer: undefined };
    // Replay and registration happen in the same tick, so no live event can slip in between.
    if (replay.length > 0) stream.write(replay.join(''));
    const set = this.watchSet(type.resource);
    set.add(w);
    stream.onClose(() => {
      set.delete(w);
      if (w.timer) clearTimeout(w.timer);
    });
    if (timeoutMs !== undefined) w.timer = setTimeout(() => this.dropWatch(w, 'end'), timeoutMs);
  }

  /** Open watches, of one resource or all. */
  watchCount(resource?: ResourceName): number {
    let n = 0;
    for (const [r, set] of this.watches) if (resource === undefined || r === resource) n += set.size;
    return n;
  }

  /** Ends open watches (of one resource or all): 'cut' destroys the connection, 'end' closes cleanly after `text`. */
  dropWatches(how: 'cut' | 'end', resource?: ResourceName, text?: string): number {
    const all = this.select(resource, () => true);
    for (const w of all) {
      if (text !== undefined) w.stream.write(text);
      this.dropWatch(w, how);
    }
    return all.length;
  }

  /** Writes raw text to open watches (of one resource or all); returns how many. */
  writeToWatches(text: string, resource?: ResourceName): number {
    const all = this.select(resource, () => true);
    for (const w of all) w.stream.write(text);
    return all.length;
  }

  /** BOOKMARK at the current resourceVersion to watches that asked for them (or all, with `force`). */
  bookmark(force: boolean, resource?: ResourceName): number {
    const all = this.select(resource, (w) => w.bookmarks || force);
    for (const w of all) {
      w.stream.write(eventLine('BOOKMARK', { kind: w.type.kind, apiVersion: w.type.apiVersion, metadata: { resourceVersion: String(this.rv) } }));
    }
    return all.length;
  }

  // ---------------------------------------------------------------- internals

  private table(type: ResourceType): Map<string, StoredObject> {
    const t = this.objects.get(type.resource);
    if (!t) throw new Error(`no such resource: ${type.resource}`);
    return t;
  }

  private watchSet(resource: ResourceName): Set<WatchConn> {
    const s = this.watches.get(resource);
    if (!s) throw new Error(`no such resource: ${resource}`);
    return s;
  }

  private select(resource: ResourceName | undefined, pred: (w: WatchConn) => boolean): WatchConn[] {
    const out: WatchConn[] = [];
    for (const [r, set] of this.watches) if (resource === undefined || r === resource) for (const w of set) if (pred(w)) out.push(w);
    return out;
  }

  private selector(type: ResourceType, params: URLSearchParams): Matcher | undefined {
    return combine(parseLabelSelector(params.get('labelSelector') ?? ''), parseFieldSelector(params.get('fieldSelector') ?? '', type));
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
    this.emit(prev ? { rv: this.rv, type: 'MODIFIED', resource: type.resource, obj, prev } : { rv: this.rv, type: 'ADDED', resource: type.resource, obj });
    return obj;
  }

  private emit(entry: HistoryEntry): void {
    this.history.push(entry);
    if (this.history.length > this.maxHistory) {
      // Trim in chunks so a long test does not pay O(n) per event.
      const drop = this.history.splice(0, Math.max(1, Math.floor(this.maxHistory / 10)));
      this.compactedRv = drop[drop.length - 1]?.rv ?? this.compactedRv;
    }
    const set = this.watchSet(entry.resource);
    if (set.size === 0) return;
    const type = RESOURCES[entry.resource];
    // Lines are cached for this event only: kept on history entries they would pin 10 KB per node update.
    const cache: LineCache = {};
    for (const w of set) {
      if (w.namespace !== undefined && entry.obj.metadata.namespace !== w.namespace) continue;
      const line = convert(type, entry, w.matches, cache);
      if (line !== undefined) w.stream.write(line);
    }
  }

  private dropWatch(w: WatchConn, how: 'cut' | 'end'): void {
    this.watchSet(w.type.resource).delete(w);
    if (w.timer) clearTimeout(w.timer);
    if (how === 'end') w.stream.end();
    else w.stream.cut();
  }

  /** Index of the first history entry with rv > `rv` (history is sorted by rv). */
  private firstAfter(rv: number): number {
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.history[mid]?.rv ?? Infinity) <= rv) lo = mid + 1;
      else hi = mid;
    }
    return lo;
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

/** Mirrors the apiserver watch cache's per-watcher event translation for selectors. */
function convert(type: ResourceType, e: HistoryEntry, matches: Matcher | undefined, cache: LineCache): string | undefined {
  if (!matches) return (cache[e.type] ??= eventLine(e.type, withTypeMeta(type, e.obj)));
  const cur = e.type !== 'DELETED' && matches(e.obj);
  const old = e.prev !== undefined && matches(e.prev);
  if (cur) {
    const t = old ? 'MODIFIED' : 'ADDED';
    return (cache[t] ??= eventLine(t, withTypeMeta(type, e.obj)));
  }
  if (old && e.prev) {
    // Object left the selector (or was deleted): DELETED with previous content at the event's RV.
    const prev = e.prev;
    return (cache.DELETED ??= eventLine('DELETED', withTypeMeta(type, { ...prev, metadata: { ...prev.metadata, resourceVersion: String(e.rv) } })));
  }
  return undefined;
}
