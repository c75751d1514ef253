/**
 * The fake API server's HTTP side: authenticates bearer tokens, routes the apiserver's URLs for
 * every resource in `RESOURCES` onto the store (routing.ts), authorizes (authorization.ts), reads
 * bodies (bodies.ts), injects failures and hangs, writes JSON replies (gzipped when large, as the
 * apiserver does) and watch streams, and records every request and its load (load.ts).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { authorized, forbidden, type AuthMode, type Permission } from './authorization.js';
import { decodeObject, isJson, podForCreate, podForUpdate, preconditions, readBody, validateObject } from './bodies.js';
import { LoadMeter, type LoadSnapshot } from './load.js';
import { ApiError, badRequest, objectDetails, statusBody, withTypeMeta, type JsonObject, type ResourceType, type StatusBody } from './resources.js';
import { ANONYMOUS, matchesFilter, NON_RESOURCE, route, type RequestFilter, type RequestKind, type RequestRecord, type Route } from './routing.js';
import type { Store } from './store.js';
import type { Reply, WatchStream } from './watch.js';

/** An injected failure: `count` requests matching `only` get `status`. */
export interface FailSpec {
  status: number;
  count: number;
  only?: RequestFilter;
}

/** The apiserver gzips responses larger than this when the client accepts it (APIResponseCompression). */
const GZIP_THRESHOLD_BYTES = 128 * 1024;

/** The Status an injected failure is sent with, worded as the apiserver words each code. */
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
    if (this.authMode === 403 || !authorized(this.permissions.get(user), r)) throw forbidden(user, r, rec.path);
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
        await this.write(req, res, type, r, reply);
    }
  }

  /** A create, update or delete: the body read, decoded and validated, then applied to the store. */
  private async write(req: IncomingMessage, res: ServerResponse, type: ResourceType, r: Route, reply: Reply): Promise<void> {
    if (!isJson(req)) {
      req.resume();
      throw new ApiError(
        statusBody(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json`),
      );
    }
    const text = await readBody(req);
    if (res.destroyed) return;
    const ns = r.namespace;
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
