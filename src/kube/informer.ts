/**
 * client-node's ListWatch stops on any error other than a clean close. This restarts it with a
 * capped exponential backoff (reset once a list or watch goes through), for every informer mentat
 * runs: the Node watch and the node-list index watch.
 */
import type { KubernetesObject, ListWatch } from '@kubernetes/client-node';

export const DEFAULT_MIN_BACKOFF_MS = 1000;
export const DEFAULT_MAX_BACKOFF_MS = 30_000;

export interface RestartOptions {
  /** Waits between restarts; injected so that backoff is tested without waiting. */
  readonly delay: (ms: number) => Promise<void>;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
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
