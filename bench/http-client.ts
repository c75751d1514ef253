/** Drives bench/ns-http.js, a process inside a namespace that scrapes and loads HTTP endpoints there. */
import { fileURLToPath } from 'node:url';
import { IpcRpc } from '../test/support/ipc-rpc.js';
import type { Cluster } from '../test/support/netns.js';
import type { LoadRequest, LoadResult, NsHttpRequest, ScrapeRequest, ScrapeResult } from './ns-http.js';

export type { LoadResult, Sample, ScrapeResult } from './ns-http.js';

const NS_HTTP_PATH = fileURLToPath(new URL('./ns-http.js', import.meta.url));

type WithoutId<T> = T extends { id: number } ? Omit<T, 'id' | 'op'> : never;

export class NsHttp {
  private constructor(private readonly rpc: IpcRpc<NsHttpRequest>) {}

  static async start(cluster: Cluster, ns: string): Promise<NsHttp> {
    const { rpc } = await IpcRpc.start<NsHttpRequest, unknown>(cluster, ns, ['--max-old-space-size=2048', NS_HTTP_PATH], 'ns-http');
    return new NsHttp(rpc);
  }

  /** A timed GET on a fresh connection; samples of the `keep` metric names come back parsed. */
  scrape(url: string, opts: WithoutId<ScrapeRequest> extends infer O ? Omit<O, 'url'> : never = {}): Promise<ScrapeResult> {
    return this.rpc.call<ScrapeResult>({ op: 'scrape', url, ...opts });
  }

  /** `clients` keep-alive GET loops against `url` for `seconds`. */
  load(url: string, opts: Omit<WithoutId<LoadRequest>, 'url'>): Promise<LoadResult> {
    return this.rpc.call<LoadResult>({ op: 'load', url, ...opts });
  }

  close(): void {
    this.rpc.close();
  }
}
