/** The alerts a test saw in a Prometheus it polls: each state of each alert with when it was first seen, and the nodes it names. */
import type { PrometheusServer } from './prometheus.js';

export interface SeenAlert {
  readonly labels: Record<string, string>;
  /** pending or firing. */
  readonly state: string;
  /** When this poll first saw the alert in this state, ms since the epoch. */
  readonly at: number;
}

/** Every node an alert names, whatever the label. */
export function namedNodes(labels: Record<string, string>): string[] {
  return ['node', 'origin_node', 'destination_node'].flatMap((l) => (labels[l] ? [labels[l]] : []));
}

export class AlertLog {
  private readonly byKey = new Map<string, SeenAlert>();

  constructor(private readonly prom: Pick<PrometheusServer, 'alerts'>) {}

  /** Records every alert Prometheus has now that was not seen in its state before. */
  async poll(): Promise<void> {
    for (const a of await this.prom.alerts()) {
      const key = `${a.state} ${JSON.stringify(a.labels)}`;
      if (!this.byKey.has(key)) this.byKey.set(key, { labels: a.labels, state: a.state, at: Date.now() });
    }
  }

  get seen(): SeenAlert[] {
    return [...this.byKey.values()];
  }

  /** Distinct alerts (by labels), whatever their state. */
  get distinct(): number {
    return new Set(this.seen.map((a) => JSON.stringify(a.labels))).size;
  }

  /** When `alertname` was first seen firing with `node` as its node label. */
  firedAt(alertname: string, node: string): number | undefined {
    return this.seen.find((a) => a.state === 'firing' && a.labels['alertname'] === alertname && a.labels['node'] === node)?.at;
  }

  /** When an alert in any state first named `node`. */
  firstNaming(node: string): number | undefined {
    const times = this.seen.filter((a) => namedNodes(a.labels).includes(node)).map((a) => a.at);
    return times.length > 0 ? Math.min(...times) : undefined;
  }

  /** Each alert seen, with its state and the seconds after `startedAt` it was first seen: for a diagnostic. */
  report(startedAt: number): string {
    return JSON.stringify(this.seen.map((a) => ({ state: a.state, ...a.labels, afterS: Math.round((a.at - startedAt) / 1000) })));
  }
}
