/**
 * Runs inside a test network namespace, where the test process cannot reach:
 * hosts the fake Kubernetes API server on that namespace's loopback and makes
 * HTTP requests there on the test's behalf. Driven over the Node IPC channel.
 *
 *   ip netns exec NS node ns-control.js DIR
 */
import { FakeApiServer, makeNode } from './fake-apiserver.js';

export type ControlRequest =
  | { id: number; op: 'upsert'; name: string; address: string; labels?: Record<string, string> }
  | { id: number; op: 'upsertRaw'; node: Record<string, unknown> }
  | { id: number; op: 'delete'; name: string }
  | { id: number; op: 'auth'; mode: 'ok' | 401 | 403 }
  | { id: number; op: 'down'; down: boolean }
  | { id: number; op: 'fetch'; url: string; method?: string; timeoutMs?: number };

export type ControlReply = { id: number; ok: true; result?: unknown } | { id: number; ok: false; error: string };

export interface ControlReady {
  ready: true;
  apiUrl: string;
  kubeconfig: string;
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir || !process.send) throw new Error('usage: ns-control.js DIR (with an IPC channel)');
  const server = await FakeApiServer.start();
  const kubeconfig = await server.writeKubeconfig(dir);
  const send = (msg: ControlReply | ControlReady): void => void process.send!(msg);

  process.on('message', async (raw: ControlRequest) => {
    try {
      let result: unknown;
      switch (raw.op) {
        case 'upsert':
          server.upsertNode(makeNode(raw.name, raw.address, raw.labels));
          break;
        case 'upsertRaw':
          server.upsertNode(raw.node as never);
          break;
        case 'delete':
          result = server.deleteNode(raw.name);
          break;
        case 'auth':
          server.setAuth(raw.mode);
          break;
        case 'down':
          await server.setDown(raw.down);
          break;
        case 'fetch': {
          const res = await fetch(raw.url, { method: raw.method ?? 'GET', signal: AbortSignal.timeout(raw.timeoutMs ?? 10_000) });
          result = { status: res.status, body: await res.text() };
          break;
        }
      }
      send({ id: raw.id, ok: true, result });
    } catch (err) {
      send({ id: raw.id, ok: false, error: String((err as Error).message ?? err) });
    }
  });
  process.on('disconnect', () => {
    void server.stop().finally(() => process.exit(0));
  });
  send({ ready: true, apiUrl: server.url, kubeconfig });
}

main().catch((err: unknown) => {
  process.stderr.write(`ns-control: ${String(err)}\n`);
  process.exit(1);
});
