/**
 * Leader election with client-go's semantics (tools/leaderelection): a coordination.k8s.io/v1 Lease
 * as the lock; the holder renews it every retry period and stops leading when it could not renew
 * for the renew deadline; a candidate takes it once nobody renewed it for the lease duration. One
 * loop does every write, one at a time, so a renew never races another write of ours; a 409 is
 * never a decision (the next round reads the lease again). Expiry is judged by when this process
 * saw the record change, on its own monotonic clock, so clock skew between nodes does not matter.
 */
import type { Log } from '../log.js';
import type { Ambient } from '../types.js';
import { KubeApiError, LEASES, type KubeObject, type ObjectClient } from './api.js';

export interface LeaseRecord {
  readonly holderIdentity: string;
  readonly leaseDurationSeconds: number;
  readonly acquireTime: string;
  readonly renewTime: string;
  readonly leaseTransitions: number;
}

/** The lock: get, create and update of one record, each update conditional on the version read. */
export interface LeaseLock {
  get(): Promise<{ record: LeaseRecord; version: string } | undefined>;
  /** @returns the new version; throws KubeApiError 409 when it exists */
  create(record: LeaseRecord): Promise<string>;
  /** @returns the new version; throws KubeApiError 409 when `version` is no longer current */
  update(record: LeaseRecord, version: string): Promise<string>;
  readonly description: string;
}

interface LeaseObject extends KubeObject {
  readonly spec?: Partial<LeaseRecord>;
}

/** MicroTime, as the API server requires for Lease times: six decimals. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** A Lease object as the lock. */
export function leaseLock(objects: ObjectClient, namespace: string, name: string): LeaseLock {
  const collection = LEASES(namespace);
  const body = (record: LeaseRecord, resourceVersion?: string): LeaseObject => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(resourceVersion ? { resourceVersion } : {}), labels: { 'app.kubernetes.io/part-of': 'mentat' } },
    spec: record,
  });
  return {
    description: `${namespace}/${name}`,
    async get() {
      const lease = await objects.get<LeaseObject>(collection, name);
      if (!lease) return undefined;
      const s = lease.spec ?? {};
      const record: LeaseRecord = {
        holderIdentity: typeof s.holderIdentity === 'string' ? s.holderIdentity : '',
        leaseDurationSeconds: typeof s.leaseDurationSeconds === 'number' ? s.leaseDurationSeconds : 0,
        acquireTime: typeof s.acquireTime === 'string' ? s.acquireTime : '',
        renewTime: typeof s.renewTime === 'string' ? s.renewTime : '',
        leaseTransitions: typeof s.leaseTransitions === 'number' ? s.leaseTransitions : 0,
      };
      return { record, version: lease.metadata.resourceVersion ?? '' };
    },
    async create(record) {
      return (await objects.create(collection, body(record))).metadata.resourceVersion ?? '';
    },
    async update(record, version) {
      return (await objects.replace(collection, body(record, version))).metadata.resourceVersion ?? '';
    },
  };
}

/** `random` jitters candidates' attempts (client-go's JitterFactor 1.2); `wallNow` stamps the times written into the lease. */
export interface LeaderElectionConfig extends Omit<Ambient, 'delay'> {
  readonly lock: LeaseLock;
  /** This candidate, as the lease names its holder (the pod name). */
  readonly identity: string;
  /** A lease nobody renewed for this long is free to take. */
  readonly leaseDurationMs: number;
  /** The leader stops leading when it could not renew for this long. */
  readonly renewDeadlineMs: number;
  /** Time between two attempts to take or renew the lease. */
  readonly retryPeriodMs: number;
  readonly log: Log;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
}

const JITTER_FACTOR = 1.2;
/** A lease that claims a duration outside these is judged by ours: a forged hour must not lock candidates out. */
const MIN_LEASE_S = 1;
const MAX_LEASE_S = 300;

export class LeaderElector {
  private observed: { record: LeaseRecord; version: string } | undefined;
  private observedAt = 0;
  private leading = false;
  private lastRenewAt = 0;
  private timer: unknown;
  private inFlight: Promise<void> | undefined;
  private stopped = false;

  /** @throws when the durations are not ordered as client-go requires, naming the one to change */
  constructor(private readonly config: LeaderElectionConfig) {
    if (config.leaseDurationMs <= config.renewDeadlineMs) throw new Error('leader election: the lease duration must be longer than the renew deadline');
    if (config.renewDeadlineMs <= JITTER_FACTOR * config.retryPeriodMs)
      throw new Error(`leader election: the renew deadline must be longer than ${JITTER_FACTOR} retry periods`);
  }

