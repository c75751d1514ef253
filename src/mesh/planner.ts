/**
 * The agent's selection unit: from the node list to the probe engine's two schedules (every
 * interval, and the sweep), and from probe outcomes to the right series. Owns the outlier lifecycle
 * and the figures of the agent's own gauges. Time comes from the injected clock.
 */
import type { Config } from '../config.js';
import type { Log } from '../log.js';
import { effectiveIntervalMs } from '../probe/schedule.js';
import type { AgentStats, Clock, MeshNode, NetworkPath, Outcome, SelfState, Target, TargetState } from '../types.js';
import { Baselines, OutlierTracker } from './outliers.js';
import { planMesh, targetsOf, type MeshPlan } from './plan.js';

/** Where the planner's decisions go. */
export interface PlannerSinks {
  /** The engine's two schedules. */
  readonly schedule: (everyInterval: Target[], sweep: Target[]) => void;
  /** Per-pair series (node_latency): peers and outliers. */
  readonly recordPair: (target: Target, outcome: Outcome) => void;
  /** Only these targets keep their per-pair series. */
  readonly retainPairs: (keys: ReadonlySet<string>) => void;
  /** Sweep series, by destination zone. */
  readonly recordSweep: (destinationZone: string | undefined, path: NetworkPath, outcome: Outcome) => void;
  /** The own node's zone changed (zone attributes follow it). */
  readonly originZone: (zone: string | undefined) => void;
}

export interface PlannerOptions {
  readonly config: Pick<Config, 'nodeName' | 'mesh' | 'maxTargets' | 'probeSelf' | 'probeIntervalMs' | 'maxProbesPerSecond'>;
  readonly clock: Clock;
  /** Wall-clock milliseconds: a node's age comes from its creationTimestamp. */
  readonly wallNow: () => number;
  readonly log: Log;
  readonly sinks: PlannerSinks;
}

/** How often outliers are checked for the end of their hold time. */
const EXPIRY_CHECK_MS = 10_000;

const EMPTY_PLAN: MeshPlan = { mode: 'full', peers: [], sweep: [], leaving: 0, overCap: 0, known: 0 };

export class MeshPlanner {
  private nodes: readonly MeshNode[] = [];
  private plan: MeshPlan = EMPTY_PLAN;
  private readonly outliers: OutlierTracker;
  private readonly baselines = new Baselines();
  /** Target key → what it is probed as, for routing its outcomes. */
  private roles = new Map<string, 'peer' | 'tracked' | 'sweep'>();
  private zone: string | undefined;
  private probed = 0;
  private timer: unknown;
  private stopped = false;

  constructor(private readonly options: PlannerOptions) {
    const { mesh } = options.config;
    this.outliers = new OutlierTracker({ max: mesh.outliersMax, holdMs: mesh.outlierHoldMs, latencyExcessSeconds: mesh.outlierLatencySeconds }, () =>
      options.clock.now(),
    );
    this.armExpiry();
  }

  /** A new node list (every node known, the own one included when Kubernetes has it). */
  setNodes(nodes: readonly MeshNode[]): void {
    this.nodes = nodes;
    const self = nodes.find((n) => n.name === this.options.config.nodeName);
    if (self?.zone !== this.zone) {
      this.zone = self?.zone;
      this.options.sinks.originZone(this.zone);
    }
    this.replan();
  }

  /** Routes one probe outcome: per-pair series, sweep series, the outlier lifecycle, the baselines. */
  onResult(target: Target, outcome: Outcome): void {
    const role = this.roles.get(target.key);
    if (role === undefined) return;
    const zone = target.zone ?? '';
    const baseline = this.baselines.median(zone);
    if (role === 'peer') {
      this.options.sinks.recordPair(target, outcome);
      if (outcome.kind === 'success') this.baselines.add(zone, outcome.rttSeconds);
      return;
    }
    if (role === 'tracked') {
      if (this.outliers.stateOf(target.name) === 'outlier') this.options.sinks.recordPair(target, outcome);
      const before = this.outliers.stateOf(target.name);
      if (this.outliers.onProbe(target.name, outcome, baseline)) this.onOutlierChange(target, before);
      return;
    }
    this.options.sinks.recordSweep(target.zone, target.path ?? 'node', outcome);
    if (outcome.kind === 'success' && !this.outliers.isBad(outcome, baseline)) this.baselines.add(zone, outcome.rttSeconds);
    if (this.outliers.onSweep(target.name, outcome, baseline)) {
      this.options.log.debug({ destination: target.name, outcome: outcome.kind }, 'a swept node looks bad: probing it every interval to check');
      this.apply();
    }
  }

