/**
 * The fake API server's HTTP side: routes the apiserver's URLs for every resource in `RESOURCES`
 * onto the store, authenticates bearer tokens, authorizes against an RBAC-like table, reads and
 * validates JSON bodies, injects failures and hangs, and accounts every request and every byte
 * written back, per user, resource and kind of request.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import {
  ApiError,
  badRequest,
  jsonEqual,
  objectDetails,
  qualifiedResource,
  RESOURCES,
  selectedName,
  statusBody,
  withTypeMeta,
  type JsonObject,
  type Preconditions,
  type Reply,
  type ResourceName,
  type ResourceType,
  type StatusBody,
  type Store,
  type StoredObject,
  type WatchStream,
} from './store.js';

/** A JSON value as the apiserver prints it in a message: strings bare, anything else as JSON. */
function asText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The RBAC verbs the fake serves. */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'delete';
/** What a request asked for; 'other' is anything the fake does not serve as a resource verb. */
export type RequestKind = Verb | 'other';
/** 'ok': tokens are checked as usual; 401/403: every API request is refused so. */
export type AuthMode = 'ok' | 401 | 403;
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

/** One allowed (verb, resource[, namespace][, name]); omitted namespace = every namespace and the cluster scope. */
export interface Permission {
  verb: Verb | '*';
  resource: ResourceName | '*';
  namespace?: string;
  /** Like RBAC resourceNames: never matches create, nor a list or watch without fieldSelector metadata.name. */
  name?: string;
}

/** Requests received and bytes sent back. */
export interface LoadCount {
  requests: number;
  /** Bytes written to the socket for these responses: status line, headers, body, chunk framing. */
  bytes: number;
}

/** The load of one user, resource and kind of request. */
export interface LoadRow extends LoadCount {
  user: string;
  resource: RequestResource;
  kind: RequestKind;
}

/** Requests and bytes sent since the last reset; open watches count what they have sent so far. */
export interface LoadSnapshot {
  total: LoadCount;
  /** One row per (user, resource, kind) seen. */
  rows: LoadRow[];
  byUser: Record<string, LoadCount>;
  byResource: Record<string, LoadCount>;
  byKind: Record<string, LoadCount>;
}

/** Sums the rows of a snapshot that match `filter`. */
export function sumLoad(snapshot: LoadSnapshot, filter: RequestFilter = {}): LoadCount {
  const sum = { requests: 0, bytes: 0 };
  for (const r of snapshot.rows) {
    if (matchesFilter(filter, r)) {
      sum.requests += r.requests;
      sum.bytes += r.bytes;
    }
  }
  return sum;
}

/** An injected failure: `count` requests matching `only` get `status`. */
export interface FailSpec {
  status: number;
  count: number;
  only?: RequestFilter;
}

/** The user the apiserver reports for a request without valid credentials. */
export const ANONYMOUS = 'system:anonymous';
/** The apiserver's default --max-request-body-bytes (3 MiB). */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** The apiserver gzips responses larger than this when the client accepts it (APIResponseCompression). */
const GZIP_THRESHOLD_BYTES = 128 * 1024;
const NON_RESOURCE = new Set(['/version', '/healthz', '/readyz', '/livez']);

function matchesFilter(f: RequestFilter, r: { kind: RequestKind; resource: RequestResource; user?: string | undefined }): boolean {
  return (f.kind === undefined || f.kind === r.kind) && (f.resource === undefined || f.resource === r.resource) && (f.user === undefined || f.user === r.user);
}

function failureStatus(code: number): StatusBody {
  switch (code) {
    case 410:
      return statusBody(410, 'Expired', 'injected failure: resource version expired');
    case 429:
      return statusBody(429, 'TooManyRequests', 'injected failure: too many requests, please try again later', { retryAfterSeconds: 1 });
    case 500:
      return statusBody(500, 'InternalError', 'Internal error occurred: injected failure');
    case 503:
      return statusBody(503, 'ServiceUnavailable', 'injected failure: the server is currently unable to handle the request');
    case 504:
      return statusBody(504, 'Timeout', 'injected failure: the server was unable to return a response in the time allotted');
    default:
      return statusBody(code, 'Unknown', `injected failure (${code})`);
  }
}

