/*
 * The parts of @kubernetes/client-node the agent uses, imported by path. The package index, and
 * the CoreV1Api facade, load every generated API class and model of Kubernetes: about 16 MiB of
 * heap and 25 MiB of resident memory before the first node is listed, in a pod with 128 MiB.
 * Listing nodes goes through client-node's generated CoreV1Api request factory and response
 * processor, which is what its CoreV1Api does underneath; auth is the KubeConfig's, as there.
 */
import { ListWatch } from '@kubernetes/client-node/dist/cache.js';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { CoreV1ApiRequestFactory, CoreV1ApiResponseProcessor } from '@kubernetes/client-node/dist/gen/apis/CoreV1Api.js';
import { createConfiguration, type Configuration } from '@kubernetes/client-node/dist/gen/configuration.js';
import type { V1NodeList } from '@kubernetes/client-node/dist/gen/models/V1NodeList.js';
import { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
import { Watch } from '@kubernetes/client-node/dist/watch.js';

export { KubeConfig, ListWatch, Watch };

const USER_AGENT = 'mentat';

/** GET /api/v1/nodes, one page at a time. */
export class NodeLister {
  private readonly configuration: Configuration;
  private readonly requests: CoreV1ApiRequestFactory;
  private readonly responses = new CoreV1ApiResponseProcessor();

  constructor(kubeConfig: KubeConfig) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the Kubernetes configuration has no current cluster: set current-context');
    this.configuration = createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: kubeConfig } });
    this.requests = new CoreV1ApiRequestFactory(this.configuration);
  }

  async list(page: { limit: number; continueToken?: string | undefined }): Promise<V1NodeList> {
    const request = await this.requests.listNode(undefined, undefined, page.continueToken, undefined, undefined, page.limit);
    request.setHeaderParam('User-Agent', USER_AGENT);
    const response = await this.configuration.httpApi.send(request).toPromise();
    return (await this.responses.listNodeWithHttpInfo(response)).data;
  }
}
