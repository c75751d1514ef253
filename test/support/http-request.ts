/** One HTTP request without keep-alive, as the tests and the fault control process both make it: a failure is status 0 with the reason as the body. */
import { request } from 'node:http';

export interface HttpResult {
  status: number;
  body: string;
  headers: Record<string, string>;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** Default 5 s. */
  timeoutMs?: number;
}

export function httpRequest(url: string, opts: HttpRequestOptions = {}): Promise<HttpResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve) => {
    const failed = (e: Error) => resolve({ status: 0, body: e.message, headers: {} });
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)])),
        }),
      );
      res.on('error', failed);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', failed);
    req.end();
  });
}