// ---------------------------------------------------------------- routing

interface Route {
  kind: RequestKind;
  /** The verb the apiserver authorizes (patch, deletecollection, ... for what the fake does not serve). */
  verb: string;
  type?: ResourceType;
  namespace?: string;
  name?: string;
}

const PATH = /^\/(?:api\/v1|apis\/([^/]+)\/v1)\/(?:namespaces\/([^/]+)\/)?([^/]+)(?:\/([^/]+))?$/;

function route(method: string, path: string, params: URLSearchParams): Route {
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

// ---------------------------------------------------------------- bodies

/** Reads a request body up to the apiserver's limit. */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) reject(new ApiError(statusBody(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${MAX_BODY_BYTES}`)));
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(?:Z|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
/** The apiserver's limit on a ConfigMap's data plus binaryData (keys included). */
const MAX_CONFIGMAP_BYTES = 1024 * 1024;

/**
 * Parses a body as the apiserver's JSON decoder would: an object of the route's kind whose typed
 * fields decode (a ConfigMap's data are strings and binaryData base64; a Lease's times are
 * MicroTime, exactly six fractional digits, which a JavaScript Date's toJSON is not).
 */
function decodeObject(type: ResourceType, text: string): JsonObject {
  const cannot = (why: string): ApiError => badRequest(`${type.kind} in version "v1" cannot be handled as a ${type.kind}: ${why}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw cannot(`json parse error: ${(err as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw cannot('the body is not a JSON object');
  const obj = body as JsonObject;
  if (obj['apiVersion'] !== undefined && obj['apiVersion'] !== type.apiVersion) {
    throw badRequest(`the API version in the data (${asText(obj['apiVersion'])}) does not match the expected API version (${type.apiVersion})`);
  }
  if (obj['kind'] !== undefined && obj['kind'] !== type.kind) {
    throw badRequest(`the kind in the data (${asText(obj['kind'])}) does not match the expected kind (${type.kind})`);
  }
  const meta = obj['metadata'];
  if (meta !== undefined && (typeof meta !== 'object' || meta === null || Array.isArray(meta))) throw cannot('metadata is not an object');
  if (type.resource === 'configmaps') {
    for (const [field, check] of [
      ['data', (v: unknown) => typeof v === 'string'],
      ['binaryData', (v: unknown) => typeof v === 'string' && BASE64.test(v)],
    ] as const) {
      const map = obj[field];
      if (map === undefined || map === null) continue;
      if (typeof map !== 'object' || Array.isArray(map)) throw cannot(`json: cannot unmarshal into Go struct field ConfigMap.${field} of type map[string]`);
      for (const [k, v] of Object.entries(map)) if (!check(v)) throw cannot(`${field}[${k}]: ${field === 'data' ? 'not a string' : 'illegal base64 data'}`);
    }
  }
  if (type.resource === 'pods') {
    const spec = obj['spec'];
    if (spec !== undefined && spec !== null && (typeof spec !== 'object' || Array.isArray(spec)))
      throw cannot('json: cannot unmarshal into Go struct field Pod.spec of type v1.PodSpec');
    const containers = (spec as JsonObject | undefined)?.['containers'];
    if (containers !== undefined && containers !== null && !Array.isArray(containers)) {
      throw cannot('json: cannot unmarshal into Go struct field PodSpec.spec.containers of type []v1.Container');
    }
  }
  if (type.resource === 'leases') {
    const spec = obj['spec'] as JsonObject | undefined;
    for (const field of ['acquireTime', 'renewTime']) {
      const v = spec?.[field];
      if (v !== undefined && v !== null && (typeof v !== 'string' || !MICRO_TIME.test(v))) {
        throw cannot(
          `parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${JSON.stringify(asText(v).slice(19))} as ".000000"`,
        );
      }
    }
  }
  return obj;
}

/** Validation the apiserver answers with 422 Invalid. */
function validateObject(type: ResourceType, obj: JsonObject, name: string): void {
  const causes: Array<{ reason: string; message: string; field: string }> = [];
  const invalid = (field: string, value: string, why: string): void => {
    causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${why}`, field });
  };
  if (name === '') {
    causes.push({ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' });
  } else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    invalid(
      'metadata.name',
      name,
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
  }
  if (type.resource === 'configmaps') {
    const data = (obj['data'] ?? {}) as Record<string, string>;
    const binary = (obj['binaryData'] ?? {}) as Record<string, string>;
    let size = 0;
    for (const [field, map, bytes] of [
      ['data', data, (v: string) => Buffer.byteLength(v)],
      ['binaryData', binary, (v: string) => Buffer.from(v, 'base64').length],
    ] as const) {
      for (const [k, v] of Object.entries(map)) {
        size += k.length + bytes(v);
        if (!CONFIG_KEY.test(k)) {
          invalid(
            `${field}[${k}]`,
            k,
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
          );
        }
      }
    }
    for (const k of Object.keys(binary)) if (Object.hasOwn(data, k)) invalid(`data[${k}]`, k, 'duplicate of key present in binaryData');
    if (size > MAX_CONFIGMAP_BYTES)
      causes.push({ reason: 'FieldValueTooLong', message: `Too long: must have at most ${MAX_CONFIGMAP_BYTES} bytes`, field: '[]' });
  }
  if (type.resource === 'pods') {
    const containers = ((obj['spec'] as JsonObject | undefined)?.['containers'] ?? []) as unknown[];
    if (containers.length === 0) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.containers' });
    for (const [i, c] of containers.entries()) {
      const container = (typeof c === 'object' && c !== null ? c : {}) as JsonObject;
      for (const field of ['name', 'image']) {
        if (typeof container[field] !== 'string' || container[field] === '') {
          causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: `spec.containers[${i}].${field}` });
        }
      }
    }
  }
  if (causes.length > 0) {
    const message = `${type.kind} ${JSON.stringify(name)} is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`;
    throw new ApiError(statusBody(422, 'Invalid', message, { name, ...(type.group ? { group: type.group } : {}), kind: type.kind, causes }));
  }
}

