/**
 * Path-MTU probes: to each peer on each path, one echo of the full expected MTU with do-not-fragment
 * set, every few tens of seconds, on sockets of their own (IP_PMTUDISC_PROBE). A 64-byte ping
 * crosses a path whose MTU is broken; this one does not, and so tells a black hole (no answer) from
 * a router that says so (fragmentation needed, with the MTU it takes).
 */
import { isRemoteUnicast } from '../icmp/address.js';
import { payloadForMtu } from '../icmp/route-mtu.js';
import type { IcmpSocket } from '../icmp/socket.js';
import type { Clock, Family, Outcome, Target } from '../types.js';
import { Prober } from './prober.js';

export const MTU_RESULTS = ['ok', 'lost', 'too_big', 'error'] as const;
/** ok: answered at full size; lost: no answer; too_big: a router answered fragmentation needed / packet too big; error: any other error. */
export type MtuResult = (typeof MTU_RESULTS)[number];

/** The payload must still carry the cookie and a byte of pattern. */
const MIN_PAYLOAD = 16;

export interface PathMtuOptions {
  /** Each target gets one probe per this long. */
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** The size of an IP packet to probe with; 0: the MTU of the route's interface, per destination. */
  readonly mtuBytes: number;
  readonly identifier: number;
  readonly cookie: Uint8Array;
  /** Opens datagram sockets with do-not-fragment set, by family: each probe size gets its own (a socket has one reader). */
  readonly openSockets: () => ReadonlyMap<Family, IcmpSocket>;
  readonly clock: Clock;
  readonly routeMtu: (address: string, family: Family) => Promise<number>;
  readonly onResult: (target: Target, result: MtuResult, reportedMtu?: number) => void;
  /** A destination that gets no MTU probes, and why (its route could not be looked up). */
  readonly onSkipped: (target: Target, why: string) => void;
}

/** What an outcome says of a full-size, do-not-fragment probe. */
export function mtuResultOf(outcome: Outcome): { result: MtuResult; reportedMtu?: number } {
  if (outcome.kind === 'success') return { result: 'ok' };
  if (outcome.kind === 'timeout') return { result: 'lost' };
  return outcome.nextHopMtu === undefined ? { result: 'error' } : { result: 'too_big', reportedMtu: outcome.nextHopMtu };
}

interface SizedProber {
  readonly prober: Prober;
  readonly sockets: ReadonlyMap<Family, IcmpSocket>;
}

/** One prober per probe size (usually one: every peer is behind the same interface), each on sockets of its own. */
export class PathMtuProbes {
  private readonly probers = new Map<number, SizedProber>();
  /** Expected MTU by address, once looked up; a failed lookup is not retried until the address leaves and returns. */
  private readonly mtuOf = new Map<string, number | Error>();
  private generation = 0;
  private stopped = false;

  constructor(private readonly options: PathMtuOptions) {}

  /** The peers to probe (loopback and link-local addresses are left out: no path to break). */
  setTargets(targets: readonly Target[]): void {
    const generation = ++this.generation;
    const remote = targets.filter((t) => isRemoteUnicast(t.address));
    const live = new Set(remote.map((t) => t.address));
    for (const address of this.mtuOf.keys()) if (!live.has(address)) this.mtuOf.delete(address);
    void this.resolve(remote).then(() => {
      if (generation === this.generation && !this.stopped) this.schedule(remote);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.probers.values()];
    this.probers.clear();
    await Promise.all(all.map(close));
  }

  private async resolve(targets: readonly Target[]): Promise<void> {
    const { mtuBytes, routeMtu } = this.options;
    await Promise.all(
      targets
        .filter((t) => !this.mtuOf.has(t.address))
        .map(async (t) => {
          try {
            this.mtuOf.set(t.address, mtuBytes > 0 ? mtuBytes : await routeMtu(t.address, t.family));
          } catch (err) {
            const error = err instanceof Error ? err : new Error(String(err));
            this.mtuOf.set(t.address, error);
            this.options.onSkipped(t, `the route's MTU could not be read (${error.message}); set MENTAT_MTU`);
          }
        }),
    );
  }

  private schedule(targets: readonly Target[]): void {
    const bySize = new Map<number, Target[]>();
    for (const t of targets) {
      const mtu = this.mtuOf.get(t.address);
      if (typeof mtu !== 'number') continue;
      const payload = payloadForMtu(mtu, t.family);
      if (payload < MIN_PAYLOAD) {
        this.options.onSkipped(t, `an MTU of ${mtu} bytes leaves no room for a probe`);
        continue;
      }
      bySize.set(payload, [...(bySize.get(payload) ?? []), t]);
    }
    for (const [payload, sized] of this.probers) {
      if (bySize.has(payload)) continue;
      this.probers.delete(payload);
      void close(sized);
    }
    for (const [payload, list] of bySize) {
      let sized = this.probers.get(payload);
      if (!sized) {
        try {
          sized = this.prober(payload);
        } catch (err) {
          for (const t of list) this.options.onSkipped(t, `no do-not-fragment ICMP socket could be opened (${(err as Error).message})`);
          continue;
        }
        this.probers.set(payload, sized);
      }
      sized.prober.setTargets(list);
    }
  }

  private prober(payloadBytes: number): SizedProber {
    const { intervalMs, timeoutMs, identifier, cookie, clock } = this.options;
    const sockets = this.options.openSockets();
    const prober = new Prober({
      intervalMs,
      timeoutMs,
      payloadBytes,
      identifier,
      cookie,
      sockets,
      clock,
      onResult: (target, outcome) => {
        const { result, reportedMtu } = mtuResultOf(outcome);
        this.options.onResult(target, result, reportedMtu);
      },
      // At one probe per peer every tens of seconds the socket buffer is never full: ENOBUFS here is
      // the first device dropping the frame as too large (a veth whose peer has a smaller MTU), so lost.
      onDiscard: (target, reason) => {
        if (reason === 'send_buffer') this.options.onResult(target, 'lost');
      },
    });
    return { prober, sockets };
  }
}

async function close(sized: SizedProber): Promise<void> {
  await sized.prober.stop();
  await Promise.all([...sized.sockets.values()].map((s) => s.close()));
}
