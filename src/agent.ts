import type { KubeConfig } from '@kubernetes/client-node';
import type { Meter } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { Config } from './config.js';
import type { KubeClient } from './kube/client.js';
import type { NodeSource } from './kube/node-source.js';
import { RateLimitedLog, type Log } from './log.js';
import { MeshPlanner } from './mesh/planner.js';
import type { IcmpSocket } from './icmp/socket.js';
import type { EngineEvents, EngineInfo, ProbeEngine, ProbeSettings } from './probe/engine.js';
import { PathMtuProbes } from './probe/path-mtu.js';
import type { HttpServer, Readiness } from './server.js';
import { LOOPBACK_TARGETS, staticNodes } from './targets.js';
import { discardCounter, LatencyMetrics, registerAgentGauges, socketErrorCounter, SweepMetrics } from './telemetry/metrics.js';
import { registerNodeSourceGauge } from './telemetry/node-list-metrics.js';
import { metricsServer } from './metrics-server.js';
import { PathMtuMetrics } from './telemetry/path-mtu-metrics.js';
import { Telemetry } from './telemetry/telemetry.js';
import type { Clock, Family, MeshNode, Outcome, Target } from './types.js';

export interface AgentDeps {
  readonly config: Config;
  readonly log: Log;
  readonly clock: Clock;
  /** Wall-clock milliseconds (node ages, lease times); Date.now by default. */
  readonly wallNow?: () => number;
  /** In [0, 1), to spread thousands of agents' retries; Math.random by default. */
  readonly random?: () => number;
  /** Starts the probe engine; rejects with IcmpPermissionError when ICMP is not allowed. */
  readonly startEngine: (settings: ProbeSettings, events: EngineEvents) => Promise<{ engine: ProbeEngine; info: EngineInfo }>;
  /** Present when nodes come from Kubernetes; absent for static targets. */
  readonly kube?: { readonly client: KubeClient; readonly kubeConfig: KubeConfig } | undefined;
  /** This host's IP addresses (canonical): nodes that carry one are skipped like the own node. */
  readonly localAddresses?: ReadonlySet<string>;
  /** Named in permission errors, e.g. system:serviceaccount:mentat:mentat. */
  readonly serviceAccount?: string | undefined;
  readonly resource: Resource;
  readonly randomBytes: (n: number) => Uint8Array;
  readonly delay: (ms: number) => Promise<void>;
  readonly otlpExporter?: PushMetricExporter;
  /** Path-MTU probes' sockets (do-not-fragment datagram ICMP) and route lookup; absent: none are sent. */
  readonly pathMtu?: {
    readonly openSockets: () => ReadonlyMap<Family, IcmpSocket>;
    readonly routeMtu: (address: string, family: Family) => Promise<number>;
  };
}

const METER_NAME = 'mentat';
/** One warning per key and minute: a broken node or a failing destination is a line, not a flood. */
const WARNING_WINDOW_MS = 60_000;

interface Parts {
  readonly engine: ProbeEngine;
  readonly pathMtu: PathMtuProbes | undefined;
  readonly planner: MeshPlanner;
  readonly telemetry: Telemetry;
  readonly server: HttpServer;
  readonly discovery: NodeSource | undefined;
}