/** What the apiserver stores of a pod created over HTTP: its status is the server's (Pending), never the client's. */
function podForCreate(body: JsonObject): JsonObject {
  return { ...body, status: { phase: 'Pending' } };
}

const POD_UPDATE_FORBIDDEN =
  'Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

/**
 * A PUT on a pod as the apiserver's pod strategy takes it: the status is kept (it changes through
 * pods/status, which the fake does not serve), and the spec may change only in its container images
 * (stricter than the apiserver, which also lets a few scheduling fields change).
 */
function podForUpdate(prev: StoredObject, body: JsonObject, name: string): JsonObject {
  const imageless = (spec: unknown): unknown => {
    if (typeof spec !== 'object' || spec === null) return spec;
    const s = spec as JsonObject;
    const containers = Array.isArray(s['containers']) ? (s['containers'] as JsonObject[]).map((c) => ({ ...c, image: undefined })) : s['containers'];
    return JSON.parse(JSON.stringify({ ...s, containers })) as unknown;
  };
  if (!jsonEqual(imageless(prev['spec']), imageless(body['spec']))) {
    const causes = [{ reason: 'FieldValueForbidden', message: POD_UPDATE_FORBIDDEN, field: 'spec' }];
    throw new ApiError(statusBody(422, 'Invalid', `Pod ${JSON.stringify(name)} is invalid: spec: ${POD_UPDATE_FORBIDDEN}`, { name, kind: 'Pod', causes }));
  }
  const next: JsonObject = { ...body };
  if (prev['status'] === undefined) delete next['status'];
  else next['status'] = prev['status'];
  return next;
}

/** DeleteOptions.preconditions from a DELETE body (empty: none). */
function preconditions(text: string): Preconditions {
  if (text.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw badRequest(`DeleteOptions in version "v1" cannot be handled as a DeleteOptions: json parse error: ${(err as Error).message}`);
  }
  const pre = typeof body === 'object' && body !== null ? (body as JsonObject)['preconditions'] : undefined;
  if (typeof pre !== 'object' || pre === null) return {};
  const { uid, resourceVersion } = pre as JsonObject;
  return { ...(typeof uid === 'string' ? { uid } : {}), ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}) };
}

