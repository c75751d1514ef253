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
 * Layout: store.ts (objects, history, lists, watches) <- http.ts (routing, auth,
 * bodies, faults, accounting) <- this file (the server and the test-side API) <- heartbeats.ts.
 *
 * Deliberately not implemented: protobuf and YAML bodies, PATCH, deletecollection, subresources,
 * generateName, namespaces as objects (every namespace exists), managedFields, sendInitialEvents,
 * pods/status and graceful pod deletion over HTTP (a DELETE removes a pod at once; `terminatePod`
 * stands in for the kubelet's graceful end: deletionTimestamp first, then the DELETE)
 * and resourceVersionMatch (lists are always served from the latest state, which satisfies both
 * "Any" and "NotOlderThan").
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiHandler,
  type AuthMode,
  type FailSpec,
  type LoadSnapshot,
  type Permission,
  type RequestFilter,
  type RequestKind,
  type RequestRecord,
} from './http.js';
import {
  eventLine,
  RESOURCES,
  statusBody,
  Store,
  type ExpiredWatchMode,
  type JsonObject,
  type Labels,
  type ResourceName,
  type ResourceType,
  type StoredNode,
  type StoredObject,
  type StoredPod,
} from './store.js';
import { listenLocal } from '../support/listen.js';

export { ANONYMOUS, sumLoad } from './http.js';
export type {
  AuthMode,
  FailSpec,
  LoadCount,
  LoadRow,
  LoadSnapshot,
  Permission,
  RequestFilter,
  RequestKind,
  RequestRecord,
  RequestResource,
  Verb,
} from './http.js';
export { parseFieldSelector, parseLabelSelector, RESOURCES, statusBody } from './store.js';
export type {
  ExpiredWatchMode,
  Labels,
  NodeAddress,
  ObjectMeta,
  ResourceName,
  StatusBody,
  StoredNode,
  StoredObject,
  StoredPod,
  WatchEventType,
} from './store.js';

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
    deletionTimestamp?: string | Date;
    finalizers?: string[];
    labels?: Labels;
    annotations?: Labels;
  };
  spec?: object;
  status?: object;
}

/** Object metadata a test may give; the server fills in the rest. */
export interface InputMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string | Date;
  labels?: Labels;
  annotations?: Labels;
}

/** What `putObject` accepts: any object with a metadata.name, a plain one or a client-node model. */
export interface ObjectInput {
  apiVersion?: string;
  kind?: string;
  metadata?: InputMeta;
}

/** Fixed at start; every field has a default. */
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
  /** Gzip non-watch responses over 128 KiB to clients that accept gzip, as the apiserver does; default off. */
  compressResponses?: boolean;
  /** Address to listen on: 127.0.0.1 by default; a namespace's own address serves agents in other namespaces. */
  host?: string;
}

const DEFAULT_USER = 'system:serviceaccount:monitoring:mentat';

/** Poll `predicate` until true; rejects after `timeoutMs`. Use instead of fixed sleeps in tests. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
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
    names: [
      `registry.example.com/team-${i % 7}/service-${i}@sha256:${(index * 40 + i).toString(16).padStart(64, '0')}`,
      `registry.example.com/team-${i % 7}/service-${i}:v1.${i}.${index % 10}`,
    ],
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

/** What `makePod` builds a pod from; an agent pod has the DaemonSet's pod template labels (test/deploy/render.ts `agentPodLabels`). */
export interface PodInput {
  name: string;
  labels?: Labels;
  /** spec.nodeName: the node the pod is bound to (absent: not yet scheduled). */
  nodeName?: string;
  /** status.podIPs in order; status.podIP is the first, as the kubelet reports them. */
  podIPs?: readonly string[];
  /** status.phase, Running by default. */
  phase?: string;
  hostNetwork?: boolean;
  creationTimestamp?: string;
}

