/**
 * One coordination.k8s.io/v1 Lease, as client-go's leader election uses it: the holder renews
 * renewTime; a lease nobody renewed for leaseDurationSeconds is free to take, by a replace that
 * names the resourceVersion it read (the API server lets exactly one such write through). Expiry is
 * judged by when this agent saw the lease change (its own monotonic clock), not by the holder's
 * renewTime, so clock skew between nodes does not matter.
 */
import type { Log } from '../log.js';
import type { Clock } from '../types.js';
import { KubeApiError, LEASES, type KubeObject, type ObjectClient } from './api.js';

export interface LeaseObject extends KubeObject {
  readonly spec?: {
    readonly holderIdentity?: string;
    readonly leaseDurationSeconds?: number;
    readonly acquireTime?: string;
    readonly renewTime?: string;
    readonly leaseTransitions?: number;
  };
}

export interface LeaseOptions {
  readonly objects: ObjectClient;
  readonly namespace: string;
  readonly name: string;
  /** This agent, as the lease names its holder. */
  readonly identity: string;
  readonly durationMs: number;
  readonly clock: Clock;
  /** Wall-clock milliseconds, for the times written into the lease. */
  readonly wallNow: () => number;
  readonly log: Log;
}

/** MicroTime, as the API server requires for Lease times: six decimals. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class Lease {
  private current: LeaseObject | undefined;
  /** When this agent last saw the lease renewed (or taken), in its clock. */
  private observedAt: number;
  private leading = false;

  constructor(private readonly options: LeaseOptions) {
    this.observedAt = options.clock.now();
  }

  /** A lease as the watch delivers it (undefined: deleted, or none). */
  observe(lease: LeaseObject | undefined): void {
    const before = this.current?.spec;
    this.current = lease;
    const spec = lease?.spec;
    if (spec?.renewTime !== before?.renewTime || spec?.holderIdentity !== before?.holderIdentity) this.observedAt = this.options.clock.now();
    if (this.leading && spec?.holderIdentity !== this.options.identity) this.stepDown('another agent holds the lease now');
  }

  get holder(): string | undefined {
    const holder = this.current?.spec?.holderIdentity;
    return holder ? holder : undefined;
  }

  /** What the holder published in the lease's annotations. */
  annotation(key: string): string | undefined {
    return this.current?.metadata.annotations?.[key];
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** How long the lease has been free: 0 while someone holds and renews it. */
  expiredForMs(): number {
    if (!this.holder) return Math.max(1, this.options.clock.now() - this.observedAt);
    const durationMs = (this.current?.spec?.leaseDurationSeconds ?? this.options.durationMs / 1000) * 1000;
    return Math.max(0, this.options.clock.now() - this.observedAt - durationMs);
  }

  /** Takes the lease if it is free (or absent). Resolves true when this agent holds it. */
  async tryAcquire(annotations: Record<string, string> = {}): Promise<boolean> {
    const { objects, namespace, name, identity } = this.options;
    const now = this.options.wallNow();
    const existing = await objects.get<LeaseObject>(LEASES(namespace), name);
    if (existing) this.observe(existing);
    if (existing && this.holder && this.holder !== identity && this.expiredForMs() === 0) return false;
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.round(this.options.durationMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (existing?.spec?.leaseTransitions ?? 0) + (existing?.spec?.holderIdentity === identity ? 0 : 1),
    };
    const body: LeaseObject = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name,
        namespace,
        ...(existing ? { resourceVersion: existing.metadata.resourceVersion! } : {}),
        annotations: { ...existing?.metadata.annotations, ...annotations },
      },
      spec,
    };
    try {
      this.accept(existing ? await objects.replace(LEASES(namespace), body) : await objects.create(LEASES(namespace), body));
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 409) return false; // someone else was quicker
      throw err;
    }
    this.leading = true;
    this.options.log.info({ lease: `${namespace}/${name}`, identity }, 'took the node-list lease: this agent publishes the node list');
    return true;
  }

  /** Renews the lease (and replaces its annotations). Resolves false when the lease was lost. */
  async renew(annotations?: Record<string, string>): Promise<boolean> {
    if (!this.leading || !this.current) return false;
    const { objects, namespace } = this.options;
    const body: LeaseObject = {
      ...this.current,
      metadata: { ...this.current.metadata, ...(annotations ? { annotations: { ...this.current.metadata.annotations, ...annotations } } : {}) },
      spec: { ...this.current.spec, renewTime: microTime(this.options.wallNow()) },
    };
    try {
      this.accept(await objects.replace(LEASES(namespace), body));
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && (err.code === 409 || err.code === 404)) {
        this.stepDown(err.code === 409 ? 'the lease changed under us' : 'the lease was deleted');
        return false;
      }
      throw err;
    }
  }

  /** Gives the lease up (on shutdown), so that another agent takes over at once rather than after its duration. */
  async release(): Promise<void> {
    if (!this.leading || !this.current) return;
    this.leading = false;
    const { objects, namespace } = this.options;
    const body: LeaseObject = { ...this.current, spec: { ...this.current.spec, holderIdentity: '', renewTime: microTime(this.options.wallNow()) } };
    await objects.replace(LEASES(namespace), body).catch(() => undefined);
  }

  /** No longer the holder (renewals failed for too long, or another holds it). */
  stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.options.log.warn({ lease: `${this.options.namespace}/${this.options.name}`, why }, 'gave up the node-list lease: another agent will publish');
  }

  private accept(lease: LeaseObject): void {
    this.current = lease;
    this.observedAt = this.options.clock.now();
  }
}
