/**
 * The fake API server itself: listens on plain HTTP (127.0.0.1 by default, a port of its own),
 * writes kubeconfigs with tokens of their own, and carries the test-side switches for auth,
 * failures, hangs, lagging reads and watches that end, break or get bookmarks. The objects and the
 * records of what it served are in state.ts.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { AuthMode, Permission } from './authorization.js';
import type { FailSpec } from './http.js';
import { statusBody, type ResourceName } from './resources.js';
import type { RequestFilter, RequestKind } from './routing.js';
import { FakeApiState, type FakeApiStateOptions } from './state.js';
import { eventLine, type ExpiredWatchMode } from './watch.js';
import { listenLocal } from '../support/listen.js';

/** Fixed at start; every field has a default. */
export interface FakeApiServerOptions extends FakeApiStateOptions {
  /** Default bearer token accepted (and written by `writeKubeconfig`). */
  token?: string;
  /** User name the default token authenticates as; appears in 403 messages. */
  user?: string;
  /** Address to listen on: 127.0.0.1 by default; a namespace's own address serves agents in other namespaces. */
  host?: string;
}

const DEFAULT_USER = 'system:serviceaccount:monitoring:mentat';

/** The server, and the test-side API to change its state and faults. */
export class FakeApiServer extends FakeApiState {
  /** `http://127.0.0.1:PORT`; stable across `setDown(true/false)`. */
  readonly url: string;
  readonly port: number;

  private readonly server: Server;
  private readonly host: string;
  private readonly sockets = new Set<Socket>();
  private readonly defaultToken: string;
  private readonly defaultUser: string;
  private down = false;
  private stopped = false;
  private kubeconfigSeq = 0;

  private constructor(server: Server, port: number, opts: FakeApiServerOptions) {
    super(opts);
    this.server = server;
    this.port = port;
    this.host = opts.host ?? '127.0.0.1';
    this.url = `http://${this.host}:${port}`;
    this.defaultToken = opts.token ?? `fake-token-${randomUUID()}`;
    this.defaultUser = opts.user ?? DEFAULT_USER;
    this.http.tokens.set(this.defaultToken, this.defaultUser);
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    // The handler needs `this`, and the port is only known after listen; bind late.
    let self: FakeApiServer | undefined;
    const server = createServer((req, res) => {
      if (self) self.http.handle(req, res);
      else res.destroy();
    });
    server.keepAliveTimeout = 5000;
    const port = await listenLocal(server, 0, opts.host);
    self = new FakeApiServer(server, port, opts);
    server.on('connection', (s: Socket) => self?.trackSocket(s));
    return self;
  }

  // ---------------------------------------------------------------- kubeconfig / auth

