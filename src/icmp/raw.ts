/** The raw-socket edge: the only importer of raw-socket (raw ICMP sockets, CAP_NET_RAW). */
import { createRequire } from 'node:module';
import type { Family } from '../types.js';
import { IcmpPermissionError, type IcmpSocket } from './socket.js';

interface RawSocketModule {
  createSocket(options: { protocol: number; addressFamily?: number; bufferSize?: number }): RawSocket;
  Protocol: { ICMP: number; ICMPv6: number };
  AddressFamily: { IPv4: number; IPv6: number };
  SocketLevel: { SOL_SOCKET: number };
  SocketOption: { SO_RCVBUF: number; SO_SNDBUF: number };
}

interface RawSocket {
  send(buf: Buffer, offset: number, length: number, address: string, before: () => void, after: (error: Error | null, bytes: number) => void): void;
  on(event: 'message', handler: (buf: Buffer, source: string) => void): void;
  on(event: 'error', handler: (error: Error) => void): void;
  once(event: 'close', handler: () => void): void;
  setOption(level: number, option: number, value: number): void;
  close(): void;
}

let rawModule: RawSocketModule | undefined;

function loadRawSocket(): RawSocketModule {
  // raw-socket is CommonJS and native: load it lazily so tests of pure code never need the addon.
  rawModule ??= createRequire(import.meta.url)('raw-socket') as RawSocketModule;
  return rawModule;
}

const RECV_BUFFER_BYTES = 4 * 1024 * 1024;

/** raw-socket's socket; a missing CAP_NET_RAW is an IcmpPermissionError that says what to grant. */
function createRaw(raw: ReturnType<typeof loadRawSocket>, family: Family): RawSocket {
  try {
    return raw.createSocket({
      protocol: family === 4 ? raw.Protocol.ICMP : raw.Protocol.ICMPv6,
      addressFamily: family === 4 ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6,
      bufferSize: 65536,
    });
  } catch (err) {
    const message = (err as Error).message;
    if (/not permitted|permission denied/i.test(message)) {
      throw new IcmpPermissionError(
        `opening a raw ICMPv${family} socket was denied (${message}): the process lacks CAP_NET_RAW`,
        'grant it (Kubernetes: run as root with capabilities.add: [NET_RAW]), or use MENTAT_ICMP_MODE=dgram with net.ipv4.ping_group_range covering the process group',
        { cause: err },
      );
    }
    throw new Error(`opening a raw ICMPv${family === 4 ? 4 : 6} socket failed: ${message}`, { cause: err });
  }
}

/**
 * Opens a raw ICMP (or ICMPv6) socket.
 * @throws IcmpPermissionError when the process lacks CAP_NET_RAW
 */
export function openRawSocket(family: Family, now: () => number): IcmpSocket {
  const raw = loadRawSocket();
  const socket = createRaw(raw, family);
  try {
    // A large receive buffer keeps bursts of replies from thousands of targets from being dropped.
    socket.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, RECV_BUFFER_BYTES);
  } catch {
    // Capped by net.core.rmem_max; the default still works for smaller clusters.
  }
  return {
    family,
    mode: 'raw',
    withIpHeader: family === 4,
    kernelOwnsIdentifier: false,
    send(packet, address, done) {
      let sentAt = now();
      socket.send(
        packet,
        0,
        packet.length,
        address,
        () => {
          // raw-socket queues sends until the socket is writable: stamp at the syscall, not at the call.
          sentAt = now();
        },
        (error) => done(error ?? undefined, sentAt),
      );
    },
    onMessage(handler) {
      socket.on('message', (buf, source) => handler(buf, source, now()));
    },
    onError(handler) {
      socket.on('error', handler);
    },
    // Send and receive times are the prober's monotonic clock here: no wall-clock step to tell.
    now,
    close() {
      // raw-socket releases its poll handle asynchronously; a process that exits before crashes.
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        socket.once('close', () => {
          clearTimeout(timer);
          setImmediate(resolve);
        });
        socket.close();
      });
    },
  };
}