function isJson(req: IncomingMessage): boolean {
  // No Content-Type is taken as JSON, the apiserver's first supported media type.
  const ct = req.headers['content-type'];
  return ct === undefined || ct.split(';')[0]?.trim().toLowerCase() === 'application/json';
}

// ---------------------------------------------------------------- load accounting

interface OpenMeter {
  socket: Socket;
  base: number;
  key: Omit<LoadRow, 'requests' | 'bytes'>;
  row: LoadRow;
}

/** Requests and socket bytes per (user, resource, kind); a response's bytes are its socket's bytesWritten delta. */
class LoadMeter {
  private rows = new Map<string, LoadRow>();
  private readonly open = new Set<OpenMeter>();

  /** Counts a request; its bytes are taken from the socket until the response closes. */
  begin(socket: Socket, res: ServerResponse, key: OpenMeter['key']): void {
    // HTTP/1.1 answers one request at a time per connection, so the delta is this response's alone.
    const m: OpenMeter = { socket, base: socket.bytesWritten, key, row: this.row(key) };
    m.row.requests++;
    this.open.add(m);
    res.once('close', () => {
      m.row.bytes += socket.bytesWritten - m.base;
      this.open.delete(m);
    });
  }

  snapshot(): LoadSnapshot {
    const live = new Map<LoadRow, number>();
    for (const m of this.open) live.set(m.row, (live.get(m.row) ?? 0) + m.socket.bytesWritten - m.base);
    const rows = [...this.rows.values()].map((r) => ({ ...r, bytes: r.bytes + (live.get(r) ?? 0) }));
    const total = { requests: 0, bytes: 0 };
    const byUser: Record<string, LoadCount> = {};
    const byResource: Record<string, LoadCount> = {};
    const byKind: Record<string, LoadCount> = {};
    for (const r of rows) {
      for (const [into, k] of [
        [byUser, r.user],
        [byResource, r.resource],
        [byKind, r.kind],
      ] as const) {
        const c = (into[k] ??= { requests: 0, bytes: 0 });
        c.requests += r.requests;
        c.bytes += r.bytes;
      }
      total.requests += r.requests;
      total.bytes += r.bytes;
    }
    return { total, rows, byUser, byResource, byKind };
  }

  /** Starts counting from zero; open responses go on counting only what they send from now on. */
  reset(): void {
    this.rows = new Map();
    for (const m of this.open) {
      m.base = m.socket.bytesWritten;
      m.row = this.row(m.key);
    }
  }

  private row(key: OpenMeter['key']): LoadRow {
    const id = `${key.user}\0${key.resource}\0${key.kind}`;
    let r = this.rows.get(id);
    if (!r) this.rows.set(id, (r = { ...key, requests: 0, bytes: 0 }));
    return r;
  }
}

// ---------------------------------------------------------------- the handler

interface Held {
  res: ServerResponse;
  resume: () => void;
}

/** Fixed at start. */
export interface HandlerOptions {
  /** Gzip large non-watch responses for clients that accept it, as the apiserver does. */
  compress: boolean;
}

/** Serves the apiserver's HTTP API from a Store, with the fault switches and accounting. */
export class ApiHandler {
  /** Every request received, in arrival order. */
  readonly requests: RequestRecord[] = [];
  readonly counts: Record<RequestKind, number> = { list: 0, watch: 0, get: 0, create: 0, update: 0, delete: 0, other: 0 };
  /** Bearer token -> user. */
  readonly tokens = new Map<string, string>();
  authMode: AuthMode = 'ok';
  private fail: (FailSpec & { only: RequestFilter }) | undefined;
  private readonly hangs: RequestFilter[] = [];
  private readonly held = new Set<Held>();
  private readonly permissions = new Map<string, readonly Permission[]>();
  private readonly load = new LoadMeter();
  private readonly priorityUids = { flowSchema: randomUUID(), priorityLevel: randomUUID() };

  constructor(
    private readonly store: Store,
    private readonly opts: HandlerOptions,
  ) {}

  /** The next `count` API requests matching `only` fail with `status`; replaces any pending failure. */
  failNext(spec: FailSpec): void {
    this.fail = spec.count > 0 ? { ...spec, only: spec.only ?? {} } : undefined;
  }

