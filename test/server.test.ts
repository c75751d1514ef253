/**
 * The agent's one HTTP server (HttpServer) on the loopback: /healthz says why a restart is needed,
 * an error of the listening socket is reported and serving goes on. Abuse of the port (trickling
 * readers, a crowd of scrapers) is test/e2e/scrape-abuse.test.ts's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpServer } from '../src/server.js';

test('/healthz says why when the agent needs a restart, and an error of the listening socket is reported, not fatal', async (t) => {
  let failure: string | undefined;
  const errors: Error[] = [];
  const server = new HttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics: (_req, res) => res.end(),
    readiness: () => ({ ready: true, reason: '' }),
    health: () => (failure === undefined ? { ready: true, reason: '' } : { ready: false, reason: failure }),
    onError: (err) => errors.push(err),
  });
  const port = await server.listen();
  t.after(() => server.close());
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  failure = 'ICMPv4 socket stopped reading (uv_poll_start failed: bad file descriptor)';
  const unhealthy = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(unhealthy.status, 503);
  assert.equal(await unhealthy.text(), `unhealthy: ${failure}\n`);
  // What net.Server emits when accept fails for want of file descriptors.
  const emfile = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' });
  (server as unknown as { server: import('node:http').Server }).server.emit('error', emfile);
  assert.deepEqual(errors, [emfile]);
  assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200, 'still serving');
});
