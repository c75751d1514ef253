/**
 * client-node's ListWatch stops on any error other than a clean close. This restarts it with a
 * capped exponential backoff (reset once a list or watch goes through), for every informer mentat
 * runs: the Node watch and the node-list index watch.
 */
import type { KubeConfig, KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import type { ListPage, PagedLister } from './api.js';
import type { KubeClient } from './client.js';

export const DEFAULT_MIN_BACKOFF_MS = 1000;
export const DEFAULT_MAX_BACKOFF_MS = 30_000;

export interface RestartOptions {
  /** Waits between restarts; injected so that backoff is tested without waiting. */
  readonly delay: (ms: number) => Promise<void>;
  readonly minBackoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
  /** Says what went wrong; the informer restarts `retryInMs` later. */
  readonly onError: (err: unknown, retryInMs: number) => void;
}

export class RestartingInformer<T extends KubernetesObject> {
  private stopped = true;
  private backoffMs: number;

  constructor(
    readonly informer: ListWatch<T>,
    private readonly options: RestartOptions,
  ) {
    this.backoffMs = options.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS;
    informer.on('error', (err) => void this.restart(err));
  }

  start(): void {
    this.stopped = false;
    void this.informer.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer.stop();
  }

  /** A list or a watch went through: the next failure starts the backoff over. */
  healthy(): void {
    this.backoffMs = this.options.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS;
  }

  private async restart(err: unknown): Promise<void> {
    // stop() and a restart abort the running watch and report it as an error: not a failure.
    if (this.stopped || (err as Error | undefined)?.name === 'AbortError') return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS);
    this.options.onError(err, wait);
    await this.options.delay(wait);
    if (!this.stopped) void this.informer.start();
  }
}

/**
 * A Watch that trims objects before the informer caches them (a Node or a Pod is kilobytes, of which
 * mentat reads a few fields), and says when a watch request was accepted: the backoff starts over then.
 */
export function trimmingWatch<T>(client: KubeClient, config: KubeConfig, trim: (object: T) => T, onAccepted: () => void): Watch {
  return new (class extends client.Watch {
    override async watch(
      path: string,
      queryParams: Record<string, string | number | boolean | undefined>,
      callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
      done: (err: unknown) => void,
    ): Promise<AbortController> {
      let failed = false;
      const controller = await super.watch(
        path,
        queryParams,
        (phase, obj, raw) => callback(phase, phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? trim(obj as T) : obj, raw),
        (err) => {
          if (err) failed = true;
          done(err);
        },
      );
      if (!failed) onAccepted();
      return controller;
    }
  })(config);
}

/** Every page of a list, each trimmed before the next is read: the peak is one page, not the whole list untrimmed. */
export async function listTrimmed<T>(lister: PagedLister<T>, limit: number, trim: (object: T) => T): Promise<ListPage<T>> {
  const first = await lister.list({ limit });
  const items = first.items.map(trim);
  let next = first.metadata?.continue;
  while (next) {
    const page = await lister.list({ limit, continueToken: next });
    for (const object of page.items) items.push(trim(object));
    next = page.metadata?.continue;
  }
  return { ...(first.metadata ? { metadata: first.metadata } : {}), items };
}
