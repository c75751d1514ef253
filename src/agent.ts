import type { KubeConfig } from '@kubernetes/client-node';
import type { Resource } from '@opentelemetry/resources';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { Config } from './config.js';
import type { KubeClient } from './kube/client.js';
import type { NodeDiscovery } from './kube/discovery.js';
import { selectTargets } from './mesh/selection.js';
import type { EngineInfo, ProbeEngine, ProbeSettings } from './probe/engine.js';
import { effectiveIntervalMs } from './probe/prober.js';
import { RateLimitedLog, type Log } from './log.js';
import { HttpServer, type Readiness } from './server.js';
import { LOOPBACK_TARGETS, staticTargets } from './targets.js';
import { serveMetrics } from './telemetry/exposition.js';
import { LatencyMetrics } from './telemetry/metrics.js';
import { Telemetry } from './telemetry/telemetry.js';
import type { Clock, Outcome, Target } from './types.js';

export interface AgentDeps {
  readonly config: Config;
  readonly log: Log;
  readonly clock: Clock;
  /** Starts the probe engine; rejects with IcmpPermissionError when ICMP is not allowed. */
  readonly startEngine: (settings: ProbeSettings, onResult: (target: Target, outcome: Outcome) => void) => Promise<{ engine: ProbeEngine; info: EngineInfo }>;
  /** Present when nodes come from Kubernetes; absent for static targets. */
  readonly kube?: { readonly client: KubeClient; readonly kubeConfig: KubeConfig } | undefined;
  /** This host's IP addresses (canonical): nodes that carry one are skipped like the own node. */
  readonly localAddresses?: ReadonlySet<string>;
  /** Named in permission errors, e.g. system:serviceaccount:monitoring:mentat. */
  readonly serviceAccount?: string | undefined;
  readonly resource: Resource;
  readonly randomBytes: (n: number) => Uint8Array;
  readonly delay: (ms: number) => Promise<void>;
  readonly otlpExporter?: PushMetricExporter;
}

const METER_NAME = 'mentat';