  /** From now on, API requests matching `only` are accepted and never answered, until `clearHangs`. */
  hang(only: RequestFilter): void {
    this.hangs.push(only);
  }

  /** Stops hanging; requests held so far (whose client is still there) are served now. Returns how many. */
  clearHangs(): number {
    this.hangs.length = 0;
    const held = [...this.held];
    this.held.clear();
    for (const h of held) h.resume();
    return held.length;
  }

  /** Requests held by a hang whose connection is still open. */
  get heldRequests(): number {
    return this.held.size;
  }

  /** Restricts `user` to `permissions` (undefined: everything allowed again, the default). */
  setPermissions(user: string, permissions: readonly Permission[] | undefined): void {
    if (permissions) this.permissions.set(user, [...permissions]);
    else this.permissions.delete(user);
  }

  loadSnapshot(): LoadSnapshot {
    return this.load.snapshot();
  }

  resetLoad(): void {
    this.load.reset();
  }

  resetStats(): void {
    this.requests.length = 0;
    for (const k of Object.keys(this.counts) as RequestKind[]) this.counts[k] = 0;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    res.on('error', () => {
      // Client went away mid-write; the 'close' handlers do the cleanup.
    });
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim();
    const user = bearer !== undefined ? this.tokens.get(bearer) : undefined;
    const r: Route = NON_RESOURCE.has(url.pathname) ? { kind: 'other', verb: 'get' } : route(method, url.pathname, url.searchParams);
    const rec: RequestRecord = {
      kind: r.kind,
      resource: r.type?.resource ?? 'other',
      ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
      ...(r.name !== undefined ? { name: r.name } : {}),
      method,
      path: url.pathname,
      search: url.search,
      query: Object.fromEntries(url.searchParams),
      status: 0,
      ...(user !== undefined ? { user } : {}),
      at: Date.now(),
    };
    this.requests.push(rec);
    this.counts[rec.kind]++;
    this.load.begin(req.socket, res, { user: user ?? ANONYMOUS, resource: rec.resource, kind: rec.kind });
    const reply = this.reply(req, res, rec);

    if (NON_RESOURCE.has(url.pathname)) {
      if (url.pathname === '/version') reply.json(200, { major: '1', minor: '31', gitVersion: 'v1.31.0-fake', platform: 'linux/amd64' });
      else {
        rec.status = 200;
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      }
      return;
    }
    const run = (): void => {
      this.serve(req, res, rec, r, url.searchParams, reply).catch((err: unknown) => this.sendError(reply, err));
    };
    if (this.hangs.some((f) => matchesFilter(f, rec))) {
      const h: Held = { res, resume: run };
      this.held.add(h);
      // A client that gives up closes the connection: forget the request, never serve it.
      res.once('close', () => this.held.delete(h));
      return;
    }
    run();
  }