  /** Leading, and renewed recently enough that nobody else can have taken the lease. */
  get isLeader(): boolean {
    return this.leading && this.config.clock.now() - this.lastRenewAt < this.config.renewDeadlineMs;
  }

  /** The holder this process last saw, if any. */
  get holder(): string | undefined {
    return this.observed?.record.holderIdentity || undefined;
  }

  run(): void {
    this.schedule(0);
  }

  /** Stops trying; a leader gives the lease up (after any write in flight) so another takes over at once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) this.config.clock.clearTimer(this.timer);
    await this.inFlight;
    // A round in flight may have taken the lease after stop() began: release() looks at the lease, not at `leading`.
    const was = this.leading;
    this.leading = false;
    await this.release();
    if (was) this.config.onStoppedLeading();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = this.config.clock.setTimer(() => {
      this.inFlight = this.round().finally(() => {
        this.inFlight = undefined;
      });
    }, delayMs);
  }

  private async round(): Promise<void> {
    const { clock, retryPeriodMs, renewDeadlineMs, log, identity, lock } = this.config;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (err) {
      log.warn({ lease: lock.description, err: String((err as Error).message).slice(0, 300) }, 'leader election: could not read or write the lease; retrying');
    }
    if (this.stopped) return; // stop() releases what this round may have taken
    const now = clock.now();
    if (ok) {
      this.lastRenewAt = now;
      if (!this.leading) {
        this.leading = true;
        log.info({ lease: lock.description, identity }, 'leader election: took the lease; this replica writes the node list');
        this.config.onStartedLeading();
      }
    } else if (this.leading && (now - this.lastRenewAt >= renewDeadlineMs || (this.holder !== undefined && this.holder !== identity))) {
      this.leading = false;
      log.warn({ lease: lock.description, holder: this.holder }, 'leader election: lost the lease; this replica writes nothing now');
      this.config.onStoppedLeading();
    }
    this.schedule(this.leading ? retryPeriodMs : retryPeriodMs * (1 + this.config.random() * (JITTER_FACTOR - 1)));
  }

  /** client-go's tryAcquireOrRenew: true when this candidate holds the lease after the call. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { lock, identity, clock } = this.config;
    const nowIso = microTime(this.config.wallNow());
    const durationS = Math.round(this.config.leaseDurationMs / 1000);
    const current = await lock.get();
    if (!current) {
      const record: LeaseRecord = { holderIdentity: identity, leaseDurationSeconds: durationS, acquireTime: nowIso, renewTime: nowIso, leaseTransitions: 0 };
      return this.write(() => lock.create(record), record);
    }
    if (JSON.stringify(current.record) !== JSON.stringify(this.observed?.record)) this.observedAt = clock.now();
    this.observed = current;
    const held = current.record.holderIdentity;
    if (held !== '' && held !== identity && this.observedAt + this.durationMsOf(current.record) > clock.now()) return false;
    const mine = held === identity;
    const record: LeaseRecord = {
      holderIdentity: identity,
      leaseDurationSeconds: durationS,
      acquireTime: mine ? current.record.acquireTime : nowIso,
      renewTime: nowIso,
      leaseTransitions: current.record.leaseTransitions + (mine ? 0 : 1),
    };
    return this.write(() => lock.update(record, current.version), record);
  }

  private async write(attempt: () => Promise<string>, record: LeaseRecord): Promise<boolean> {
    try {
      this.observed = { record, version: await attempt() };
      this.observedAt = this.config.clock.now();
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 409) return false; // the next round reads it again
      throw err;
    }
  }

  private durationMsOf(record: LeaseRecord): number {
    const s = record.leaseDurationSeconds;
    return s >= MIN_LEASE_S && s <= MAX_LEASE_S ? s * 1000 : this.config.leaseDurationMs;
  }

  /** client-go's release: an empty holder and a one-second duration. A 409 means someone else holds it now: fine. */
  private async release(): Promise<void> {
    const observed = this.observed;
    if (!observed || observed.record.holderIdentity !== this.config.identity) return;
    const nowIso = microTime(this.config.wallNow());
    const record: LeaseRecord = { ...observed.record, holderIdentity: '', leaseDurationSeconds: 1, renewTime: nowIso };
    await this.config.lock.update(record, observed.version).then(
      () => this.config.log.info({ lease: this.config.lock.description }, 'leader election: gave up the lease'),
      () => undefined,
    );
  }
}