  /**
   * Writes a kubeconfig pointing at this server and registers its token; returns the file path.
   * `user` is the identity the token maps to (in 403 messages, RBAC and load accounting). A `user`
   * without a `token` gets a token of its own, so that each agent can be told apart.
   */
  async writeKubeconfig(dir: string, opts: { user?: string; token?: string } = {}): Promise<string> {
    const token = opts.token ?? (opts.user !== undefined ? `fake-token-${randomUUID()}` : this.defaultToken);
    const user = opts.user ?? (token === this.defaultToken ? this.defaultUser : DEFAULT_USER);
    this.http.tokens.set(token, user);
    // JSON strings are valid YAML double-quoted scalars, so no escaping concerns.
    const q = (s: string): string => JSON.stringify(s);
    const yaml = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${q(this.url)}`,
      // client-node refuses plain http unless TLS verification is (nominally) skipped.
      '    insecure-skip-tls-verify: true',
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      `    user: ${q(user)}`,
      'current-context: fake',
      'users:',
      `- name: ${q(user)}`,
      '  user:',
      `    token: ${q(token)}`,
      '',
    ].join('\n');
    const path = join(dir, `kubeconfig-${this.port}-${++this.kubeconfigSeq}.yaml`);
    await writeFile(path, yaml, { mode: 0o600 });
    return path;
  }

  /** The token accepted by default (e.g. to write an in-cluster style token file). */
  get token(): string {
    return this.defaultToken;
  }

  /** Accept an extra bearer token (e.g. a rotated service-account token). */
  addToken(token: string, user = DEFAULT_USER): void {
    this.http.tokens.set(token, user);
  }

  /** Stop accepting a token: requests bearing it get 401 (simulates token expiry). */
  revokeToken(token: string): void {
    this.http.tokens.delete(token);
  }

  /** 'ok' = validate bearer tokens normally; 401/403 = reject every API request that way. */
  setAuth(mode: AuthMode): void {
    this.http.authMode = mode;
  }

  /**
   * Restricts `user` to `permissions`, like the RBAC rules bound to it; anything else gets the
   * apiserver's 403. undefined lifts the restriction (every user starts unrestricted).
   */
  setPermissions(user: string, permissions: readonly Permission[] | undefined): void {
    this.http.setPermissions(user, permissions);
  }
  // ---------------------------------------------------------------- faults

  /**
   * The next `count` API requests matching `only` fail with `status` and a Status body; replaces any
   * pending failure. The old form `failNext(n, status, kind)` filters on the kind of request only.
   */
  failNext(spec: FailSpec): void;
  failNext(n: number, status?: number, only?: RequestKind): void;
  failNext(a: FailSpec | number, status = 500, only?: RequestKind): void {
    this.http.failNext(typeof a === 'number' ? { count: a, status, ...(only ? { only: { kind: only } } : {}) } : a);
  }

  /**
   * API requests matching `only` (all, if empty) that arrive from now on are accepted and never
   * answered, not even with headers, until `clearHangs`: what a client's request timeout is for.
   */
  hang(only: RequestFilter = {}): void {
    this.http.hang(only);
  }

  /**
   * GETs with resourceVersion=0 are served one write behind from now on, as a lagging watch cache
   * may serve them; `false` serves them current again.
   */
  lagCacheReads(on = true): void {
    this.store.lagCacheReads(on);
  }

  /** Stops hanging; held requests whose client is still waiting are served now. Returns how many. */
  clearHangs(): number {
    return this.http.clearHangs();
  }

  /** Requests held by `hang` whose client has not given up. */
  get heldRequests(): number {
    return this.http.heldRequests;
  }

  setExpiredWatchMode(mode: ExpiredWatchMode): void {
    this.store.watches.expiredWatchMode = mode;
  }

  /**
   * Server-side timeout applied to watches that do not send timeoutSeconds (the real
   * apiserver ends them after min-request-timeout, 30-60 min). undefined = never.
   */
  setDefaultWatchTimeout(ms: number | undefined): void {
    this.store.watches.defaultWatchTimeoutMs = ms;
  }

  /** Lists ignore `limit` and come in one page, as when the apiserver serves them from its watch cache. */
  setIgnoreLimit(on: boolean): void {
    this.store.lists.ignoreLimit = on;
  }

  /** Abruptly destroy open watch sockets (of one resource, or all) mid-stream (no terminating chunk). */
  cutWatches(resource?: ResourceName): number {
    return this.store.watches.dropWatches('cut', resource);
  }

  /** Cleanly end open watch streams (what a server-side timeout looks like). */
  closeWatches(resource?: ResourceName): number {
    return this.store.watches.dropWatches('end', resource);
  }

  /** Send an ERROR event carrying a Status to open watches, then end them cleanly. */
  errorWatches(code: number, reason: string, message: string, resource?: ResourceName): number {
    return this.store.watches.dropWatches('end', resource, eventLine('ERROR', statusBody(code, reason, message)));
  }

  /** Write raw text to open watches, e.g. half an event line before `cutWatches`. */
  writeToWatches(text: string, resource?: ResourceName): number {
    return this.store.watches.writeToWatches(text, resource);
  }

  /**
   * BOOKMARK with the current resourceVersion to watches that sent allowWatchBookmarks=true,
   * or to all open watches with `force` (client-node's informer never asks for bookmarks).
   */
  sendBookmark(opts: { force?: boolean; resource?: ResourceName } = {}): number {
    return this.store.bookmark(opts.force ?? false, opts.resource);
  }

  /**
   * true: stop listening and destroy every connection (clients get ECONNREFUSED/reset).
   * false: listen again on the same port.
   */
  async setDown(down: boolean): Promise<void> {
    if (this.stopped) throw new Error('server stopped');
    if (down === this.down) return;
    this.down = down;
    if (down) await this.closeListener();
    else await listenLocal(this.server, this.port, this.host);
  }

  get isDown(): boolean {
    return this.down;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (!this.down) await this.closeListener();
    this.down = true;
  }

  // ---------------------------------------------------------------- internals

  private trackSocket(s: Socket): void {
    if (this.down) {
      s.destroy();
      return;
    }
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  private async closeListener(): Promise<void> {
    this.store.watches.dropWatches('cut');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections();
    await closed;
  }
}
