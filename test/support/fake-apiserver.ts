/**
 * In-process fake Kubernetes API server for tests: serves `/api/v1/nodes` with the real
 * list/watch protocol (resourceVersions, chunked lists with continue tokens, watch streams
 * with history replay, 410 Expired, bookmarks) over plain HTTP on 127.0.0.1, so the real
 * `@kubernetes/client-node` informer can run against it unmodified.
 *
 * Deliberately not implemented: protobuf, sendInitialEvents, resourceVersionMatch (lists are
 * always served from the latest state, which satisfies both "Any" and "NotOlderThan"), and
 * every resource other than nodes.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { listenLocal } from './listen.js';

export type Labels = Record<string, string>;

export interface NodeAddress {
  type: string;
  address: string;
}

/**
 * What `upsertNode` accepts: a plain object or a client-node `V1Node`. Only `metadata.name`
 * is required; uid/creationTimestamp/resourceVersion are filled in by the server.
 */
export interface NodeInput {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string | Date;
    labels?: Labels;
    annotations?: Labels;
  };
  spec?: object;
  status?: object;
}

/** A node as stored and served: JSON wire form, without TypeMeta (like NodeList items). */
export interface StoredNode {
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    labels?: Labels;
    annotations?: Labels;
    [key: string]: unknown;
  };
  spec?: { unschedulable?: boolean; [key: string]: unknown };
  status?: { addresses?: NodeAddress[]; [key: string]: unknown };
  [key: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
export type RequestKind = 'list' | 'watch' | 'get' | 'other';
export type AuthMode = 'ok' | 401 | 403;
/** How a watch from a compacted resourceVersion is refused. */
export type ExpiredWatchMode = 'event' | 'http';

export interface RequestRecord {
  kind: RequestKind;
  method: string;
  path: string;
  /** Raw query string including the leading `?` (or ''). */
  search: string;
  query: Record<string, string>;
  /** HTTP status sent (0 until the response head is written). */
  status: number;
  /** User the bearer token mapped to, if any. */
  user?: string;
}

export interface FakeApiServerOptions {
  /** Default bearer token accepted (and written by `writeKubeconfig`). */
  token?: string;
  /** User name the default token authenticates as; appears in 403 messages. */
  user?: string;
  /** Watch-expired behaviour; default 'event' (200 + ERROR event, as the real apiserver does). */
  expiredWatchMode?: ExpiredWatchMode;
  /** Events retained for watch replay before the oldest are compacted away. */
  maxHistory?: number;
  /** First resourceVersion minus one; real clusters never start at 0 and "0" means "any". */
  initialResourceVersion?: number;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: { continue?: string };
  status: 'Failure';
  message: string;
  reason: string;
  details?: { name?: string; kind?: string; retryAfterSeconds?: number };
  code: number;
}

type Matcher = (node: StoredNode) => boolean;

interface HistoryEntry {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** Current object; for DELETED the last state stamped with the deletion resourceVersion. */
  obj: StoredNode;
  /** Previous state (MODIFIED/DELETED), needed to translate events for selector-filtered watches. */
  prev?: StoredNode;
  /** Serialized unfiltered event line, computed once and shared by all unfiltered watches. */
  line?: string;
}

interface WatchConn {
  id: number;
  res: ServerResponse;
  bookmarks: boolean;
  matches: Matcher | undefined;
  timer: NodeJS.Timeout | undefined;
  search: string;
}

interface FailSpec {
  remaining: number;
  status: number;
  only: RequestKind | undefined;
}

class BadRequest extends Error {}

const DEFAULT_USER = 'system:serviceaccount:monitoring:mentat';
const MAX_SNAPSHOTS = 32;

/** Poll `predicate` until true; rejects after `timeoutMs`. Use instead of fixed sleeps in tests. */
export async function waitFor(
  predicate: () => boolean,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * A node the size a kubelet reports on a cloud VM (about 10 KB of JSON: labels, annotations, five
 * conditions, 40 cached images, capacity, nodeInfo), for measuring memory during a list.
 */
export function makeRealisticNode(name: string, internalIP: string, index: number): NodeInput {
  const zone = `zone-${index % 3}`;
  const images = Array.from({ length: 40 }, (_, i) => ({
    names: [`registry.example.com/team-${i % 7}/service-${i}@sha256:${(index * 40 + i).toString(16).padStart(64, '0')}`, `registry.example.com/team-${i % 7}/service-${i}:v1.${i}.${index % 10}`],
    sizeBytes: 20_000_000 + i * 1_234_567,
  }));
  const condition = (type: string, status: string, reason: string) => ({
    type,
    status,
    reason,
    message: `kubelet reports ${reason}`,
    lastHeartbeatTime: '2026-11-25T10:00:00Z',
    lastTransitionTime: '2026-11-01T08:00:00Z',
  });
  return {
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'm6i.2xlarge',
        'topology.kubernetes.io/region': 'eu-west-1',
        'topology.kubernetes.io/zone': zone,
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/instance-type': 'm6i.2xlarge',
        'failure-domain.beta.kubernetes.io/region': 'eu-west-1',
        'failure-domain.beta.kubernetes.io/zone': zone,
        'eks.amazonaws.com/nodegroup': `ng-${index % 5}`,
        'eks.amazonaws.com/capacityType': 'ON_DEMAND',
      },
      annotations: {
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
        'alpha.kubernetes.io/provided-node-ip': internalIP,
        'csi.volume.kubernetes.io/nodeid': JSON.stringify({ 'ebs.csi.aws.com': `i-${index.toString(16).padStart(17, '0')}` }),
      },
    },
    spec: { providerID: `aws:///eu-west-1a/i-${index.toString(16).padStart(17, '0')}`, podCIDR: `100.64.${index >> 8}.0/24` },
    status: {
      addresses: [
        { type: 'InternalIP', address: internalIP },
        { type: 'InternalDNS', address: `${name}.eu-west-1.compute.internal` },
        { type: 'Hostname', address: name },
      ],
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID'),
        condition('Ready', 'True', 'KubeletReady'),
        condition('NetworkUnavailable', 'False', 'RouteCreated'),
      ],
      capacity: { cpu: '8', 'ephemeral-storage': '104845292Ki', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '32366572Ki', pods: '58' },
      allocatable: { cpu: '7910m', 'ephemeral-storage': '95551679124', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '31349740Ki', pods: '58' },
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: index.toString(16).padStart(32, '0'),
        systemUUID: `ec2${index.toString(16).padStart(29, '0')}`,
        bootID: `b${index.toString(16).padStart(31, '0')}`,
        kernelVersion: '6.1.112-124.190.amzn2023.x86_64',
        osImage: 'Amazon Linux 2023.6.20241121',
        containerRuntimeVersion: 'containerd://1.7.23',
        kubeletVersion: 'v1.31.2-eks-94953ac',
        kubeProxyVersion: 'v1.31.2-eks-94953ac',
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
      images,
    },
  };
}

