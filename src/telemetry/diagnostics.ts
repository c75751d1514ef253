/** Where OpenTelemetry's own complaints go: rate-limited warnings in the agent's log, not stack traces. */
import { diag, DiagLogLevel } from '@opentelemetry/api';
import { setGlobalErrorHandler } from '@opentelemetry/core';
import { RateLimitedLog, type Log } from '../log.js';

/** One line a minute per kind of OTel complaint (export failures repeat at every interval). */
const WINDOW_MS = 60_000;

/** Routes OTel's diag logger and global error handler (export failures) to `log`. */
export function routeOtelDiagnostics(log: Log, now: () => number): void {
  const limited = new RateLimitedLog(log, WINDOW_MS, now);
  const warn = (message: string, ...args: unknown[]): void =>
    limited.warn(`otel:${message.slice(0, 80)}`, { detail: args.map(String).join(' ').slice(0, 500) }, `OpenTelemetry: ${message}`);
  diag.setLogger({ error: warn, warn, info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);
  // The default handler logs a stack trace as the message.
  setGlobalErrorHandler((err) =>
    limited.warn(
      'otel:export',
      { err: (err instanceof Error ? err.message : JSON.stringify(err)).slice(0, 500) },
      'OTLP export failed; retrying at the next interval',
    ),
  );
}
