/**
 * The test side of fault-control.ts, plus launchers for the built agent (inside a namespace or
 * in the test's own namespace on the loopback) that keep stdout and stderr apart and can read the
 * agent's memory. Used by test/e2e/faults.test.ts, test/faults-unit.test.ts and bench/soak.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort, MAIN, REPO, until } from './agent-process.js';
import { parseExposition, type Sample } from './exposition.js';
import type {
  AuthMode,
  LoadSnapshot,
  NodeInput,
  ObjectInput,
  Permission,
  RequestFilter,
  RequestKind,
  ResourceName,
  StoredObject,
} from '../fake-apiserver/index.js';
import type { ApiInfo, FaultReady, FaultRequest, MonitorWindow } from './fault-control.js';
import { httpRequest, type HttpResult } from './http-request.js';
import { IpcRpc, type OpOf } from './ipc-rpc.js';
import type { Cluster } from './netns.js';

export { freePort, until };

export const FAULT_CONTROL_PATH = fileURLToPath(new URL('./fault-control.js', import.meta.url));
export type { HttpResult };
export const SCRAPE_LOAD_PATH = fileURLToPath(new URL('./scrape-load.js', import.meta.url));

/** The test's hands inside one namespace: a fake API server with every fault switch, HTTP from there. */
export class FaultControl {
  private constructor(
    private readonly rpc: IpcRpc<FaultRequest>,
    readonly apiUrl: string,
    readonly kubeconfig: string,
    /** The bearer token in the kubeconfig: must never show up in logs or /metrics. */
    readonly token: string,
  ) {}

  /** `host`: the API server's address in `ns` (127.0.0.1 by default; the namespace's own address for agents elsewhere). */
  static async start(cluster: Cluster, ns: string, dir: string, host?: string): Promise<FaultControl> {
    const { rpc, ready } = await IpcRpc.start<FaultRequest, FaultReady>(cluster, ns, [FAULT_CONTROL_PATH, dir, ...(host ? [host] : [])], 'fault-control');
    return new FaultControl(rpc, ready.apiUrl, ready.kubeconfig, ready.token);
  }

  call<T = unknown>(op: OpOf<FaultRequest>): Promise<T> {
    return this.rpc.call<T>(op);
  }

  upsert(name: string, address: string, labels?: Record<string, string>): Promise<void> {
    return this.call({ op: 'upsert', name, address, ...(labels ? { labels } : {}) });
  }
  upsertRaw(...nodes: NodeInput[]): Promise<void> {
    return this.call({ op: 'upsertRaw', nodes });
  }
  upsertMany(nodes: Array<{ name: string; address: string }>): Promise<void> {
    return this.call({ op: 'upsertMany', nodes });
  }
  delete(...names: string[]): Promise<boolean[]> {
    return this.call({ op: 'delete', names });
  }
  auth(mode: AuthMode): Promise<void> {
    return this.call({ op: 'auth', mode });
  }
  down(down: boolean): Promise<void> {
    return this.call({ op: 'down', down });
  }
  /** The next `n` API requests (of a kind, or matching a filter) fail with `status`. */
  failNext(n: number, status: number, only?: RequestKind | RequestFilter): Promise<void> {
    return this.call({ op: 'failNext', n, status, ...(only ? { only } : {}) });
  }
  info(): Promise<ApiInfo> {
    return this.call({ op: 'info' });
  }

  /** A kubeconfig (path inside the namespace's view of DIR) for `user`, with a token of its own unless given. */
  kubeconfigFor(opts: { user?: string; token?: string } = {}): Promise<string> {
    return this.call({ op: 'kubeconfig', ...opts });
  }
  /** Create or replace an object whatever its resourceVersion; `namespace` undefined for nodes. */
  putObject(resource: ResourceName, namespace: string | undefined, obj: ObjectInput): Promise<StoredObject> {
    return this.call({ op: 'putObject', resource, ...(namespace !== undefined ? { namespace } : {}), obj });
  }
  async getObject(resource: ResourceName, namespace: string | undefined, name: string): Promise<StoredObject | undefined> {
    return (await this.call<StoredObject | null>({ op: 'getObject', resource, ...(namespace !== undefined ? { namespace } : {}), name })) ?? undefined;
  }
  listObjects(resource: ResourceName, namespace?: string): Promise<StoredObject[]> {
    return this.call({ op: 'listObjects', resource, ...(namespace !== undefined ? { namespace } : {}) });
  }
  deleteObject(resource: ResourceName, namespace: string | undefined, name: string): Promise<boolean> {
    return this.call({ op: 'deleteObject', resource, ...(namespace !== undefined ? { namespace } : {}), name });
  }
  /** Restricts `user` to `permissions`; undefined lifts the restriction. */
  setPermissions(user: string, permissions: Permission[] | undefined): Promise<void> {
    return this.call({ op: 'permissions', user, ...(permissions ? { permissions } : {}) });
  }
  /** Requests matching `only` from now on are never answered, until `clearHangs`. */
  hang(only: RequestFilter = {}): Promise<void> {
    return this.call({ op: 'hang', only });
  }
  /** Returns how many held requests were released. */
  clearHangs(): Promise<number> {
    return this.call({ op: 'clearHangs' });
  }
  load(): Promise<LoadSnapshot> {
    return this.call({ op: 'load' });
  }
  resetLoad(): Promise<void> {
    return this.call({ op: 'resetLoad' });
  }
  /** Starts (or restarts) the kubelet-like status updates: each node once per `periodMs`. */
  heartbeatsStart(periodMs: number, names?: string[]): Promise<void> {
    return this.call({ op: 'heartbeatsStart', periodMs, ...(names ? { names } : {}) });
  }
  /** Stops them; returns how many updates were made. */
  heartbeatsStop(): Promise<number> {
    return this.call({ op: 'heartbeatsStop' });
  }

