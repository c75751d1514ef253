#!/usr/bin/env node
/** The composition root: the only module that reads the process (env, argv, signals, clocks) and exits. */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir, hostname, networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { Agent, AgentDeps } from './agent.js';
import { ConfigError, loadConfig, usage, type Config } from './config.js';
import { canonicalAddress } from './icmp/address.js';
import { findKubeSource, SERVICE_ACCOUNT_TOKEN, serviceAccountOf } from './kube/kubeconfig.js';
import type { Log } from './log.js';
import { systemClock as clock } from './types.js';

/** The service account this pod runs as, to name in permission errors. */
function serviceAccountName(): string | undefined {
  try {
    return serviceAccountOf(readFileSync(SERVICE_ACCOUNT_TOKEN, 'utf8'));
  } catch {
    return undefined;
  }
}

const EXIT_CONFIG = 2;
const EXIT_FAILURE = 1;
const SHUTDOWN_DEADLINE_MS = 4500;

/** The first Node with everything the agent and its dependencies use (client-node 2 needs >= 22.19, the OTel SDK >= 22.15). */
const NODE_MAJOR = 24;

/** package.json's version: dist/src/main.js sits two folders below it, in the repository and in the image. */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

type FatalLog = Log & { fatal(fields: object, message: string): void };
type Resource = AgentDeps['resource'];

/** --help, --version and a Node too old: answered here, and true when start-up goes no further. */
function answeredBeforeStart(argv: readonly string[]): boolean {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < NODE_MAJOR) {
    process.stderr.write(
      `mentat: needs Node.js ${NODE_MAJOR} or newer; this is ${process.version} (${process.execPath}). ` +
        'In the repository run `npm start` (it uses the Node 24 that `npm ci` installs in node_modules/.bin), or node_modules/.bin/node dist/src/main.js\n',
    );
    process.exitCode = EXIT_FAILURE;
    return true;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      `mentat ${version()}: ICMP latency between Kubernetes nodes as OpenTelemetry metrics\n\nSettings (flag, environment variable [values], meaning):\n${usage()}\n`,
    );
    return true;
  }
  if (argv.includes('--version')) {
    process.stdout.write(`mentat ${version()}\n`);
    return true;
  }
  return false;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (answeredBeforeStart(argv)) return;
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
  const { detectResources, envDetector, resourceFromAttributes } = await import('@opentelemetry/resources');
  const { routeOtelDiagnostics } = await import('./telemetry/diagnostics.js');
  const log = pino({ level: config.logLevel, base: { node: config.nodeName } });
  for (const warning of warnings) log.warn({}, warning);

  routeOtelDiagnostics(log, () => clock.now());

  const kube = await connectKubernetes(config, log);
  if (kube === 'exit') return;

  const base = resourceFromAttributes({ 'service.name': 'mentat', 'k8s.node.name': config.nodeName, 'host.name': hostname() });
  const resource = base.merge(detectResources({ detectors: [envDetector] }));
  if (config.role === 'controller') await runController(config, log, kube, resource);
  else await runAgent(config, log, kube, resource);
}

/** MENTAT_ROLE=controller: the node list's writer, until a signal. */
async function runController(config: Config, log: FatalLog, kube: AgentDeps['kube'], resource: Resource): Promise<void> {
  const namespace = config.nodeList.namespace;
  if (!kube || namespace === undefined) {
    log.fatal(
      {},
      'MENTAT_ROLE=controller needs Kubernetes (a service account, or KUBECONFIG) and POD_NAMESPACE (where the node list lives; the mentat-controller Deployment sets both)',
    );
    process.exitCode = EXIT_CONFIG;
    return;
  }
  const { Controller } = await import('./controller.js');
  let controller;
  try {
    controller = await Controller.start({
      config,
      namespace,
      log,
      clock,
      wallNow: Date.now,
      random: Math.random,
      delay: (ms) => sleep(ms, undefined, { ref: false }),
      kube,
      serviceAccount: serviceAccountName(),
      resource,
    });
  } catch (err) {
    log.fatal({}, `mentat-controller cannot start: ${(err as Error).message}`);
    process.exitCode = EXIT_FAILURE;
    return;
  }
  const running = controller;
  stopOnSignals(log, () => running.stop());
}

