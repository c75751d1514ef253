/**
 * The MTU a full-size probe to an address should fit: that of the interface the route to it leaves
 * by. Not the kernel's path MTU for the address (IP_MTU), which a fragmentation-needed lowers: a
 * probe sized to it would fit the very bottleneck it is there to find.
 */
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import type { Family } from '../types.js';

/** What the route lookup needs of the system; injected so the lookup is tested without one. */
export interface RouteSystem {
  /** The source address the kernel picks for `address` (a connected UDP socket's local address). */
  sourceAddress(address: string, family: Family): Promise<string>;
  /** The interface that holds `address`. */
  interfaceOf(address: string): string | undefined;
  interfaceMtu(name: string): Promise<number>;
}

export const systemRoutes: RouteSystem = {
  sourceAddress: (address, family) =>
    new Promise((resolve, reject) => {
      const socket = createSocket(family === 4 ? 'udp4' : 'udp6');
      socket.once('error', (err) => {
        socket.close();
        reject(err);
      });
      // connect() sends nothing on UDP: it asks the kernel for a route, and so a source address.
      socket.connect(9, address, () => {
        const local = socket.address().address;
        socket.close();
        resolve(local);
      });
    }),
  interfaceOf: (address) => {
    for (const [name, addresses] of Object.entries(networkInterfaces())) {
      if (addresses?.some((a) => a.address === address)) return name;
    }
    return undefined;
  },
  interfaceMtu: async (name) => Number((await readFile(`/sys/class/net/${name}/mtu`, 'utf8')).trim()),
};

/**
 * The route interface's MTU toward `address`.
 * @throws an Error that says which step failed (no route, no interface, no MTU)
 */
export async function routeMtu(address: string, family: Family, system: RouteSystem = systemRoutes): Promise<number> {
  const source = await system.sourceAddress(address, family);
  const name = system.interfaceOf(source);
  if (name === undefined) throw new Error(`no interface holds ${source}, the source address of the route to ${address}`);
  const mtu = await system.interfaceMtu(name);
  if (!Number.isInteger(mtu) || mtu < 68) throw new Error(`interface ${name} reports MTU ${mtu}`);
  return mtu;
}

/** IP and ICMP headers: an echo of `mtu` bytes carries this much less payload. */
export function payloadForMtu(mtu: number, family: Family): number {
  return mtu - (family === 4 ? 20 : 40) - 8;
}