/** The whole agent, built from its dependencies: main.ts only adds the process around it. */
export class Agent {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly deps: AgentDeps,
    readonly port: number,
    private readonly engine: ProbeEngine,
    private readonly telemetry: Telemetry,
    private readonly server: HttpServer,
    readonly metrics: LatencyMetrics,
    private readonly discovery: NodeDiscovery | undefined,
    private readonly countTargets: () => number,
    private readonly stopResampling: () => void,
  ) {}

  static async start(deps: AgentDeps): Promise<Agent> {
    const { config, log, clock } = deps;
    const telemetry = await Telemetry.create({ resource: deps.resource, meterName: METER_NAME, maxDestinations: config.maxTargets, otlp: config.otlp, ...(deps.otlpExporter ? { otlpExporter: deps.otlpExporter } : {}) });
    const metrics = new LatencyMetrics({
      sink: telemetry.destinations,
      originNode: config.nodeName,
      bucketsSeconds: config.bucketsSeconds,
      withIpFamily: config.addressFamily === 'dual',
      withZones: config.zoneAttributes,
    });
    const warnings = new RateLimitedLog(log, 60_000, () => clock.now());
    const onResult = (target: Target, outcome: Outcome): void => {
      metrics.record(target, outcome);
      if (outcome.kind === 'error') {
        warnings.warn(`probe:${target.key}`, { destination: target.name, address: target.address, reason: outcome.reason }, 'probe failed');
      }
    };
    const identifier = Buffer.from(deps.randomBytes(2)).readUInt16BE(0);
    let started: { engine: ProbeEngine; info: EngineInfo };
    try {
      started = await deps.startEngine(
        {
          intervalMs: config.probeIntervalMs,
          maxProbesPerSecond: config.maxProbesPerSecond,
          timeoutMs: config.probeTimeoutMs,
          payloadBytes: config.payloadBytes,
          identifier,
          cookie: deps.randomBytes(8),
        },
        onResult,
      );
    } catch (err) {
      await telemetry.shutdown();
      throw err;
    }
    const { engine, info } = started;
    for (const m of info.missing) log.warn({ family: m.family, reason: m.reason }, `no IPv${m.family} ICMP socket: IPv${m.family} targets will count as errors`);
    // Discovery hands over every candidate; selection (sampling, cap) decides what is probed.
    let candidates: Target[] = [];
    let probed = 0;
    let overCap = 0;
    let epoch = 0;
    let originZone: () => string | undefined = () => undefined;
    const apply = (): void => {
      const selection = selectTargets(candidates, { origin: config.nodeName, originZone: originZone(), perZone: config.samplePerZone, maxTargets: config.maxTargets }, epoch);
      if (selection.overCap !== overCap && selection.overCap > 0) {
        log.warn({ maxTargets: config.maxTargets, overCap: selection.overCap }, 'more targets than MENTAT_MAX_TARGETS: the rest are not probed (see mentat_targets{state="over_cap"})');
      }
      const interval = effectiveIntervalMs(config.probeIntervalMs, selection.selected.length, config.maxProbesPerSecond);
      if (interval !== effectiveIntervalMs(config.probeIntervalMs, probed, config.maxProbesPerSecond) && interval > config.probeIntervalMs) {
        log.warn({ targets: selection.selected.length, maxPps: config.maxProbesPerSecond, intervalMs: Math.round(interval) }, 'probe budget reached: the interval is stretched (see mentat_probe_interval_seconds)');
      }
      overCap = selection.overCap;
      probed = selection.selected.length;
      engine.setTargets(selection.selected);
      metrics.retain(new Set(selection.selected.map((t) => t.key)));
      log.debug({ candidates: candidates.length, targets: probed, overCap }, 'targets updated');
    };
    const setTargets = (targets: Target[]): void => {
      candidates = targets;
      metrics.setOriginZone(originZone());
      apply();
    };
    let resampleTimer: unknown;
    const resample = (): void => {
      epoch++;
      apply();
      resampleTimer = clock.setTimer(resample, config.resampleIntervalMs);
    };
    if (config.samplePerZone > 0) resampleTimer = clock.setTimer(resample, config.resampleIntervalMs);

    telemetry.meter
      .createObservableGauge('mentat_targets', { description: 'Targets known to this agent: probed, or over_cap (left out by MENTAT_MAX_TARGETS)' })
      .addCallback((result) => {
        result.observe(probed, { origin_node: config.nodeName, state: 'probed' });
        result.observe(overCap, { origin_node: config.nodeName, state: 'over_cap' });
      });
    telemetry.meter
      .createObservableGauge('mentat_probe_interval_seconds', { description: 'The interval each target is probed at, after the MENTAT_MAX_PPS budget', unit: 's' })
      .addCallback((result) => result.observe(effectiveIntervalMs(config.probeIntervalMs, probed, config.maxProbesPerSecond) / 1000, { origin_node: config.nodeName }));

    let discovery: NodeDiscovery | undefined;
    let readiness: () => Readiness;
    if (deps.kube) {
      // The Kubernetes client is large (tens of MiB): loaded only when nodes come from the API.
      const { NodeDiscovery } = await import('./kube/discovery.js');
      const { NodeTable } = await import('./kube/node-table.js');
      const table = new NodeTable(config.addressFamily, config.nodeName, config.probeSelf, deps.localAddresses);
      originZone = () => table.selfZone;
      discovery = new NodeDiscovery({
        client: deps.kube.client,
        kubeConfig: deps.kube.kubeConfig,
        table,
        onTargets: setTargets,
        log,
        warnings,
        delay: deps.delay,
        ...(deps.serviceAccount ? { serviceAccount: deps.serviceAccount } : {}),
      });
      const d = discovery;
      readiness = () => (d.synced ? { ready: true, reason: '' } : { ready: false, reason: `node list not synced yet from ${d.server}` });
    } else {
      const list = config.targets.length > 0 ? config.targets : LOOPBACK_TARGETS;
      setTargets(staticTargets(list, config.addressFamily));
      readiness = () => ({ ready: true, reason: '' });
    }

    const server = new HttpServer({
      host: config.metricsHost,
      port: config.metricsPort,
      metrics: (req, res) =>
        void serveMetrics(req, res, () => telemetry.prometheus.collect(), (errors) => warnings.warn('collect', { errors: errors.map(String) }, 'metrics collection errors')),
      readiness,
    });
    let port: number;
    try {
      port = await server.listen();
    } catch (err) {
      await engine.stop();
      await telemetry.shutdown();
      throw err;
    }
    discovery?.start();
    log.info(
      {
        port,
        intervalMs: config.probeIntervalMs,
        timeoutMs: config.probeTimeoutMs,
        icmp: info.sockets,
        identifier,
        otlp: config.otlp ? `${config.otlp.protocol} ${config.otlp.endpoint}` : 'off',
      },
      'mentat started',
    );
    const stopResampling = () => {
      if (resampleTimer !== undefined) clock.clearTimer(resampleTimer);
    };
    return new Agent(deps, port, engine, telemetry, server, metrics, discovery, () => probed, stopResampling);
  }

  get targetCount(): number {
    return this.countTargets();
  }

  /**
   * Ordered, idempotent shutdown: stop discovery and scheduling, let probes in
   * flight finish (bounded by their timeout), flush OTLP, close sockets and the server.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.discovery?.stop().catch(() => {});
      this.stopResampling();
      await this.engine.stop();
      await this.telemetry.shutdown();
      await this.server.close();
      this.deps.log.info({}, 'mentat stopped');
    })();
    return this.stopping;
  }
}