  /** An HTTP request from inside the namespace; a refused connection comes back as status 0. */
  async fetch(url: string, opts: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpResult> {
    try {
      return await this.call<HttpResult>({ op: 'fetch', url, ...opts });
    } catch (err) {
      return { status: 0, body: String((err as Error).message), headers: {} };
    }
  }

  /** Starts polling `url` (one request at a time, every `everyMs`) and recording its latency. */
  monitorStart(url: string, everyMs: number): Promise<void> {
    return this.call({ op: 'monitorStart', url, everyMs });
  }
  /** The monitored latency since the previous take. */
  monitorTake(): Promise<MonitorWindow> {
    return this.call({ op: 'monitorTake' });
  }

  close(): void {
    this.rpc.close();
  }
}

export interface LogLine {
  level?: number;
  msg?: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface Agent {
  readonly child: ChildProcess;
  readonly port: number;
  /** Raw stdout (pino JSON lines) and stderr. */
  stdout(): string;
  stderr(): string;
  /** Parsed stdout lines; a line that is not JSON is kept as { msg }. */
  lines(): LogLine[];
  /** Lines at warn (40) or above whose message matches. */
  warnings(msg?: RegExp): LogLine[];
  readonly exited: Promise<Exit>;
  alive(): boolean;
  get(path: string, timeoutMs?: number): Promise<HttpResult>;
  scrape(): Promise<Sample[]>;
  /** Resident set size in MiB, from /proc/PID/status. */
  rssMiB(): number;
  /** SIGTERM; resolves with the exit and how long it took (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<Exit & { ms: number }>;
  /** SIGKILL if still running. */
  kill(): Promise<void>;
  /** The last log lines and stderr, for assertion messages. */
  describe(): string;
}

function wrap(child: ChildProcess, port: number, get: (path: string, timeoutMs?: number) => Promise<HttpResult>): Agent {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  const lines = (): LogLine[] =>
    out
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        try {
          return JSON.parse(l) as LogLine;
        } catch {
          return { msg: l };
        }
      });
  const agent: Agent = {
    child,
    port,
    exited,
    stdout: () => out,
    stderr: () => err,
    lines,
    warnings: (msg) => lines().filter((l) => (l.level ?? 0) >= 40 && (!msg || msg.test(String(l.msg)))),
    alive: () => child.exitCode === null && child.signalCode === null,
    get,
    async scrape() {
      const r = await get('/metrics', 10_000);
      if (r.status !== 200) throw new Error(`scrape failed: ${r.status} ${r.body.slice(0, 200)}`);
      return parseExposition(r.body);
    },
    rssMiB() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
      return kb / 1024;
    },
    async stop(graceMs = 8000) {
      const start = Date.now();
      if (agent.alive()) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return { ...result, ms: result.at - start };
    },
    async kill() {
      if (agent.alive()) child.kill('SIGKILL');
      await exited;
    },
    describe() {
      const tail = lines()
        .slice(-20)
        .map((l) => JSON.stringify(l).slice(0, 400));
      return `agent pid ${child.pid} (exit ${child.exitCode ?? child.signalCode ?? 'running'}), last log lines:\n  ${tail.join('\n  ')}\nstderr: ${err.slice(-1500)}`;
    },
  };
  return agent;
}

/** A clean environment: nothing inherited but PATH, so no stray MENTAT_* or OTEL_* reaches the agent. */
function baseEnv(port: number): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent', MENTAT_METRICS_HOST: '127.0.0.1', MENTAT_METRICS_PORT: String(port) };
}

/**
 * Starts `node dist/src/main.js` inside a namespace (as root); HTTP to it goes through `control`.
 * With `host` (the namespace's own address) the agent listens there, so a control in another namespace reaches it.
 */
export function launchAgent(
  cluster: Cluster,
  ns: string,
  control: FaultControl,
  port: number,
  env: Record<string, string>,
  args: string[] = [],
  host = '127.0.0.1',
): Agent {
  const child = cluster.spawnIn(ns, process.execPath, [MAIN, ...args], {
    cwd: REPO,
    env: { ...baseEnv(port), MENTAT_METRICS_HOST: host, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
  return wrap(child, port, (path, timeoutMs = 5000) => control.fetch(`${url}${path}`, { timeoutMs }));
}

/** GET (or another method) without keep-alive from this process. */
export const localHttp = httpRequest;

/** Starts the agent in the test's own namespace (loopback targets only), with a clean environment. */
export async function launchLocalAgent(env: Record<string, string>, args: string[] = []): Promise<Agent> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: REPO, env: { ...baseEnv(port), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return wrap(child, port, (path, timeoutMs = 5000) => localHttp(`http://127.0.0.1:${port}${path}`, { timeoutMs }));
}

/** The distinct destination_node values on /metrics. */
export function destinations(samples: readonly Sample[]): Set<string> {
  return new Set(samples.filter((s) => s.name === 'node_latency_probes_total').map((s) => s.labels['destination_node']!));
}

/** Least-squares slope of y over x. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