  private async serve(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, r: Route, params: URLSearchParams, reply: Reply): Promise<void> {
    if (res.destroyed) return;
    if (this.fail && matchesFilter(this.fail.only, rec)) {
      const { status } = this.fail;
      if (--this.fail.count <= 0) this.fail = undefined;
      reply.json(status, failureStatus(status));
      return;
    }
    const user = rec.user;
    if (this.authMode === 401 || user === undefined) throw new ApiError(statusBody(401, 'Unauthorized', 'Unauthorized'));
    if (this.authMode === 403 || !this.authorized(user, r)) throw forbidden(user, r, rec.path);
    const { type } = r;
    if (!type) throw new ApiError(statusBody(404, 'NotFound', 'the server could not find the requested resource'));
    if (r.kind === 'other') throw new ApiError(statusBody(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));

    const ns = r.namespace;
    switch (r.kind) {
      case 'get': {
        // resourceVersion=0: any version will do, and kube-apiserver serves it from its watch cache.
        const cached = params.get('resourceVersion') === '0';
        reply.json(200, withTypeMeta(type, cached ? this.store.requireLagging(type, ns, r.name ?? '') : this.store.require(type, ns, r.name ?? '')));
        return;
      }
      case 'list':
        this.store.list(type, ns, params, reply);
        return;
      case 'watch':
        this.store.watch(type, ns, params, reply);
        return;
      default:
        break;
    }
    if (!isJson(req)) {
      req.resume();
      throw new ApiError(
        statusBody(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json`),
      );
    }
    const text = await readBody(req);
    if (res.destroyed) return;
    if (r.kind === 'delete') {
      const gone = this.store.remove(type, ns, r.name ?? '', preconditions(text));
      reply.json(200, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        details: { ...objectDetails(type, gone.metadata.name), uid: gone.metadata.uid },
      });
      return;
    }
    const obj = decodeObject(type, text);
    const meta = (obj['metadata'] ?? {}) as JsonObject;
    const given = typeof meta['name'] === 'string' ? meta['name'] : '';
    if (meta['namespace'] !== undefined && meta['namespace'] !== ns) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const body = { ...obj, metadata: { ...meta, ...(ns !== undefined ? { namespace: ns } : {}) } };
    if (r.kind === 'create') {
      if (meta['resourceVersion'] !== undefined && meta['resourceVersion'] !== '')
        throw badRequest('resourceVersion should not be set on objects to be created');
      validateObject(type, obj, given);
      reply.json(201, withTypeMeta(type, this.store.create(type, ns, type.resource === 'pods' ? podForCreate(body) : body, 'request')));
      return;
    }
    if (given !== r.name) throw badRequest(`the name of the object (${given}) does not match the name on the URL (${r.name ?? ''})`);
    validateObject(type, obj, given);
    const next = type.resource === 'pods' ? podForUpdate(this.store.require(type, ns, given), body, given) : body;
    reply.json(200, withTypeMeta(type, this.store.update(type, ns, given, next)));
  }

  private authorized(user: string, r: Route): boolean {
    const perms = this.permissions.get(user);
    if (!perms || !r.type) return true;
    const { type } = r;
    return perms.some(
      (p) =>
        (p.verb === '*' || p.verb === r.verb) &&
        (p.resource === '*' || p.resource === type.resource) &&
        (p.namespace === undefined || p.namespace === r.namespace) &&
        (p.name === undefined || p.name === r.name),
    );
  }

  private sendError(reply: Reply, err: unknown): void {
    if (err instanceof ApiError) reply.json(err.status.code, err.status);
    else reply.json(500, statusBody(500, 'InternalError', `Internal error occurred: ${String(err)}`));
  }

  private headers(): Record<string, string> {
    return {
      'Audit-Id': randomUUID(),
      'Cache-Control': 'no-cache, private',
      'Content-Type': 'application/json',
      'X-Kubernetes-Pf-Flowschema-Uid': this.priorityUids.flowSchema,
      'X-Kubernetes-Pf-Prioritylevel-Uid': this.priorityUids.priorityLevel,
    };
  }

  private reply(req: IncomingMessage, res: ServerResponse, rec: RequestRecord): Reply {
    return {
      json: (code, body) => {
        if (res.headersSent || res.destroyed) return;
        const text = JSON.stringify(body);
        const headers = this.headers();
        if (code === 429) headers['Retry-After'] = '1';
        let payload: string | Buffer = text;
        if (this.opts.compress && text.length > GZIP_THRESHOLD_BYTES && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
          // Level 1, as the apiserver compresses.
          payload = gzipSync(text, { level: 1 });
          headers['Content-Encoding'] = 'gzip';
        }
        headers['Content-Length'] = String(Buffer.byteLength(payload));
        rec.status = code;
        res.writeHead(code, headers);
        res.end(payload);
      },
      stream: (): WatchStream => {
        rec.status = 200;
        res.writeHead(200, this.headers());
        res.flushHeaders();
        const open = (): boolean => !res.destroyed && !res.writableEnded;
        return {
          write: (text) => {
            if (open()) res.write(text);
          },
          end: (text) => {
            if (open()) res.end(text);
          },
          cut: () => res.socket?.destroy(),
          onClose: (fn) => res.once('close', fn),
        };
      },
    };
  }
}

/** The apiserver's 403, naming the user, verb, resource, API group and scope. */
function forbidden(user: string, r: Route, path: string): ApiError {
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
