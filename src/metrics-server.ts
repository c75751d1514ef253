/** The one HTTP server of either role: /metrics through a shared-collection endpoint, /healthz, /readyz; failures to accept are logged, not fatal. */
import type { Config } from './config.js';
import type { RateLimitedLog } from './log.js';
import { HttpServer, type Readiness } from './server.js';
import { MetricsEndpoint } from './telemetry/exposition.js';
import type { Telemetry } from './telemetry/telemetry.js';

export function metricsServer(
  config: Pick<Config, 'metricsHost' | 'metricsPort'>,
  telemetry: Telemetry,
  warnings: RateLimitedLog,
  checks: { readonly readiness: () => Readiness; readonly health?: () => Readiness },
): HttpServer {
  const endpoint = new MetricsEndpoint({
    collect: () => telemetry.prometheus.collect(),
    onCollectionErrors: (errors) => warnings.warn('collect', { errors: errors.map(String) }, 'metrics collection errors'),
  });
  return new HttpServer({
    host: config.metricsHost,
    port: config.metricsPort,
    metrics: (req, res) => void endpoint.serve(req, res),
    ...checks,
    onError: (err) => warnings.warn('http-server', { error: err.message }, 'the metrics port failed to accept a connection; it goes on serving'),
  });
}
