/**
 * Section 5, API load: one size's fake API server (server.ts, in the agents' namespace) and the
 * processes run against it, each with a token of its own; what the server counted for each, and
 * the measurement window over several of them.
 */
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from '../../test/support/agent-process.js';
import { IpcRpc, type OpOf } from '../../test/support/ipc-rpc.js';
import { progress, type Ctx } from '../context.js';
import { CpuLimits } from '../cpu-limit.js';
import { controllerEnv, daemonSetEnv } from '../daemonset.js';
import { gaugeOf, untilPublished } from '../node-list.js';
import { startMentat, sumOf, type Mentat } from '../tools.js';
import { MeasurementWindow } from '../window.js';
import { NAMESPACE, type ApiParams, type Figures, type StartCost } from './params.js';
import type { ApiServerRequest, LoadSnapshot } from './server.js';
import { delta, trafficOf } from './traffic.js';

const SERVER_PATH = fileURLToPath(new URL('./server.js', import.meta.url));
/** The fake API server holds 100 000 kubelet-sized Nodes in a few GiB: more than V8's default heap. */
const SERVER_HEAP_MIB = 16_384;

/** A process of the section: the agent or controller, the user its token names, and when it was started. */
export interface Proc {
  m: Mentat;
  user: string;
  t0: number;
}

/** `env` with V8's heap set to `mib` (undefined: as it is). */
const withHeap = (env: Record<string, string>, mib: number | undefined): Record<string, string> =>
  mib === undefined ? env : { ...env, NODE_OPTIONS: (env['NODE_OPTIONS'] ?? '').replace(/--max-old-space-size=\d+/, `--max-old-space-size=${mib}`) };

/** One size's API server and processes; close() stops everything they started. */
export class ApiHarness {
  /** Every process started, in order. */
  readonly procs: Proc[] = [];
  private port = 2340;

  private constructor(
    private readonly ctx: Ctx,
    private readonly params: ApiParams,
    private readonly rpc: IpcRpc<ApiServerRequest>,
    private readonly limits: CpuLimits | undefined,
  ) {}

  /** Starts the fake API server inside the agents' namespace. */
  static async start(ctx: Ctx, params: ApiParams): Promise<ApiHarness> {
    const { rpc } = await IpcRpc.start<ApiServerRequest, { ready: true; url: string }>(
      ctx.cluster,
      ctx.src.ns,
      [`--max-old-space-size=${SERVER_HEAP_MIB}`, SERVER_PATH, ctx.dir],
      'api-server',
    );
    return new ApiHarness(ctx, params, rpc, params.apiCpuLimitM > 0 ? new CpuLimits(params.apiCpuLimitM) : undefined);
  }

  /** One request to the API server. */
  call<T>(op: OpOf<ApiServerRequest>): Promise<T> {
    return this.rpc.call<T>(op);
  }

  /** What the server has sent every user so far. */
  load(): Promise<LoadSnapshot> {
    return this.call<LoadSnapshot>({ op: 'load' });
  }

  private async launch(label: string, user: string, env: Record<string, string>): Promise<Proc> {
    const { cluster, src, control, http } = this.ctx;
    const kubeconfig = await this.call<string>({ op: 'kubeconfig', user });
    const t = Date.now();
    const port = this.port++;
    const m = startMentat(cluster, src.ns, control, http, label, port, { ...env, KUBECONFIG: kubeconfig, MENTAT_METRICS_PORT: String(port) });
    const p = { m, user, t0: t };
    this.procs.push(p);
    return p;
  }

  /** An agent with the DaemonSet's environment on `nodeName`: a follower if `published`, else in direct mode. */
  async agent(label: string, user: string, nodeName: string, published: boolean): Promise<Proc> {
    const p = await this.launch(
      label,
      user,
      withHeap(
        daemonSetEnv({ NODE_NAME: nodeName, POD_NAME: `mentat-${nodeName}`, ...(published ? { POD_NAMESPACE: NAMESPACE } : {}) }),
        this.params.apiHeapMiB?.agent,
      ),
    );
    this.limits?.limit(p.m.pid);
    return p;
  }

  /** A controller replica with deploy/base/controller.yaml's environment. */
  controller(label: string, user: string, pod: string): Promise<Proc> {
    const env = controllerEnv({ POD_NAME: pod, POD_NAMESPACE: NAMESPACE, NODE_NAME: 'control-plane' });
    return this.launch(label, user, withHeap(env, this.params.apiHeapMiB?.controller));
  }

  /** What the server sent `p` since it started. */
  async costSince(p: Proc): Promise<StartCost> {
    return { ...trafficOf(await this.load(), p.user), ms: Date.now() - p.t0 };
  }

  /** What the server sent `p` until it was ready. */
  async readyCost(p: Proc, timeoutMs = 300_000): Promise<StartCost> {
    await p.m.ready(timeoutMs);
    return this.costSince(p);
  }

  /** A gauge of `p`'s /metrics; NaN when the scrape fails. */
  gauge(p: Proc, name: string): Promise<number> {
    return gaugeOf(p.m, name);
  }

  /** Until `p` leads and has published `nodes` nodes. */
  published(p: Proc, nodes: number, timeoutMs: number): Promise<true> {
    return untilPublished(p.m, nodes, timeoutMs);
  }

  /** Until every follower knows `nodes` others. */
  async knownBy(list: readonly Proc[], nodes: number, what: string, timeoutMs: number): Promise<void> {
    let known: number[] = [];
    await until(
      what,
      timeoutMs,
      async () => {
        known = await Promise.all(list.map(async (a) => sumOf((await a.m.scrape(['mentat_targets'])).samples, 'mentat_targets', { state: 'known' })));
        return known.every((k) => k === nodes) ? true : undefined;
      },
      { everyMs: 250, context: () => `nodes known by the followers: ${known.join(', ')} (of ${nodes} besides their own)` },
    );
  }

  /** A window: bytes and requests per second per process, its CPU, its memory at the end; `during` runs meanwhile (scrapes, churn). */
  async window(list: readonly Proc[], during?: (endAt: number) => Promise<void>): Promise<{ figures: Figures[]; seconds: number; beats: number }> {
    const s0 = await this.load();
    const beats0 = await this.call<number>({ op: 'beats' });
    const windows = list.map((p) => MeasurementWindow.start(p.m.pid));
    const w0 = Date.now();
    const endAt = w0 + this.params.apiWindowSeconds * 1000;
    await Promise.all([sleep(this.params.apiWindowSeconds * 1000), during?.(endAt)]);
    const s1 = await this.load();
    const seconds = (Date.now() - w0) / 1000;
    const figures = list.map((p, i): Figures => {
      const reading = windows[i]!.stop();
      return {
        ...delta(trafficOf(s0, p.user), trafficOf(s1, p.user), seconds),
        cores: reading.cpuSeconds / seconds,
        rssMiB: reading.end.rssKiB / 1024,
        hwmMiB: reading.end.hwmKiB / 1024,
      };
    });
    return { figures, seconds, beats: (await this.call<number>({ op: 'beats' })) - beats0 };
  }

  /** Stops every process, the API server, and removes the CPU limits' cgroups. */
  async close(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.m.stop()));
    this.rpc.close();
    const left = this.limits?.release() ?? [];
    if (left.length > 0) progress(`api: cgroups still in use, left for the next run to remove: ${left.join(', ')}`);
  }
}
