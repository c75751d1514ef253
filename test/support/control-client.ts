import { fileURLToPath } from 'node:url';
import { IpcRpc, type OpOf } from './ipc-rpc.js';
import type { Cluster } from './netns.js';
import type { ControlReady, ControlRequest } from './ns-control.js';

export const CONTROL_PATH = fileURLToPath(new URL('./ns-control.js', import.meta.url));

/** The test's hands inside one namespace: a fake API server there, and HTTP from there. */
export class NsControl {
  private constructor(
    private readonly rpc: IpcRpc<ControlRequest>,
    readonly apiUrl: string,
    readonly kubeconfig: string,
  ) {}

  static async start(cluster: Cluster, ns: string, dir: string): Promise<NsControl> {
    const { rpc, ready } = await IpcRpc.start<ControlRequest, ControlReady>(cluster, ns, CONTROL_PATH, dir, 'ns-control');
    return new NsControl(rpc, ready.apiUrl, ready.kubeconfig);
  }

  call<T = unknown>(op: OpOf<ControlRequest>): Promise<T> {
    return this.rpc.call<T>(op);
  }

  /** GET from inside the namespace; a refused connection comes back as status 0. */
  async fetch(url: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
    try {
      return await this.call<{ status: number; body: string }>({ op: 'fetch', url, timeoutMs });
    } catch (err) {
      return { status: 0, body: String((err as Error).message) };
    }
  }

  close(): void {
    this.rpc.close();
  }
}
