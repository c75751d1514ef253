import type { ChildProcess } from 'node:child_process';
import type { Cluster } from './netns.js';

/** A request without its id: what callers write. */
export type OpOf<R> = R extends { id: number } ? Omit<R, 'id'> : never;

type Reply = { id: number; ok: true; result?: unknown } | { id: number; ok: false; error: string };

/**
 * Request/reply over the Node IPC channel of a helper process that runs inside a
 * namespace (fault-control.ts, bench/ns-http.ts): the test's hands where it cannot reach.
 */
export class IpcRpc<Request extends { id: number }> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(
    readonly child: ChildProcess,
    private readonly name: string,
  ) {
    child.on('message', (msg: Reply) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(msg.error));
    });
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error(`${name} exited`));
      this.pending.clear();
    });
  }

  /** Starts `node ...args` in the namespace and waits for its first message, the ready one. */
  static async start<Request extends { id: number }, Ready>(
    cluster: Cluster,
    ns: string,
    args: readonly string[],
    name: string,
  ): Promise<{ rpc: IpcRpc<Request>; ready: Ready }> {
    const child = cluster.spawnIn(ns, process.execPath, [...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const ready = await new Promise<Ready>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready after 10 s`)), 10_000);
      child.once('message', (msg: Ready) => {
        clearTimeout(timer);
        resolve(msg);
      });
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    });
    return { rpc: new IpcRpc<Request>(child, name), ready };
  }

  call<T = unknown>(op: OpOf<Request>): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (!this.child.connected) return reject(new Error(`${this.name} is gone`));
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...op, id });
    });
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
  }
}
