import type { AddressInfo, Server } from 'node:net';

/** Listens on 127.0.0.1 or `host` (port 0: any free port) and resolves with the bound port; a listen error rejects. */
export function listenLocal(server: Server, port = 0, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
