import type { Family } from '../types.js';
import { openDgramSocket } from './dgram.js';
import { openRawSocket } from './raw.js';
import { IcmpPermissionError, type IcmpSocket } from './socket.js';

export type SocketKind = 'raw' | 'dgram';

export interface OpenedSockets {
  readonly sockets: Map<Family, IcmpSocket>;
  /** Families that could not be opened for reasons other than permission (e.g. no IPv6), with why. */
  readonly missing: Array<{ family: Family; reason: string }>;
}

/**
 * Opens one socket per address family. A family the host lacks is reported in
 * `missing`; a permission problem is thrown, as nothing can be measured without it.
 * `dontFragment` (datagram only): the sockets of path-MTU probes.
 */
export function openIcmpSockets(kind: SocketKind, now: () => number, options: { readonly dontFragment?: boolean } = {}): OpenedSockets {
  const sockets = new Map<Family, IcmpSocket>();
  const missing: Array<{ family: Family; reason: string }> = [];
  for (const family of [4, 6] as const) {
    try {
      sockets.set(family, kind === 'raw' ? openRawSocket(family, now) : openDgramSocket(family, options));
    } catch (err) {
      if (err instanceof IcmpPermissionError) {
        for (const s of sockets.values()) void s.close();
        throw err;
      }
      missing.push({ family, reason: (err as Error).message });
    }
  }
  if (sockets.size === 0) throw new Error(`no ICMP socket could be opened: ${missing.map((m) => m.reason).join('; ')}`);
  return { sockets, missing };
}