/** Convenience builder for a minimal Ready node with one InternalIP. */
export function makeNode(name: string, internalIP: string, labels?: Labels): NodeInput {
  return {
    metadata: { name, ...(labels ? { labels } : {}) },
    status: {
      addresses: [
        { type: 'InternalIP', address: internalIP },
        { type: 'Hostname', address: name },
      ],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}

export function statusBody(code: number, reason: string, message: string, details?: StatusBody['details']): StatusBody {
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

function failureStatus(code: number): StatusBody {
  switch (code) {
    case 410:
      return statusBody(410, 'Expired', 'injected failure: resource version expired');
    case 429:
      return statusBody(429, 'TooManyRequests', 'injected failure: too many requests, please try again later', {
        retryAfterSeconds: 1,
      });
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
      reqs.push(
        op === 'in'
          ? (l) => l[key] !== undefined && values.has(l[key])
          : (l) => l[key] === undefined || !values.has(l[key]),
      );
    } else if ((m = RE_NOT_EXISTS.exec(part))) {
      const key = m[1] ?? '';
      reqs.push((l) => !(key in l));
    } else if ((m = RE_EXISTS.exec(part))) {
      const key = m[1] ?? '';
      reqs.push((l) => key in l);
    } else {
      throw new BadRequest(`unable to parse requirement: ${JSON.stringify(part)}`);
    }
  }
  return (node) => {
    const labels = node.metadata.labels ?? {};
    return reqs.every((r) => r(labels));
  };
}

/** Nodes support exactly these field selectors on a real apiserver. */
export function parseFieldSelector(selector: string): Matcher | undefined {
  if (selector.trim() === '') return undefined;
  const reqs: Matcher[] = [];
  for (const part of selector.split(',').map((p) => p.trim())) {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(part);
    if (!m) throw new BadRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const [, field = '', op, value = ''] = m;
    let get: (n: StoredNode) => string;
    if (field === 'metadata.name') get = (n) => n.metadata.name;
    else if (field === 'spec.unschedulable') get = (n) => String(n.spec?.unschedulable === true);
    else throw new BadRequest(`field label not supported: ${field}`);
    reqs.push(op === '!=' ? (n) => get(n) !== value : (n) => get(n) === value);
  }
  return (node) => reqs.every((r) => r(node));
}

function combine(a: Matcher | undefined, b: Matcher | undefined): Matcher | undefined {
  if (a && b) return (n) => a(n) && b(n);
  return a ?? b;
}

function withTypeMeta(node: StoredNode): Record<string, unknown> {
  return { kind: 'Node', apiVersion: 'v1', ...node };
}

function eventLine(type: WatchEventType, object: unknown): string {
  return `${JSON.stringify({ type, object })}\n`;
}

function encodeContinue(rv: number, start: number): string {
  // Same envelope shape as the apiserver's token (base64 JSON with the snapshot revision).
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; start: number } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'rv' in parsed && 'start' in parsed) {
      const { rv, start } = parsed;
      if (Number.isSafeInteger(rv) && Number.isSafeInteger(start) && (start as number) >= 0) {
        return { rv: rv as number, start: start as number };
      }
    }
  } catch {
    // fall through
  }
  throw new BadRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}