/** The whole agent, built from its dependencies: main.ts only adds the process around it. */
export class Agent {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly deps: AgentDeps,
    private readonly parts: Parts,
    readonly port: number,
  ) {}

  static async start(deps: AgentDeps): Promise<Agent> {
    const { config, log, clock } = deps;
    const telemetry = await Telemetry.create({
      resource: deps.resource,
      meterName: METER_NAME,
      maxDestinations: config.maxTargets,
      otlp: config.otlp,
      ...(deps.otlpExporter ? { otlpExporter: deps.otlpExporter } : {}),
    });
    const warnings = new RateLimitedLog(log, WARNING_WINDOW_MS, () => clock.now());
    let planner: MeshPlanner | undefined;
    const reporting = engineEvents(deps, telemetry.meter, warnings, (target, outcome) => planner?.onResult(target, outcome));
    const { engine, info } = await startEngine(deps, reporting.events, telemetry);
    const pathMtu = startPathMtu(deps, info, telemetry, warnings);
    planner = meshPlanner(deps, telemetry, engine, pathMtu);
    const plan = planner;
    registerAgentGauges(telemetry.meter, config.nodeName, () => plan.stats());

    const { discovery, readiness } = await nodeSource(deps, (nodes) => plan.setNodes(nodes), warnings, telemetry.meter);
    const server = metricsServer(config, telemetry, warnings, {
      readiness,
      health: () => {
        const failure = reporting.socketFailure();
        return failure === undefined ? { ready: true, reason: '' } : { ready: false, reason: failure };
      },
    });
    let port: number;
    try {
      port = await server.listen();
    } catch (err) {
      plan.stop();
      await Promise.all([engine.stop(), pathMtu?.probes.stop()]);
      await telemetry.shutdown();
      throw err;
    }
    discovery?.start();
    log.info(
      {
        port,
        intervalMs: config.probeIntervalMs,
        timeoutMs: config.probeTimeoutMs,
        mesh: config.mesh.mode,
        icmp: info.sockets,
        otlp: config.otlp ? `${config.otlp.protocol} ${config.otlp.endpoint}` : 'off',
      },
      'mentat started',
    );
    return new Agent(deps, { engine, pathMtu: pathMtu?.probes, planner: plan, telemetry, server, discovery }, port);
  }

  /**
   * Ordered, idempotent shutdown: stop discovery and scheduling, let probes in
   * flight finish (bounded by their timeout), flush OTLP, close sockets and the server.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const { discovery, planner, engine, pathMtu, telemetry, server } = this.parts;
      await discovery?.stop().catch(() => {});
      planner.stop();
      await Promise.all([engine.stop(), pathMtu?.stop()]);
      await telemetry.shutdown();
      await server.close();
      this.deps.log.info({}, 'mentat stopped');
    })();
    return this.stopping;
  }
}

/**
 * Path-MTU probes beside the engine, on do-not-fragment datagram sockets of their own; none in raw
 * mode (raw-socket cannot set IP_MTU_DISCOVER), which is said once.
 */
function startPathMtu(
  deps: AgentDeps,
  info: EngineInfo,
  telemetry: Telemetry,
  warnings: RateLimitedLog,
): { probes: PathMtuProbes; setTargets: (targets: readonly Target[]) => void } | undefined {
  const { config, log } = deps;
  if (config.mtu.intervalMs === 0 || !deps.pathMtu) return undefined;
  if (!info.sockets.every((s) => s.startsWith('dgram/'))) {
    log.info({}, 'no path-MTU probes: they need datagram ICMP sockets (MENTAT_ICMP_MODE=dgram, net.ipv4.ping_group_range), and this agent uses raw ones');
    return undefined;
  }
  const metrics = new PathMtuMetrics(telemetry.destinations, config.nodeName);
  const settings = probeSettings(config, deps.randomBytes);
  const probes = new PathMtuProbes({
    intervalMs: config.mtu.intervalMs,
    timeoutMs: config.probeTimeoutMs,
    mtuBytes: config.mtu.bytes,
    identifier: settings.identifier,
    cookie: settings.cookie,
    openSockets: deps.pathMtu.openSockets,
    clock: deps.clock,
    routeMtu: deps.pathMtu.routeMtu,
    onResult: (target, result, reportedMtu) => metrics.record(target, result, reportedMtu),
    onSkipped: (target, why) => warnings.warn(`mtu:${target.key}`, { destination: target.name, address: target.address }, `no path-MTU probes: ${why}`),
  });
  return {
    probes,
    setTargets: (targets) => {
      probes.setTargets(targets);
      metrics.retain(new Set(targets.map((t) => t.key)));
    },
  };
}

/** The mesh planner, with the pair and sweep series it records and the engines it schedules. */
function meshPlanner(
  deps: AgentDeps,
  telemetry: Telemetry,
  engine: ProbeEngine,
  pathMtu: { setTargets(targets: readonly Target[]): void } | undefined,
): MeshPlanner {
  const { config } = deps;
  const pairs = new LatencyMetrics({
    sink: telemetry.destinations,
    originNode: config.nodeName,
    bucketsSeconds: config.bucketsSeconds,
    withIpFamily: config.addressFamily === 'dual',
    withZones: config.zoneAttributes,
  });
  const sweep = new SweepMetrics(telemetry.meter, config.nodeName, config.bucketsSeconds);
  return new MeshPlanner({
    config,
    clock: deps.clock,
    wallNow: deps.wallNow ?? Date.now,
    log: deps.log,
    sinks: {
      schedule: (everyInterval, swept) => {
        engine.setTargets(everyInterval, swept);
        pathMtu?.setTargets(everyInterval);
      },
      recordPair: (target, outcome) => pairs.record(target, outcome),
      retainPairs: (keys) => pairs.retain(keys),
      recordSweep: (zone, path, outcome) => sweep.record(zone, path, outcome),
      originZone: (zone) => {
        pairs.setOriginZone(zone);
        sweep.setOriginZone(zone);
      },
    },
  });
}

/**
 * What the probe engine reports: results to the planner (errors also as a warning per destination
 * and minute), socket errors counted and logged, and the first socket that stopped reading kept
 * for /healthz, so that the kubelet restarts the agent.
 */
