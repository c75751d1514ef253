import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Readiness {
  ready: boolean;
  /** Said in the /readyz body when not ready. */
  reason: string;
}

/** Bounds on what clients of the port can hold; the defaults suit a pod's 128 MiB. */
export interface ServerLimits {
  /**
   * Connections at once; more are closed at accept. Each may hold a piece of /metrics (~80 KiB) in
   * flight and has the kernel buffer MiBs of it: a crowd of trickling readers costs that much
   * serialization per response deadline. Prometheus keeps its connection open between scrapes.
   */
  readonly maxConnections: number;
  /** Every response ends by then, however slowly its client reads: a trickle never holds a snapshot for good. */
  readonly responseDeadlineMs: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxConnections: 32,
  // Prometheus gives up on a scrape after its scrape_timeout (10 s by default, at most the interval).
  responseDeadlineMs: 20_000,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 30_000,
};

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  readonly limits?: Partial<ServerLimits>;
  /** Errors of the listening socket once it listens (EMFILE on accept): logged, never fatal. */
  readonly onError?: (error: Error) => void;
  /** Serves /metrics; the Prometheus exporter's request handler. */
  readonly metrics: (req: IncomingMessage, res: ServerResponse) => void;
  readonly readiness: () => Readiness;
  /** /healthz: 503 with the reason when the process cannot do its job without a restart. Always healthy if absent. */
  readonly health?: () => Readiness;
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** One port for /metrics, /healthz and /readyz; GET and HEAD only, no request bodies. */
export class HttpServer {
  private readonly server: Server;
  private closing: Promise<void> | undefined;
  private listening = false;
  private readonly limits: ServerLimits;

  constructor(private readonly options: ServerOptions) {
    const limits = { ...DEFAULT_SERVER_LIMITS, ...options.limits };
    this.limits = limits;
    this.server = createServer({ maxHeaderSize: 8192, requestTimeout: limits.requestTimeoutMs, headersTimeout: limits.headersTimeoutMs }, (req, res) =>
      this.handle(req, res),
    );
    // A scrape that hangs must not hold a socket forever.
    this.server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    this.server.maxConnections = limits.maxConnections;
    // Always there: without a listener, an 'error' (EMFILE when accepting) would end the process.
    this.server.on('error', (err) => {
      if (this.listening) this.options.onError?.(err);
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const deadline = setTimeout(() => res.destroy(), this.limits.responseDeadlineMs);
    deadline.unref();
    res.once('close', () => clearTimeout(deadline));
    this.route(req, res);
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
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
      case '/healthz': {
        const health = this.options.health?.() ?? { ready: true, reason: '' };
        reply(res, health.ready ? 200 : 503, health.ready ? 'ok\n' : `unhealthy: ${health.reason}\n`);
        return;
      }
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
        this.listening = true;
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
