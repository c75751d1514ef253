/*
 * The parts of @kubernetes/client-node the agent uses, imported by path. The package index, the
 * CoreV1Api facade and its ObjectSerializer load every generated API class and model of
 * Kubernetes: about 24 MiB of heap before the first node is listed, in a pod with 128 MiB.
 * Nodes are listed the way client-node's Watch requests them: a RequestContext signed by the
 * KubeConfig (token, client certificate, CA), sent with client-node's fetch library, and the JSON
 * kept as it came, as watch events are.
 */
import type { V1Node } from '@kubernetes/client-node';
import { ListWatch } from '@kubernetes/client-node/dist/cache.js';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { HttpMethod, RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { IsomorphicFetchHttpLibrary } from '@kubernetes/client-node/dist/gen/http/isomorphic-fetch.js';
import { Watch } from '@kubernetes/client-node/dist/watch.js';

export { KubeConfig, ListWatch, Watch };

const USER_AGENT = 'mentat';

/** A page of GET /api/v1/nodes, as the API server sends it. */
export interface NodeListPage {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items: V1Node[];
}

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

/** GET /api/v1/nodes, one page at a time. */
export class NodeLister {
  private readonly http = new IsomorphicFetchHttpLibrary();
  private readonly url: string;

  constructor(private readonly kubeConfig: KubeConfig) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the Kubernetes configuration has no current cluster: set current-context');
    this.url = `${cluster.server}/api/v1/nodes`;
  }

  async list(page: { limit: number; continueToken?: string | undefined }): Promise<NodeListPage> {
    const request = new RequestContext(this.url, HttpMethod.GET);
    request.setQueryParam('limit', String(page.limit));
    if (page.continueToken !== undefined) request.setQueryParam('continue', page.continueToken);
    request.setHeaderParam('Accept', 'application/json');
    request.setHeaderParam('User-Agent', USER_AGENT);
    await this.kubeConfig.applySecurityAuthentication(request);
    const response = await this.http.send(request).toPromise();
    const text = await response.body.text();
    if (response.httpStatusCode !== 200) throw new KubeApiError(response.httpStatusCode, statusMessage(text));
    const list = JSON.parse(text) as NodeListPage;
    if (!Array.isArray(list?.items)) throw new Error('the API server answered the node list with no items array');
    return list;
  }
}

/** The message of a Kubernetes Status body, or the start of whatever else came. */
function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status?.message === 'string') return status.message.slice(0, 300);
  } catch {
    // Not a Status: a proxy's page, say.
  }
  return body.slice(0, 120).replace(/\s+/g, ' ') || '(empty body)';
}