function engineEvents(
  deps: AgentDeps,
  meter: Meter,
  warnings: RateLimitedLog,
  onResult: (target: Target, outcome: Outcome) => void,
): { events: EngineEvents; socketFailure: () => string | undefined } {
  const { config, log } = deps;
  const socketErrors = socketErrorCounter(meter, config.nodeName);
  let socketFailure: string | undefined;
  const events: EngineEvents = {
    onResult: (target, outcome) => {
      onResult(target, outcome);
      if (outcome.kind === 'error')
        warnings.warn(`probe:${target.key}`, { destination: target.name, address: target.address, reason: outcome.reason }, 'probe failed');
    },
    onSocketError: (message) => {
      socketErrors();
      warnings.warn('icmp-socket', { error: message.slice(0, 300) }, 'an ICMP socket reported an error; probing goes on');
    },
    onSocketFailure: (message) => {
      socketErrors();
      socketFailure ??= message;
      log.error({ error: message.slice(0, 300) }, 'an ICMP socket stopped reading: /healthz fails until the agent restarts');
    },
    onDiscard: discardCounter(meter, config.nodeName),
  };
  return { events, socketFailure: () => socketFailure };
}

/** Starts the engine and says what it could not open, or that it fell back to raw sockets; shuts telemetry down if it fails. */
async function startEngine(deps: AgentDeps, events: EngineEvents, telemetry: Telemetry): Promise<{ engine: ProbeEngine; info: EngineInfo }> {
  const { config, log } = deps;
  let started: { engine: ProbeEngine; info: EngineInfo };
  try {
    started = await deps.startEngine(probeSettings(config, deps.randomBytes), events);
  } catch (err) {
    await telemetry.shutdown();
    throw err;
  }
  for (const m of started.info.missing)
    log.warn({ family: m.family, reason: m.reason }, `no IPv${m.family} ICMP socket: IPv${m.family} targets will count as errors`);
  if (started.info.fellBack) {
    log.info(
      { reason: started.info.fellBack },
      'datagram ICMP is not allowed here, so raw sockets are used (CAP_NET_RAW), whose user-space receive times read about 0.1 ms high; a net.ipv4.ping_group_range that covers the process group gives kernel timestamps',
    );
  }
  return started;
}

/** The engine's settings: a random identifier and cookie per agent, so replies to others are told apart. */
function probeSettings(config: Config, randomBytes: (n: number) => Uint8Array): ProbeSettings {
  return {
    intervalMs: config.probeIntervalMs,
    sweepIntervalMs: config.mesh.sweepIntervalMs,
    maxProbesPerSecond: config.maxProbesPerSecond,
    timeoutMs: config.probeTimeoutMs,
    payloadBytes: config.payloadBytes,
    identifier: Buffer.from(randomBytes(2)).readUInt16BE(0),
    cookie: randomBytes(8),
  };
}

/** Where nodes come from: the Kubernetes API (loaded only then: tens of MiB), or a static list. */
async function nodeSource(
  deps: AgentDeps,
  onNodes: (nodes: MeshNode[]) => void,
  warnings: RateLimitedLog,
  meter: Meter,
): Promise<{ discovery: NodeSource | undefined; readiness: () => Readiness }> {
  const { config } = deps;
  if (!deps.kube) {
    onNodes(staticNodes(config.targets.length > 0 ? config.targets : LOOPBACK_TARGETS, config.addressFamily));
    return { discovery: undefined, readiness: () => ({ ready: true, reason: '' }) };
  }
  const { NodeSource, NODE_SOURCE_MODES } = await import('./kube/node-source.js');
  const { NodeTable } = await import('./mesh/node-table.js');
  const { nodeList } = config;
  const published = nodeList.mode === 'auto' && nodeList.namespace !== undefined;
  const source = new NodeSource({
    client: deps.kube.client,
    kubeConfig: deps.kube.kubeConfig,
    table: new NodeTable(config.addressFamily, config.nodeName, config.probeSelf, deps.localAddresses, config.paths),
    onNodes,
    log: deps.log,
    warnings,
    delay: deps.delay,
    clock: deps.clock,
    random: deps.random ?? Math.random,
    ...(deps.serviceAccount ? { serviceAccount: deps.serviceAccount } : {}),
    ...(published ? { published: { namespace: nodeList.namespace, defaultRefreshS: nodeList.leaseDurationMs / 3000 } } : {}),
  });
  registerNodeSourceGauge(meter, config.nodeName, NODE_SOURCE_MODES, () => source.mode);
  return {
    discovery: source,
    readiness: () => (source.synced ? { ready: true, reason: '' } : { ready: false, reason: `node list not synced yet from ${source.server}` }),
  };
}
