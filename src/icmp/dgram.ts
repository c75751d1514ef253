import { createRequire } from 'node:module';
import type { Family } from '../types.js';
import { icmpErrorReason } from './packet.js';
import { IcmpPermissionError, SocketFailure, type IcmpSocket } from './socket.js';

interface DgramIcmpHandle {
  send(packet: Buffer, address: string): number;
  drain(): number;
  now(): number;
  callbackErrors(): number;
  close(): void;
}

interface DgramIcmpModule {
  DgramIcmp: new (
    family: Family,
    onMessage: (packet: Buffer, source: string, receivedAtMs: number) => void,
    onIcmpError: (quoted: Buffer, destination: string, type: number, code: number, offender: string, receivedAtMs: number, info: number) => void,
    onFailure: (error: Error) => void,
    dontFragment: boolean,
  ) => DgramIcmpHandle;
}

let addon: DgramIcmpModule | undefined;

function loadAddon(): DgramIcmpModule {
  // Our own addon (native/dgram_icmp.cc), built by `npm ci`; loaded lazily so pure code never needs it.
  addon ??= createRequire(import.meta.url)('../../../build/Release/dgram_icmp.node') as DgramIcmpModule;
  return addon;
}

/** ICMPv4 fragmentation needed (destination unreachable, code 4), ICMPv6 packet too big: they carry the next-hop MTU. */
function isTooBig(family: Family, type: number, code: number): boolean {
  return family === 4 ? type === 3 && code === 4 : type === 2;
}

type AddonArgs = ConstructorParameters<DgramIcmpModule['DgramIcmp']>;

/** The addon's socket; a group outside ping_group_range is an IcmpPermissionError that says what to set. */
function construct(family: Family, onMessage: AddonArgs[1], onIcmpError: AddonArgs[2], onFailure: AddonArgs[3], dontFragment: boolean): DgramIcmpHandle {
  const { DgramIcmp } = loadAddon();
  try {
    return new DgramIcmp(family, onMessage, onIcmpError, onFailure, dontFragment);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EPERM') {
      throw new IcmpPermissionError(
        `opening an unprivileged ICMPv${family} datagram socket was denied (${e.code}): the process group is outside net.ipv4.ping_group_range`,
        'set it to cover the group (Kubernetes: the pod sysctl net.ipv4.ping_group_range, as in deploy/base/daemonset.yaml), or use MENTAT_ICMP_MODE=raw with CAP_NET_RAW',
        { cause: err },
      );
    }
    throw new Error(`opening an ICMPv${family} datagram socket failed: ${e.message}`, { cause: err });
  }
}

/**
 * Opens an unprivileged ICMP datagram socket: no capability needed, only a
 * net.ipv4.ping_group_range that covers the process's group. The kernel owns
 * the echo identifier and filters replies per socket; send and receive times
 * come from one clock (CLOCK_REALTIME, receive stamped by the kernel).
 * `dontFragment`: every datagram leaves with DF set and at full size, whatever path MTU the kernel
 * has learned (IP_PMTUDISC_PROBE): the socket of path-MTU probes.
 * (Over 60 lines: the IcmpSocket it returns is one closure over the handle and its handlers.)
 * @throws IcmpPermissionError when ping_group_range does not include the group
 */
export function openDgramSocket(family: Family, options: { readonly dontFragment?: boolean } = {}): IcmpSocket {
  let messageHandler: (packet: Buffer, source: string, receivedAt: number) => void = () => {};
  let errorHandler: Parameters<NonNullable<IcmpSocket['onIcmpError']>>[0] = () => {};
  const pendingFailures: Error[] = [];
  let failureHandler: ((error: Error) => void) | undefined;
  // The addon's failures (a poll that could not restart) and our own handlers' exceptions end up here:
  // counted and logged by the prober, never thrown into the addon's callback, where nothing would see them.
  const fail = (error: Error): void => {
    if (failureHandler) failureHandler(error);
    else pendingFailures.push(error);
  };
  const guarded = (what: string, err: unknown): void =>
    fail(new Error(`handling ${what} from the ICMPv${family} socket threw: ${(err as Error).message}`, { cause: err }));
  const handle = construct(
    family,
    (packet, source, at) => {
      try {
        messageHandler(packet, source, at);
      } catch (err) {
        guarded('a datagram', err);
      }
    },
    (quoted, destination, type, code, offender, at, info) => {
      try {
        errorHandler(quoted, destination, icmpErrorReason(family, type, code), offender, at, isTooBig(family, type, code) && info > 0 ? info : undefined);
      } catch (err) {
        guarded('an ICMP error', err);
      }
    },
    (error) => {
      try {
        fail(new SocketFailure(`ICMPv${family} socket stopped reading (${error.message}): replies go unread; restart the agent`, { cause: error }));
      } catch {
        // The handler of last resort threw: the addon counts it (callbackErrors).
      }
    },
    options.dontFragment === true,
  );
  return {
    family,
    mode: 'dgram',
    withIpHeader: false,
    kernelOwnsIdentifier: true,
    send(packet, address, done) {
      let sentAt: number;
      try {
        sentAt = handle.send(packet, address);
      } catch (err) {
        done(err as Error, 0);
        return;
      }
      done(undefined, sentAt);
    },
    onMessage(handler) {
      messageHandler = handler;
    },
    onIcmpError(handler) {
      errorHandler = handler;
    },
    onError(handler) {
      failureHandler = handler;
      for (const error of pendingFailures.splice(0)) handler(error);
    },
    drain() {
      handle.drain();
    },
    now: () => handle.now(),
    close() {
      handle.close();
      // uv_close completes on the next loop turn.
      return new Promise<void>((resolve) => setImmediate(resolve));
    },
  };
}