function parseRv(raw: string): number {
  if (!/^\d+$/.test(raw)) throw new BadRequest(`invalid resource version: ${raw}`);
  return Number(raw);
}

function sendJson(
  res: ServerResponse,
  rec: RequestRecord,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  rec.status = status;
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-cache, private',
    ...headers,
  });
  res.end(text);
}

export class FakeApiServer {
  /** `http://127.0.0.1:PORT`; stable across `setDown(true/false)`. */
  readonly url: string;
  readonly port: number;

  /** Every request received, in arrival order. */
  readonly requests: RequestRecord[] = [];
  readonly counts: Record<RequestKind, number> = { list: 0, watch: 0, get: 0, other: 0 };

  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly nodes = new Map<string, StoredNode>();
  private readonly history: HistoryEntry[] = [];
  private readonly watches = new Set<WatchConn>();
  private readonly snapshots = new Map<number, readonly StoredNode[]>();
  private readonly tokens = new Map<string, string>();
  private readonly defaultToken: string;
  private readonly defaultUser: string;
  private readonly maxHistory: number;
  private rv: number;
  /** Watches must start at or after this revision; older ones get 410 Expired. */
  private compactedRv: number;
  private sorted: StoredNode[] | undefined;
  private authMode: AuthMode = 'ok';
  private fail: FailSpec | undefined;
  private expiredMode: ExpiredWatchMode;
  private defaultWatchTimeoutMs: number | undefined;
  private down = false;
  private stopped = false;
  private nextWatchId = 1;
  private kubeconfigSeq = 0;

  private constructor(server: Server, port: number, opts: FakeApiServerOptions) {
    this.server = server;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.defaultToken = opts.token ?? `fake-token-${randomUUID()}`;
    this.defaultUser = opts.user ?? DEFAULT_USER;
    this.tokens.set(this.defaultToken, this.defaultUser);
    this.expiredMode = opts.expiredWatchMode ?? 'event';
    this.maxHistory = opts.maxHistory ?? 100_000;
    this.rv = opts.initialResourceVersion ?? 1000;
    this.compactedRv = this.rv;
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    // The handler needs `this`, and the port is only known after listen; bind late.
    let self: FakeApiServer | undefined;
    const server = createServer((req, res) => {
      if (self) self.handle(req, res);
      else res.destroy();
    });
    server.keepAliveTimeout = 5000;
    const port = await listenLocal(server);
    self = new FakeApiServer(server, port, opts);
    server.on('connection', (s: Socket) => self?.trackSocket(s));
    return self;
  }

  // ---------------------------------------------------------------- kubeconfig / auth

