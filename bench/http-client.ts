/** Drives bench/ns-http.js, a process inside a namespace that scrapes and loads HTTP endpoints there. */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Cluster } from '../test/support/netns.js';
import type { LoadRequest, LoadResult, NsHttpReply, NsHttpRequest, ScrapeRequest, ScrapeResult } from './ns-http.js';

export type { LoadResult, Sample, ScrapeResult } from './ns-http.js';

const NS_HTTP_PATH = fileURLToPath(new URL('./ns-http.js', import.meta.url));

type WithoutId<T> = T extends { id: number } ? Omit<T, 'id' | 'op'> : never;

export class NsHttp {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (msg: NsHttpReply) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(msg.error));
    });
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('ns-http exited'));
      this.pending.clear();
    });
  }

  static async start(cluster: Cluster, ns: string): Promise<NsHttp> {
    const child = cluster.spawnIn(ns, process.execPath, ['--max-old-space-size=2048', NS_HTTP_PATH], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('ns-http not ready after 10 s')), 10_000);
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`ns-http exited with ${code}`)));
    });
    return new NsHttp(child);
  }

  private call<T>(req: Omit<NsHttpRequest, 'id'>): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...req, id });
    });
  }

  /** A timed GET on a fresh connection; samples of the `keep` metric names come back parsed. */
  scrape(url: string, opts: WithoutId<ScrapeRequest> extends infer O ? Omit<O, 'url'> : never = {}): Promise<ScrapeResult> {
    return this.call<ScrapeResult>({ op: 'scrape', url, ...opts });
  }

  /** `clients` keep-alive GET loops against `url` for `seconds`. */
  load(url: string, opts: Omit<WithoutId<LoadRequest>, 'url'>): Promise<LoadResult> {
    return this.call<LoadResult>({ op: 'load', url, ...opts });
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
  }
}