/** The agent (MENTAT_ROLE=agent, the default): probing, until a signal. */
async function runAgent(config: Config, log: FatalLog, kube: AgentDeps['kube'], resource: Resource): Promise<void> {
  const { Agent } = await import('./agent.js');
  const { startEngine } = await import('./probe/engine.js');
  const { LocalEngine } = await import('./probe/local-engine.js');
  const { ProcessEngine } = await import('./probe/process-engine.js');
  const { openIcmpSockets } = await import('./icmp/open.js');
  const { routeMtu } = await import('./icmp/route-mtu.js');
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
      startEngine: (settings, events) =>
        startEngine(config.icmpMode, {
          dgram: () => new LocalEngine(() => openIcmpSockets('dgram', () => clock.now()), settings, clock, events),
          raw: () => new ProcessEngine({ settings }, events, onRawProcessCrash),
        }),
      kube,
      serviceAccount: kube ? serviceAccountName() : undefined,
      localAddresses: new Set(
        Object.values(networkInterfaces())
          .flat()
          .flatMap((i) => (i ? [canonicalAddress(i.address)] : [])),
      ),
      resource,
      randomBytes: (n) => randomBytes(n),
      delay: (ms) => sleep(ms, undefined, { ref: false }),
      pathMtu: { openSockets: () => openIcmpSockets('dgram', () => clock.now(), { dontFragment: true }).sockets, routeMtu: (a, f) => routeMtu(a, f) },
    });
  } catch (err) {
    log.fatal({}, `mentat cannot start: ${(err as Error).message}`);
    process.exitCode = EXIT_FAILURE;
    return;
  }

  stopOnSignals(log, () => agent.stop());
}

/** SIGTERM and SIGINT: one orderly stop, exit 0 well inside the pod's grace period even if a flush hangs. */
function stopOnSignals(log: Log, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (signal: string): void => {
    // Ctrl-C under npm reaches the process twice (from the terminal and from npm): one orderly stop.
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.warn({}, 'shutdown took too long; exiting anyway');
      process.exit(0);
    }, SHUTDOWN_DEADLINE_MS).unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: String(err) }, 'error during shutdown');
        process.exit(0);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/**
 * Finds and loads the cluster's configuration. Undefined means static targets or the loopback;
 * 'exit' means start-up failed and the exit code is set.
 */
async function connectKubernetes(config: Config, log: FatalLog): Promise<AgentDeps['kube'] | 'exit'> {
  if (config.discovery === 'static' || config.targets.length > 0) {
    if (config.targets.length > 0) log.info({ targets: config.targets.length }, 'probing static targets from MENTAT_TARGETS');
    return undefined;
  }
  const source = findKubeSource({ env: process.env, kubeconfig: config.kubeconfig, home: homedir(), exists: existsSync });
  if (source.kind === 'none') {
    if (config.role === 'controller') return undefined; // main says what the controller needs
    if (config.discovery === 'kubernetes') {
      log.fatal({}, 'MENTAT_DISCOVERY=kubernetes but no Kubernetes configuration was found: run in a pod with a service account, or set KUBECONFIG');
      process.exitCode = EXIT_CONFIG;
      return 'exit';
    }
    log.info(
      {},
      'no Kubernetes configuration found (no service account, KUBECONFIG or ~/.kube/config): probing the loopback; set MENTAT_TARGETS=name=address,... to probe other hosts',
    );
    return undefined;
  }
  const { bootstrapKubernetes } = await import('./kube/kubeconfig.js');
  const kube = await bootstrapKubernetes(source);
  if (kube.kind !== 'ready') {
    log.fatal({ source }, kube.message);
    process.exitCode = kube.kind === 'config' ? EXIT_CONFIG : EXIT_FAILURE;
    return 'exit';
  }
  log.info({ source: source.kind === 'file' ? source.path : 'in-cluster', server: kube.server }, 'discovering nodes through the Kubernetes API');
  return { client: kube.client, kubeConfig: kube.kubeConfig };
}

process.on('unhandledRejection', (reason) => {
  // Background work reports and goes on; reaching here is a bug worth a line, not a crash.
  process.stderr.write(`${JSON.stringify({ level: 50, msg: 'unhandled rejection', reason: String(reason) })}\n`);
});

main().catch((err: unknown) => {
  process.stderr.write(`mentat: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