  /**
   * Writes a kubeconfig pointing at this server and registers its token. `user` is the
   * identity the token maps to (shown in 403 messages). Returns the file path.
   */
  async writeKubeconfig(dir: string, opts: { user?: string; token?: string } = {}): Promise<string> {
    const token = opts.token ?? this.defaultToken;
    const user = opts.user ?? (token === this.defaultToken ? this.defaultUser : DEFAULT_USER);
    this.tokens.set(token, user);
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
    this.tokens.set(token, user);
  }

  /** Stop accepting a token: requests bearing it get 401 (simulates token expiry). */
  revokeToken(token: string): void {
    this.tokens.delete(token);
  }

  /** 'ok' = validate bearer tokens normally; 401/403 = reject every API request that way. */
  setAuth(mode: AuthMode): void {
    this.authMode = mode;
  }

  // ---------------------------------------------------------------- store

  get resourceVersion(): string {
    return String(this.rv);
  }

  get nodeCount(): number {
    return this.nodes.size;
  }

  getNode(name: string): StoredNode | undefined {
    return this.nodes.get(name);
  }

  nodeNames(): string[] {
    return this.sortedNodes().map((n) => n.metadata.name);
  }

  /**
   * Create or replace a node; emits ADDED/MODIFIED to open watches. Like the real
   * apiserver, an update that changes nothing is a no-op (no new resourceVersion, no event).
   */
  upsertNode(input: NodeInput): StoredNode {
    const name = input.metadata?.name;
    if (!name) throw new Error('upsertNode: metadata.name is required');
    // JSON round-trip: deep copy and Date -> RFC3339 string, i.e. exactly the wire form.
    const body = JSON.parse(JSON.stringify(input)) as Omit<StoredNode, 'metadata'> & {
      metadata: Partial<StoredNode['metadata']>;
    };
    delete body['kind'];
    delete body['apiVersion'];
    const prev = this.nodes.get(name);
    if (prev) {
      const candidate: StoredNode = {
        ...body,
        metadata: {
          ...body.metadata,
          name,
          uid: prev.metadata.uid,
          creationTimestamp: prev.metadata.creationTimestamp,
          resourceVersion: prev.metadata.resourceVersion,
        },
      };
      if (JSON.stringify(candidate) === JSON.stringify(prev)) return prev;
      candidate.metadata.resourceVersion = String(++this.rv);
      this.commit(name, candidate);
      this.emit({ rv: this.rv, type: 'MODIFIED', obj: candidate, prev });
      return candidate;
    }
    const node: StoredNode = {
      ...body,
      metadata: {
        ...body.metadata,
        name,
        uid: body.metadata.uid ?? randomUUID(),
        creationTimestamp: body.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        resourceVersion: String(++this.rv),
      },
    };
    this.commit(name, node);
    this.emit({ rv: this.rv, type: 'ADDED', obj: node });
    return node;
  }

  upsertNodes(inputs: Iterable<NodeInput>): void {
    for (const n of inputs) this.upsertNode(n);
  }

