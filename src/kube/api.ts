/** JSON requests of our own to the API server (the informers' are client-node's): bounded, with errors that carry the status. */
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeClient, KubeResponse } from './client.js';

/** The API server answered with an error status; `code` is the HTTP status, as in client-node's ApiException. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** The HTTP status of an error from our requests (`code`) or from client-node's Watch (`statusCode`). */
export function statusCodeOf(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown } | undefined;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return typeof e?.code === 'number' ? e.code : undefined;
}

/** The message of a Kubernetes Status body, or the start of whatever else came. */
export function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown } | null;
    if (typeof status?.message === 'string') return status.message.slice(0, 300);
  } catch {
    // Not a Status: a proxy's page, say.
  }
  return body.slice(0, 120).replace(/\s+/g, ' ') || '(empty body)';
}

/** A page of a list (GET /api/v1/nodes, say), as the API server sends it. */
export interface ListPage<T> {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items: T[];
}

/** GET of one collection (nodes, or the agent pods by label), one page at a time, each request bounded by `timeoutMs`. */
export class PagedLister<T> {
  constructor(
    private readonly client: KubeClient,
    private readonly kubeConfig: KubeConfig,
    private readonly timeoutMs: number,
    private readonly collection: string,
    private readonly labelSelector?: string,
  ) {}

  async list(page: { limit: number; continueToken?: string | undefined }): Promise<ListPage<T>> {
    const query = new URLSearchParams({ limit: String(page.limit) });
    if (this.labelSelector !== undefined) query.set('labelSelector', this.labelSelector);
    if (page.continueToken !== undefined) query.set('continue', page.continueToken);
    const response = await this.client.send(this.kubeConfig, { method: 'GET', path: `${this.collection}?${query.toString()}`, timeoutMs: this.timeoutMs });
    if (response.status !== 200) throw new KubeApiError(response.status, statusMessage(response.body));
    const list = JSON.parse(response.body) as ListPage<T>;
    if (!Array.isArray(list?.items)) throw new Error(`the API server answered the list of ${this.collection} with no items array`);
    return list;
  }
}

/** Paths of the namespaced objects mentat reads and writes. */
export const NODES = '/api/v1/nodes';
export const LEASES = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases`;
export const CONFIG_MAPS = (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/configmaps`;
export const PODS = (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`;

/** Object metadata as mentat reads and writes it. */
export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly [field: string]: unknown;
}

/** GET, create and replace of objects under one collection path, each bounded by `timeoutMs`. */
export class ObjectClient {
  constructor(
    private readonly client: KubeClient,
    private readonly kubeConfig: KubeConfig,
    private readonly timeoutMs: number,
  ) {}

  /**
   * The object, or undefined when there is none (404). `fromCache`: any recent version will do
   * (resourceVersion=0), which kube-apiserver serves from its watch cache instead of a quorum read
   * of etcd; it may be a version behind.
   */
  async get<T extends KubeObject>(collection: string, name: string, fromCache = false): Promise<T | undefined> {
    const path = `${collection}/${encodeURIComponent(name)}${fromCache ? '?resourceVersion=0' : ''}`;
    const response = await this.client.send(this.kubeConfig, { method: 'GET', path, timeoutMs: this.timeoutMs });
    if (response.status === 404) return undefined;
    return this.parse<T>(response);
  }

  /** The collection, optionally narrowed by a field selector such as metadata.name=x. */
  async list<T extends KubeObject>(collection: string, fieldSelector?: string): Promise<ObjectList<T>> {
    const query = fieldSelector ? `?fieldSelector=${encodeURIComponent(fieldSelector)}` : '';
    const list = this.parse<ObjectList<T>>(
      await this.client.send(this.kubeConfig, { method: 'GET', path: `${collection}${query}`, timeoutMs: this.timeoutMs }),
    );
    if (!Array.isArray(list?.items)) throw new Error(`the API server answered the list of ${collection} with no items array`);
    return list;
  }

  async create<T extends KubeObject>(collection: string, object: T): Promise<T> {
    return this.parse<T>(await this.client.send(this.kubeConfig, { method: 'POST', path: collection, body: object, timeoutMs: this.timeoutMs }));
  }

  /** Replaces the object; with metadata.resourceVersion set, only if nobody changed it since (409 otherwise). */
  async replace<T extends KubeObject>(collection: string, object: T): Promise<T> {
    const path = `${collection}/${encodeURIComponent(object.metadata.name)}`;
    return this.parse<T>(await this.client.send(this.kubeConfig, { method: 'PUT', path, body: object, timeoutMs: this.timeoutMs }));
  }

  private parse<T>(response: KubeResponse): T {
    if (response.status < 200 || response.status > 299) throw new KubeApiError(response.status, statusMessage(response.body));
    return JSON.parse(response.body) as T;
  }
}

/** A list response: what ListWatch needs of it. */
export interface ObjectList<T> {
  readonly metadata?: { readonly resourceVersion?: string };
  readonly items: T[];
}
