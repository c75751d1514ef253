import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Cluster } from './netns.js';
import type { ControlReady, ControlReply, ControlRequest } from './ns-control.js';

export const CONTROL_PATH = fileURLToPath(new URL('./ns-control.js', import.meta.url));

type Op = ControlRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** The test's hands inside one namespace: a fake API server there, and HTTP from there. */
export class NsControl {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(
    private readonly child: ChildProcess,
    readonly apiUrl: string,
    readonly kubeconfig: string,
  ) {
    child.on('message', (msg: ControlReply) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(msg.error));
    });
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('ns-control exited'));
      this.pending.clear();
    });
  }

  static async start(cluster: Cluster, ns: string, dir: string): Promise<NsControl> {
    const child = cluster.spawnIn(ns, process.execPath, [CONTROL_PATH, dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const ready = await new Promise<ControlReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('ns-control not ready after 10 s')), 10_000);
      child.once('message', (msg: ControlReady) => {
        clearTimeout(timer);
        resolve(msg);
      });
      child.once('exit', (code) => reject(new Error(`ns-control exited with ${code}`)));
    });
    return new NsControl(child, ready.apiUrl, ready.kubeconfig);
  }

  call<T = unknown>(op: Op): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...op, id });
    });
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
    if (this.child.connected) this.child.disconnect();
  }
}