  /** Delete a node; emits DELETED. Returns false if it did not exist. */
  deleteNode(name: string): boolean {
    const prev = this.nodes.get(name);
    if (!prev) return false;
    this.nodes.delete(name);
    this.sorted = undefined;
    const rv = ++this.rv;
    // The DELETED event carries the final state stamped with the deletion revision.
    const obj: StoredNode = { ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } };
    this.emit({ rv, type: 'DELETED', obj, prev });
    return true;
  }

  /**
   * Forget all event history and list snapshots (like etcd compaction): watches from any
   * resourceVersion older than the current one, and outstanding continue tokens, get 410.
   */
  compactHistory(): void {
    this.history.length = 0;
    this.compactedRv = this.rv;
    this.snapshots.clear();
  }

  // ---------------------------------------------------------------- faults

  /** The next `n` API requests (optionally only of one kind) fail with `status` and a Status body. */
  failNext(n: number, status = 500, only?: RequestKind): void {
    this.fail = n > 0 ? { remaining: n, status, only } : undefined;
  }

  setExpiredWatchMode(mode: ExpiredWatchMode): void {
    this.expiredMode = mode;
  }

  /**
   * Server-side timeout applied to watches that do not send timeoutSeconds (the real
   * apiserver ends them after min-request-timeout, 30-60 min). undefined = never.
   */
  setDefaultWatchTimeout(ms: number | undefined): void {
    this.defaultWatchTimeoutMs = ms;
  }

  /** Abruptly destroy every open watch socket mid-stream (no terminating chunk). */
  cutWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) this.dropWatch(w, 'cut');
    return n;
  }

  /** Cleanly end every open watch stream (what a server-side timeout looks like). */
  closeWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) this.dropWatch(w, 'end');
    return n;
  }

  /** Send an ERROR event carrying a Status to every open watch, then end them cleanly. */
  errorWatches(code: number, reason: string, message: string): number {
    const line = eventLine('ERROR', statusBody(code, reason, message));
    const n = this.watches.size;
    for (const w of [...this.watches]) {
      this.write(w, line);
      this.dropWatch(w, 'end');
    }
    return n;
  }

  /**
   * BOOKMARK with the current resourceVersion to watches that sent allowWatchBookmarks=true,
   * or to all open watches with `force` (client-node's informer never asks for bookmarks).
   */
  sendBookmark(opts: { force?: boolean } = {}): number {
    const line = eventLine('BOOKMARK', { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: this.resourceVersion } });
    let n = 0;
    for (const w of this.watches) {
      if (w.bookmarks || opts.force) {
        this.write(w, line);
        n++;
      }
    }
    return n;
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
    else await this.listenAgain();
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

  // ---------------------------------------------------------------- observability

  get openWatches(): number {
    return this.watches.size;
  }

  /** Query strings of all requests of a kind (e.g. to check which resourceVersion a watch used). */
  queries(kind?: RequestKind): string[] {
    return this.requests.filter((r) => kind === undefined || r.kind === kind).map((r) => r.search);
  }

  resetStats(): void {
    this.requests.length = 0;
    for (const k of Object.keys(this.counts) as RequestKind[]) this.counts[k] = 0;
  }

  waitFor(predicate: (s: this) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    return waitFor(() => predicate(this), timeoutMs, what);
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
    for (const w of [...this.watches]) this.dropWatch(w, 'cut');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections();
    await closed;
  }

  private async listenAgain(): Promise<void> {
    await listenLocal(this.server, this.port);
  }

  private sortedNodes(): StoredNode[] {
    // Cached until the next mutation; the array is never mutated, so it doubles as a list snapshot.
    this.sorted ??= [...this.nodes.values()].sort((a, b) =>
      a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0,
    );
    return this.sorted;
  }

  private commit(name: string, node: StoredNode): void {
    this.nodes.set(name, node);
    this.sorted = undefined;
  }

  private emit(entry: HistoryEntry): void {
    this.history.push(entry);
    if (this.history.length > this.maxHistory) {
      // Trim in chunks so a long test does not pay O(n) per event.
      const drop = this.history.splice(0, Math.max(1, Math.floor(this.maxHistory / 10)));
      this.compactedRv = drop[drop.length - 1]?.rv ?? this.compactedRv;
    }
    for (const w of this.watches) {
      const line = this.convert(entry, w.matches);
      if (line !== undefined) this.write(w, line);
    }
  }

  /** Mirrors the apiserver watch cache's per-watcher event translation for selectors. */
  private convert(e: HistoryEntry, matches: Matcher | undefined): string | undefined {
    if (!matches) return (e.line ??= eventLine(e.type, withTypeMeta(e.obj)));
    const cur = e.type !== 'DELETED' && matches(e.obj);
    const old = e.prev !== undefined && matches(e.prev);
    if (cur && !old) return eventLine('ADDED', withTypeMeta(e.obj));
    if (cur && old) return eventLine('MODIFIED', withTypeMeta(e.obj));
    if (!cur && old && e.prev) {
      // Object left the selector (or was deleted): DELETED with previous content at the event's RV.
      const obj = { ...e.prev, metadata: { ...e.prev.metadata, resourceVersion: String(e.rv) } };
      return eventLine('DELETED', withTypeMeta(obj));
    }
    return undefined;
  }

  private write(w: WatchConn, data: string): void {
    if (!w.res.destroyed && !w.res.writableEnded) w.res.write(data);
  }

  private dropWatch(w: WatchConn, how: 'cut' | 'end'): void {
    this.watches.delete(w);
    if (w.timer) clearTimeout(w.timer);
    if (how === 'end') w.res.end();
    else w.res.socket?.destroy();
  }

  private classify(method: string, path: string, params: URLSearchParams): RequestKind {
    if (method !== 'GET') return 'other';
    if (path === '/api/v1/nodes') {
      const watch = params.get('watch');
      return watch === 'true' || watch === '1' ? 'watch' : 'list';
    }
    if (/^\/api\/v1\/nodes\/[^/]+$/.test(path)) return 'get';
    return 'other';
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.on('error', () => {
      // Client went away mid-write; the 'close' handler does the cleanup.
    });
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const kind = this.classify(method, url.pathname, url.searchParams);
    const rec: RequestRecord = {
      kind,
      method,
      path: url.pathname,
      search: url.search,
      query: Object.fromEntries(url.searchParams),
      status: 0,
    };
    this.requests.push(rec);
    this.counts[kind]++;

    try {
      if (url.pathname === '/version' || url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/livez') {
        if (url.pathname === '/version') {
          sendJson(res, rec, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-fake', platform: 'linux/amd64' });
        } else {
          rec.status = 200;
          res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
        }
        return;
      }

      if (this.fail && (this.fail.only === undefined || this.fail.only === kind)) {
        const { status } = this.fail;
        if (--this.fail.remaining <= 0) this.fail = undefined;
        sendJson(res, rec, status, failureStatus(status), status === 429 ? { 'Retry-After': '1' } : {});
        return;
      }

      const auth = this.authenticate(req, rec);
      if (auth !== undefined) {
        const user = rec.user ?? this.defaultUser;
        if (auth === 401) {
          sendJson(res, rec, 401, statusBody(401, 'Unauthorized', 'Unauthorized'));
        } else {
          const verb = kind === 'watch' ? 'watch' : kind === 'get' ? 'get' : 'list';
          const name = kind === 'get' ? decodeURIComponent(url.pathname.slice('/api/v1/nodes/'.length)) : undefined;
          const subject = name ? `nodes ${JSON.stringify(name)}` : 'nodes';
          sendJson(
            res,
            rec,
            403,
            statusBody(
              403,
              'Forbidden',
              `${subject} is forbidden: User ${JSON.stringify(user)} cannot ${verb} resource "nodes" in API group "" at the cluster scope`,
              name ? { name, kind: 'nodes' } : { kind: 'nodes' },
            ),
          );
        }
        return;
      }

      if (kind === 'other') {
        if (method !== 'GET' && url.pathname.startsWith('/api/v1/nodes')) {
          sendJson(res, rec, 405, statusBody(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`));
        } else {
          sendJson(res, rec, 404, statusBody(404, 'NotFound', 'the server could not find the requested resource'));
        }
        return;
      }

      const matches = combine(
        parseLabelSelector(url.searchParams.get('labelSelector') ?? ''),
        parseFieldSelector(url.searchParams.get('fieldSelector') ?? ''),
      );
      if (kind === 'get') this.serveGet(res, rec, decodeURIComponent(url.pathname.slice('/api/v1/nodes/'.length)));
      else if (kind === 'list') this.serveList(res, rec, url.searchParams, matches);
      else this.serveWatch(res, rec, url.searchParams, matches);
    } catch (err) {
      if (err instanceof BadRequest) sendJson(res, rec, 400, statusBody(400, 'BadRequest', err.message));
      else sendJson(res, rec, 500, statusBody(500, 'InternalError', `Internal error occurred: ${String(err)}`));
    }
  }

  /** undefined = authenticated and authorized. */
  private authenticate(req: IncomingMessage, rec: RequestRecord): 401 | 403 | undefined {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const user = m?.[1] !== undefined ? this.tokens.get(m[1].trim()) : undefined;
    if (user !== undefined) rec.user = user;
    if (this.authMode === 401 || user === undefined) return 401;
    if (this.authMode === 403) return 403;
    return undefined;
  }

  private serveGet(res: ServerResponse, rec: RequestRecord, name: string): void {
    const node = this.nodes.get(name);
    if (node) sendJson(res, rec, 200, withTypeMeta(node));
    else sendJson(res, rec, 404, statusBody(404, 'NotFound', `nodes ${JSON.stringify(name)} not found`, { name, kind: 'nodes' }));
  }

  private serveList(res: ServerResponse, rec: RequestRecord, params: URLSearchParams, matches: Matcher | undefined): void {
    const limitRaw = params.get('limit');
    const limit = limitRaw === null || limitRaw === '' ? 0 : Number(limitRaw);
    if (!Number.isSafeInteger(limit) || limit < 0) throw new BadRequest(`invalid limit: ${limitRaw}`);
    const cont = params.get('continue');

    let snapshotRv: number;
    let items: readonly StoredNode[];
    let start = 0;
    if (cont) {
      const tok = decodeContinue(cont);
      const snap = this.snapshots.get(tok.rv);
      if (!snap || tok.rv < this.compactedRv) {
        sendJson(
          res,
          rec,
          410,
          statusBody(
            410,
            'Expired',
            'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
          ),
        );
        return;
      }
      snapshotRv = tok.rv;
      items = snap;
      start = Math.min(tok.start, snap.length);
    } else {
      snapshotRv = this.rv;
      items = this.sortedNodes();
    }

    const page: StoredNode[] = [];
    let i = start;
    for (; i < items.length && (limit === 0 || page.length < limit); i++) {
      const n = items[i];
      if (n && (!matches || matches(n))) page.push(n);
    }
    const metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number } = {
      resourceVersion: String(snapshotRv),
    };
    if (limit > 0 && i < items.length) {
      // Remember the snapshot so later pages are consistent with this one (like an etcd read at rv).
      if (!this.snapshots.has(snapshotRv)) {
        this.snapshots.set(snapshotRv, items);
        if (this.snapshots.size > MAX_SNAPSHOTS) {
          const oldest = this.snapshots.keys().next().value;
          if (oldest !== undefined) this.snapshots.delete(oldest);
        }
      }
      metadata.continue = encodeContinue(snapshotRv, i);
      if (!matches) metadata.remainingItemCount = items.length - i;
    }
    sendJson(res, rec, 200, { kind: 'NodeList', apiVersion: 'v1', metadata, items: page });
  }

  private serveWatch(res: ServerResponse, rec: RequestRecord, params: URLSearchParams, matches: Matcher | undefined): void {
    const rvRaw = params.get('resourceVersion') ?? '';
    const timeoutRaw = params.get('timeoutSeconds');
    let timeoutMs = this.defaultWatchTimeoutMs;
    if (timeoutRaw !== null && timeoutRaw !== '') {
      if (!/^\d+$/.test(timeoutRaw)) throw new BadRequest(`invalid timeoutSeconds: ${timeoutRaw}`);
      const s = Number(timeoutRaw);
      if (s > 0) timeoutMs = s * 1000;
    }

    let replay: string[];
    if (rvRaw === '' || rvRaw === '0') {
      // Unset/"0": synthetic ADDED for the current state, then live events.
      replay = this.sortedNodes()
        .filter((n) => !matches || matches(n))
        .map((n) => eventLine('ADDED', withTypeMeta(n)));
    } else {
      const from = parseRv(rvRaw);
      if (from < this.compactedRv) {
        const status = statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
        if (this.expiredMode === 'http') {
          sendJson(res, rec, 410, status);
        } else {
          rec.status = 200;
          res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
          res.end(eventLine('ERROR', status));
        }
        return;
      }
      replay = [];
      for (let i = this.firstAfter(from); i < this.history.length; i++) {
        const e = this.history[i];
        const line = e ? this.convert(e, matches) : undefined;
        if (line !== undefined) replay.push(line);
      }
    }

    rec.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const w: WatchConn = {
      id: this.nextWatchId++,
      res,
      bookmarks: params.get('allowWatchBookmarks') === 'true',
      matches,
      timer: undefined,
      search: rec.search,
    };
    // Replay and registration happen in the same tick, so no live event can slip in between.
    if (replay.length > 0) res.write(replay.join(''));
    this.watches.add(w);
    res.on('close', () => {
      this.watches.delete(w);
      if (w.timer) clearTimeout(w.timer);
    });
    if (timeoutMs !== undefined) {
      w.timer = setTimeout(() => this.dropWatch(w, 'end'), timeoutMs);
    }
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
