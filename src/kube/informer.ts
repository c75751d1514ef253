/**
 * client-node's ListWatch stops on any error other than a clean close. RestartingInformer restarts it
 * with a capped exponential backoff (reset once a list or watch goes through), for every informer
 * mentat runs; CachedInformer adds what the Node and the Pod watches share: paged, trimmed lists,
 * trimmed watch events, a cache by name, and one callback per batch of changes.
 */
import type { KubeConfig, KubernetesListObject, KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import { PagedLister, type ListPage } from './api.js';
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
 * The Watch of every informer mentat runs. It trims objects before the informer caches them (a
 * Node or a Pod is kilobytes, of which mentat reads a few fields), and says when a watch request was
 * accepted: the backoff starts over then.
 *
 * It also opens nothing once its informer is `stopped`: client-node's ListWatch (cache.js
 * doneHandler, 2.0.1) goes on to watch when a list or a reconnect delay that began before stop()
 * ends, and stop() cannot abort a watch request still opening; that watch would stay open, and an
 * agent leaving its fallback would go on receiving every Node update.
 */
export function informerWatch<T>(client: KubeClient, config: KubeConfig, trim: (object: T) => T, onAccepted: () => void, stopped: () => boolean): Watch {
  return new (class extends client.Watch {
    override async watch(
      path: string,
      queryParams: Record<string, string | number | boolean | undefined>,
      callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
      done: (err: unknown) => void,
    ): Promise<AbortController> {
      if (stopped()) return new AbortController();
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
      if (stopped()) controller.abort();
      else if (!failed) onAccepted();
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

export interface CachedInformerOptions<T extends KubernetesObject, V> {
  readonly client: KubeClient;
  readonly kubeConfig: KubeConfig;
  /** The collection's path, e.g. NODES or PODS(namespace). */
  readonly collection: string;
  readonly labelSelector?: string | undefined;
  /** Objects per list request. */
  readonly pageSize: number;
  /** A list page that takes longer than this is abandoned and retried with the backoff. */
  readonly listTimeoutMs: number;
  /** What is kept of an object, before it is cached or the next page is read. */
  readonly trim: (object: T) => T;
  /** The cached value of a (trimmed) object; undefined skips it (and an object without a name is skipped). */
  readonly toCached: (object: T) => V | undefined;
  /** Values that are the same cause no callback (default: never the same). */
  readonly same?: (a: V, b: V) => boolean;
  /** Every cached value, after each batch of changes (the thousands of events of one list are one batch). */
  readonly onChange: (values: V[]) => void;
  /** A full list went through (the cache is complete), with its number of objects. */
  readonly onListed?: (count: number) => void;
  /** A list or a watch request went through. */
  readonly onHealthy?: () => void;
  readonly onError: (err: unknown, retryInMs: number) => void;
  readonly delay: (ms: number) => Promise<void>;
  readonly minBackoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
}

/** One list+watch of a collection, cached by object name; on errors it keeps the cache and restarts with a backoff. */
export class CachedInformer<T extends KubernetesObject, V> {
  private readonly runner: RestartingInformer<T>;
  private readonly cache = new Map<string, V>();
  private emitScheduled = false;
  private stopped = true;

  constructor(private readonly options: CachedInformerOptions<T, V>) {
    const lister = new PagedLister<T>(options.client, options.kubeConfig, options.listTimeoutMs, options.collection, options.labelSelector);
    const watch = informerWatch(
      options.client,
      options.kubeConfig,
      options.trim,
      () => this.healthy(),
      () => this.stopped,
    );
    const list = async (): Promise<KubernetesListObject<T>> => {
      const page = await listTrimmed(lister, options.pageSize, options.trim);
      options.onListed?.(page.items.length);
      this.healthy();
      this.scheduleEmit();
      return page;
    };
    const informer: ListWatch<T> = new options.client.ListWatch<T>(options.collection, watch, list, false, options.labelSelector, undefined, {
      delayFn: options.delay,
    });
    informer.on('add', (object) => this.put(object));
    informer.on('update', (object) => this.put(object));
    informer.on('delete', (object) => {
      if (object.metadata?.name !== undefined && this.cache.delete(object.metadata.name)) this.scheduleEmit();
    });
    this.runner = new RestartingInformer(informer, {
      delay: options.delay,
      minBackoffMs: options.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
      onError: options.onError,
    });
  }

  start(): void {
    this.stopped = false;
    this.runner.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.runner.stop();
  }

  private healthy(): void {
    this.runner.healthy();
    this.options.onHealthy?.();
  }

  private put(object: T): void {
    const value = this.options.toCached(object);
    const name = object.metadata?.name;
    if (value === undefined || name === undefined) return;
    const known = this.cache.get(name);
    if (known !== undefined && this.options.same?.(known, value)) return;
    this.cache.set(name, value);
    this.scheduleEmit();
  }

  /** Coalesces the events of one list (or of one burst of changes) into one callback. */
  private scheduleEmit(): void {
    if (this.emitScheduled) return;
    this.emitScheduled = true;
    setImmediate(() => {
      this.emitScheduled = false;
      if (!this.stopped) this.options.onChange([...this.cache.values()]);
    });
  }
}
