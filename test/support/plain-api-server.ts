/** An API server of the test's own for src/kube/api.ts's tests: a plain HTTP server that records what it was sent and answers as the test says, and what those tests share. */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../../src/kube/api.js';
import type { KubeClient } from '../../src/kube/client.js';
import { listenLocal } from './listen.js';

export const NS = 'mentat';
export const TOKEN = 'test-token';

/** A kubeconfig for `server` (plain HTTP, which client-node allows only with TLS verification nominally off). */
export function kubeConfigFor(client: KubeClient, server: string, token: string): KubeConfig {
  const kubeConfig = new client.KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'test', server, skipTLSVerify: true }],
    users: [{ name: 'test', token }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
    currentContext: 'test',
  });
  return kubeConfig;
}

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** A plain HTTP server on 127.0.0.1 that records each request (body read) and counts connections. */
export interface PlainServer {
  readonly kubeConfig: KubeConfig;
  readonly seen: Seen[];
  readonly connections: () => number;
  readonly open: () => number;
  handler: (req: Seen, res: ServerResponse) => void;
}

export async function plainServer(t: TestContext, client: KubeClient): Promise<PlainServer> {
  const sockets = new Set<Socket>();
  const seen: Seen[] = [];
  let connections = 0;
  let handle: PlainServer['handler'] = (_req, res) => res.end('{}');
  const listener: RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const one = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      seen.push(one);
      handle(one, res);
    });
  };
  const server = createServer(listener);
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listenLocal(server);
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return {
    kubeConfig: kubeConfigFor(client, `http://127.0.0.1:${port}`, TOKEN),
    seen,
    connections: () => connections,
    open: () => sockets.size,
    get handler() {
      return handle;
    },
    set handler(h) {
      handle = h;
    },
  };
}

/** Waits up to `ms` for `predicate`; the last value decides. */
export async function eventually(predicate: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (!predicate() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  return predicate();
}

/** The error a promise rejects with (the test fails if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Error, `an Error, not ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

export const configMap = (name: string, data: Record<string, string>, resourceVersion?: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: NS, ...(resourceVersion !== undefined ? { resourceVersion } : {}) },
  data,
});
