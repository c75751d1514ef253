/** JSON requests of our own to the API server (the informers' are client-node's): bounded, with errors that carry the status. */
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import type { KubeClient } from './client.js';

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

/** A page of GET /api/v1/nodes, as the API server sends it. */
export interface NodeListPage {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items: V1Node[];
}

/** GET /api/v1/nodes, one page at a time, each request bounded by `timeoutMs`. */
export class NodeLister {
  constructor(
    private readonly client: KubeClient,
    private readonly kubeConfig: KubeConfig,
    private readonly timeoutMs: number,
  ) {}

  async list(page: { limit: number; continueToken?: string | undefined }): Promise<NodeListPage> {
    const query = new URLSearchParams({ limit: String(page.limit) });
    if (page.continueToken !== undefined) query.set('continue', page.continueToken);
    const response = await this.client.send(this.kubeConfig, { method: 'GET', path: `/api/v1/nodes?${query}`, timeoutMs: this.timeoutMs });
    if (response.status !== 200) throw new KubeApiError(response.status, statusMessage(response.body));
    const list = JSON.parse(response.body) as NodeListPage;
    if (!Array.isArray(list?.items)) throw new Error('the API server answered the node list with no items array');
    return list;
  }
}