  /** The figures of the agent's own gauges. */
  stats(): AgentStats {
    const tracked = this.outliers.tracked;
    const outliers = this.outliers.outliers.length;
    const targets: Record<TargetState, number> = {
      known: this.plan.known,
      probed: this.plan.peers.filter((n) => n.name !== this.options.config.nodeName).length,
      swept: this.plan.sweep.length - tracked.length,
      suspect: tracked.length - outliers,
      outlier: outliers,
      leaving: this.plan.leaving,
      over_cap: this.plan.overCap,
    };
    return { targets, intervalSeconds: this.intervalMs() / 1000, nodeState: this.selfState() };
  }

  /** The own node as Kubernetes describes it; joining while younger than MENTAT_NODE_WARMUP. */
  selfState(): SelfState {
    const self = this.nodes.find((n) => n.name === this.options.config.nodeName);
    if (!self) return 'active';
    if (self.state !== 'active') return self.state;
    const young = self.createdAtMs !== undefined && this.options.wallNow() - self.createdAtMs < this.options.config.mesh.nodeWarmupMs;
    return young ? 'joining' : 'active';
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.options.clock.clearTimer(this.timer);
  }

  private replan(): void {
    const { config, log } = this.options;
    const before = this.plan;
    this.plan = planMesh({
      origin: config.nodeName,
      nodes: this.nodes,
      mesh: config.mesh,
      maxTargets: config.maxTargets,
      probeSelf: config.probeSelf,
      ...(before === EMPTY_PLAN ? {} : { previousMode: before.mode }),
    });
    if (this.plan.mode !== before.mode) {
      const why =
        config.mesh.mode === 'auto'
          ? ` (MENTAT_MESH=auto: ${this.plan.mode === 'full' ? 'at most' : 'more than'} MENTAT_MESH_FULL_MAX=${config.mesh.fullMax} nodes)`
          : '';
      log.info({ mode: this.plan.mode, peers: this.plan.peers.length, swept: this.plan.sweep.length }, `${this.plan.mode} mesh${why}`);
    }
    if (this.plan.overCap > 0 && this.plan.overCap !== before.overCap) {
      log.warn(
        { maxTargets: config.maxTargets, overCap: this.plan.overCap },
        'more destinations than MENTAT_MAX_TARGETS: the rest are swept, not probed every interval (see mentat_targets{state="over_cap"})',
      );
    }
    this.outliers.retain(new Set(this.plan.sweep.map((n) => n.name)));
    this.apply();
  }

  /** Hands the engine its schedules and drops per-pair series that no longer have a reason. */
  private apply(): void {
    if (this.stopped) return;
    const tracked = new Set(this.outliers.tracked);
    const trackedNodes = this.plan.sweep.filter((n) => tracked.has(n.name));
    const swept = this.plan.sweep.filter((n) => !tracked.has(n.name));
    const roles = new Map<string, 'peer' | 'tracked' | 'sweep'>();
    for (const t of targetsOf(swept)) roles.set(t.key, 'sweep');
    for (const t of targetsOf(trackedNodes)) roles.set(t.key, 'tracked');
    for (const t of targetsOf(this.plan.peers)) roles.set(t.key, 'peer');
    this.roles = roles;
    const everyInterval = [...targetsOf(this.plan.peers), ...targetsOf(trackedNodes)];
    this.warnIfStretched(everyInterval.length);
    this.options.sinks.schedule(everyInterval, targetsOf(swept));
    const outliers = new Set(this.outliers.outliers);
    const withSeries = [...targetsOf(this.plan.peers), ...targetsOf(trackedNodes.filter((n) => outliers.has(n.name)))];
    this.options.sinks.retainPairs(new Set(withSeries.map((t) => t.key)));
  }

  private intervalMs(probed = this.probed): number {
    return effectiveIntervalMs(this.options.config.probeIntervalMs, probed, this.options.config.maxProbesPerSecond);
  }

  private warnIfStretched(probed: number): void {
    const { config, log } = this.options;
    const interval = this.intervalMs(probed);
    if (interval !== this.intervalMs() && interval > config.probeIntervalMs) {
      log.warn(
        { targets: probed, maxPps: config.maxProbesPerSecond, intervalMs: Math.round(interval) },
        'probe budget reached: the interval is stretched (see mentat_probe_interval_seconds)',
      );
    }
    this.probed = probed;
  }

  private onOutlierChange(target: Target, before: string | undefined): void {
    const now = this.outliers.stateOf(target.name);
    const { mesh, nodeName } = this.options.config;
    if (now === 'outlier') {
      this.options.log.info(
        { origin: nodeName, destination: target.name },
        `the pair ${nodeName} → ${target.name} is an outlier: it has node_latency series of its own until it has looked normal for ${mesh.outlierHoldMs / 60_000} min`,
      );
    } else if (before === 'suspect') {
      this.options.log.debug({ destination: target.name }, 'a suspect swept node looks normal: back to the sweep');
    }
    this.apply();
  }

  private armExpiry(): void {
    this.timer = this.options.clock.setTimer(() => {
      if (this.stopped) return;
      if (this.outliers.expire()) this.apply();
      this.armExpiry();
    }, EXPIRY_CHECK_MS);
  }
}