/** A pod as the kubelet leaves it once running: one container, the node it is bound to, its IPs. */
export function makePod(input: PodInput): ObjectInput & { spec: object; status: object } {
  const ips = input.podIPs ?? [];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: input.name,
      ...(input.labels ? { labels: input.labels } : {}),
      ...(input.creationTimestamp ? { creationTimestamp: input.creationTimestamp } : {}),
    },
    spec: {
      containers: [{ name: 'mentat', image: 'mentat:test' }],
      ...(input.nodeName !== undefined ? { nodeName: input.nodeName } : {}),
      ...(input.hostNetwork ? { hostNetwork: true } : {}),
      restartPolicy: 'Always',
      schedulerName: 'default-scheduler',
      serviceAccountName: 'mentat',
    },
    status: {
      phase: input.phase ?? 'Running',
      ...(ips.length > 0 ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
    },
  };
}

/** The server, and the test-side API to change its state and faults. */
export class FakeApiServer {
  /** `http://127.0.0.1:PORT`; stable across `setDown(true/false)`. */
  readonly url: string;
  readonly port: number;

  private readonly server: Server;
  private readonly host: string;
  private readonly sockets = new Set<Socket>();
  private readonly store: Store;
  private readonly http: ApiHandler;
  private readonly defaultToken: string;
  private readonly defaultUser: string;
  private down = false;
  private stopped = false;
  private kubeconfigSeq = 0;

  private constructor(server: Server, port: number, opts: FakeApiServerOptions) {
    this.server = server;
    this.port = port;
    this.host = opts.host ?? '127.0.0.1';
    this.url = `http://${this.host}:${port}`;
    this.store = new Store({
      maxHistory: opts.maxHistory ?? 100_000,
      initialResourceVersion: opts.initialResourceVersion ?? 1000,
      expiredWatchMode: opts.expiredWatchMode ?? 'event',
    });
    this.http = new ApiHandler(this.store, { compress: opts.compressResponses ?? false });
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
    this.store.expiredWatchMode = mode;
  }

  /**
   * Server-side timeout applied to watches that do not send timeoutSeconds (the real
   * apiserver ends them after min-request-timeout, 30-60 min). undefined = never.
   */
  setDefaultWatchTimeout(ms: number | undefined): void {
    this.store.defaultWatchTimeoutMs = ms;
  }

  /** Lists ignore `limit` and come in one page, as when the apiserver serves them from its watch cache. */
  setIgnoreLimit(on: boolean): void {
    this.store.ignoreLimit = on;
  }

  /** Abruptly destroy open watch sockets (of one resource, or all) mid-stream (no terminating chunk). */
  cutWatches(resource?: ResourceName): number {
    return this.store.dropWatches('cut', resource);
  }

  /** Cleanly end open watch streams (what a server-side timeout looks like). */
  closeWatches(resource?: ResourceName): number {
    return this.store.dropWatches('end', resource);
  }

  /** Send an ERROR event carrying a Status to open watches, then end them cleanly. */
  errorWatches(code: number, reason: string, message: string, resource?: ResourceName): number {
    return this.store.dropWatches('end', resource, eventLine('ERROR', statusBody(code, reason, message)));
  }

  /** Write raw text to open watches, e.g. half an event line before `cutWatches`. */
  writeToWatches(text: string, resource?: ResourceName): number {
    return this.store.writeToWatches(text, resource);
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
    return this.store.watchCount();
  }

  openWatchesOf(resource: ResourceName): number {
    return this.store.watchCount(resource);
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

  private typeFor(resource: ResourceName, namespace: string | undefined): ResourceType {
    const type = RESOURCES[resource];
    if (type.namespaced !== (namespace !== undefined)) {
      throw new Error(`${resource} ${type.namespaced ? 'need a namespace' : 'are cluster-scoped: pass no namespace'}`);
    }
    return type;
  }

  private trackSocket(s: Socket): void {
    if (this.down) {
      s.destroy();
      return;
    }
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  private async closeListener(): Promise<void> {
    this.store.dropWatches('cut');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections();
    await closed;
  }
}
