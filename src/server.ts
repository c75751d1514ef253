import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Readiness {
  ready: boolean;
  /** Said in the /readyz body when not ready. */
  reason: string;
}

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  /** Serves /metrics; the Prometheus exporter's request handler. */
  readonly metrics: (req: IncomingMessage, res: ServerResponse) => void;
  readonly readiness: () => Readiness;
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** One port for /metrics, /healthz and /readyz; GET and HEAD only, no request bodies. */
export class HttpServer {
  private readonly server: Server;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ServerOptions) {
    this.server = createServer({ maxHeaderSize: 8192, requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => this.handle(req, res));
    // A scrape that hangs must not hold a socket forever.
    this.server.keepAliveTimeout = 30_000;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(res, 405, 'only GET and HEAD are allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    if (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined) {
      reply(res, 413, 'requests carry no body here\n', { connection: 'close' });
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/metrics':
        this.options.metrics(req, res);
        return;
      case '/healthz':
        reply(res, 200, 'ok\n');
        return;
      case '/readyz': {
        const readiness = this.options.readiness();
        reply(res, readiness.ready ? 200 : 503, readiness.ready ? 'ready\n' : `not ready: ${readiness.reason}\n`);
        return;
      }
      case '/':
        reply(res, 200, 'mentat: /metrics /healthz /readyz\n');
        return;
      default:
        reply(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
    }
  }

  /** Resolves with the bound port (useful with port 0); `::` falls back to 0.0.0.0 on hosts without IPv6. */
  async listen(): Promise<number> {
    try {
      return await this.listenOn(this.options.host);
    } catch (err) {
      const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      if (this.options.host !== '::' || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
      return this.listenOn('0.0.0.0');
    }
  }

  private listenOn(host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'EADDRINUSE' ? `: another process uses port ${this.options.port}; set MENTAT_METRICS_PORT` : '';
        reject(new Error(`cannot listen on ${host}:${this.options.port} (${err.code ?? err.message})${hint}`, { cause: err }));
      };
      this.server.once('error', onError);
      this.server.listen(this.options.port, host, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      // Scrapes still running get a moment, then their sockets go too.
      setTimeout(() => this.server.closeAllConnections(), 1000).unref();
    });
    return this.closing;
  }
}
