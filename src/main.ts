#!/usr/bin/env node
/** The composition root: the only module that reads the process (env, argv, signals, clocks) and exits. */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { KubeConfig } from '@kubernetes/client-node';
import { networkInterfaces } from 'node:os';
import type { Agent } from './agent.js';
import { canonicalAddress } from './address.js';
import { ConfigError, loadConfig, usage } from './config.js';
import { findKubeSource } from './kube-source.js';
import { RateLimitedLog } from './log.js';
import type { Clock } from './prober.js';

/** The service account a pod runs as, from its token's `sub` claim, to name in permission errors. */
function serviceAccountName(): string | undefined {
  try {
    const token = readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/token', 'utf8');
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

const EXIT_CONFIG = 2;
const EXIT_FAILURE = 1;
const SHUTDOWN_DEADLINE_MS = 4500;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`mentat: ICMP latency between Kubernetes nodes as OpenTelemetry metrics\n\nSettings (flag, environment variable, meaning):\n${usage()}\n`);
    return;
  }

  let loaded;
  try {
    loaded = loadConfig({ env: process.env, argv, hostname: hostname() });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`mentat: invalid configuration: ${err.message}\n`);
    process.exitCode = EXIT_CONFIG;
    return;
  }
  const { config, warnings } = loaded;
  // Loaded after validation: a bad setting is reported at once, not after seconds of module loading.
  const { diag, DiagLogLevel } = await import('@opentelemetry/api');
  const { setGlobalErrorHandler } = await import('@opentelemetry/core');
  const { detectResources, envDetector, resourceFromAttributes } = await import('@opentelemetry/resources');
  const { Agent } = await import('./agent.js');
  const { startEngine, ProcessEngine } = await import('./engine.js');
  const { InlineEngine } = await import('./probing.js');
  const log = pino({ level: config.logLevel, base: { node: config.nodeName } });
  for (const warning of warnings) log.warn({}, warning);

  const clock: Clock = {
    now: () => performance.now(),
    setTimer: (fn, ms) => setTimeout(fn, ms),
    clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };

  // OTel reports export failures through diag; one line a minute per kind is enough.
  const diagLimited = new RateLimitedLog(log, 60_000, clock.now);
  diag.setLogger(
    {
      error: (message, ...args) => diagLimited.warn(`otel:${message.slice(0, 80)}`, { detail: args.map(String).join(' ').slice(0, 500) }, `OpenTelemetry: ${message}`),
      warn: (message, ...args) => diagLimited.warn(`otel:${message.slice(0, 80)}`, { detail: args.map(String).join(' ').slice(0, 500) }, `OpenTelemetry: ${message}`),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    DiagLogLevel.WARN,
  );
  // Export failures reach the global error handler; the default one logs a stack trace as the message.
  setGlobalErrorHandler((err) => diagLimited.warn('otel:export', { err: String((err as Error)?.message ?? err).slice(0, 500) }, 'OTLP export failed; retrying at the next interval'));

  let kubeConfig: KubeConfig | undefined;
  if (config.discovery !== 'static' && config.targets.length === 0) {
    const source = findKubeSource({ env: process.env, kubeconfig: config.kubeconfig, home: homedir(), exists: existsSync });
    if (source.kind === 'none') {
      if (config.discovery === 'kubernetes') {
        log.fatal({}, 'MENTAT_DISCOVERY=kubernetes but no Kubernetes configuration was found: run in a pod with a service account, or set KUBECONFIG');
        process.exitCode = EXIT_CONFIG;
        return;
      }
      log.info({}, 'no Kubernetes configuration found (no service account, KUBECONFIG or ~/.kube/config): probing the loopback; set MENTAT_TARGETS=name=address,... to probe other hosts');
    } else {
      try {
        (await import('./kube-loader.js')).loadLessOfKubernetesClient();
        const { loadKubeConfig } = await import('./discovery.js');
        kubeConfig = loadKubeConfig(source);
      } catch (err) {
        log.fatal({ source }, `cannot load the Kubernetes configuration: ${(err as Error).message}`);
        process.exitCode = EXIT_CONFIG;
        return;
      }
      log.info({ source: source.kind === 'file' ? source.path : 'in-cluster', server: kubeConfig.getCurrentCluster()?.server }, 'discovering nodes through the Kubernetes API');
    }
  } else if (config.targets.length > 0) {
    log.info({ targets: config.targets.length }, 'probing static targets from MENTAT_TARGETS');
  }

  const base = resourceFromAttributes({ 'service.name': 'mentat', 'k8s.node.name': config.nodeName, 'host.name': hostname() });
  const resource = base.merge(detectResources({ detectors: [envDetector] }));

  const onRawProcessCrash = (err: Error): void => {
    log.fatal({ err: err.message }, 'the raw-mode probe process died; exiting so that the agent is restarted');
    process.exit(EXIT_FAILURE);
  };

  let agent: Agent;
  try {
    agent = await Agent.start({
      config,
      log,
      clock,
      startEngine: (settings, onResult) =>
        startEngine(config.icmpMode, {
          dgram: () => new InlineEngine(settings, clock, onResult),
          raw: () => new ProcessEngine({ settings }, onResult, onRawProcessCrash),
        }),
      kubeConfig,
      serviceAccount: kubeConfig ? serviceAccountName() : undefined,
      localAddresses: new Set(
        Object.values(networkInterfaces())
          .flat()
          .flatMap((i) => (i ? [canonicalAddress(i.address)] : [])),
      ),
      resource,
      randomBytes: (n) => randomBytes(n),
      delay: (ms) => sleep(ms, undefined, { ref: false }),
    });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, `mentat cannot start: ${(err as Error).message}`);
    process.exitCode = EXIT_FAILURE;
    return;
  }

  const shutdown = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    // Exit well inside the pod's grace period even if a flush hangs.
    setTimeout(() => {
      log.warn({}, 'shutdown took too long; exiting anyway');
      process.exit(0);
    }, SHUTDOWN_DEADLINE_MS).unref();
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: String(err) }, 'error during shutdown');
        process.exit(0);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

process.on('unhandledRejection', (reason) => {
  // Background work reports and goes on; reaching here is a bug worth a line, not a crash.
  process.stderr.write(`${JSON.stringify({ level: 50, msg: 'unhandled rejection', reason: String(reason) })}\n`);
});

main().catch((err: unknown) => {
  process.stderr.write(`mentat: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
