/** What a process's /metrics says of the node list: whether a controller leads and has published. */
import { until } from '../test/support/agent-process.js';
import { sumOf, type Mentat } from './tools.js';

/** A gauge of `m`'s /metrics, summed over its series; NaN when the scrape fails. */
export async function gaugeOf(m: Mentat, name: string): Promise<number> {
  const s = await m.scrape([name]).catch(() => undefined);
  return s ? sumOf(s.samples, name, {}) : Number.NaN;
}

/** Until the controller `m` leads and has published `nodes` nodes. */
export function untilPublished(m: Mentat, nodes: number, timeoutMs: number): Promise<true> {
  return until(
    `${m.label} leads and has published ${nodes} nodes`,
    timeoutMs,
    async () => ((await gaugeOf(m, 'mentat_controller_leader')) === 1 && (await gaugeOf(m, 'mentat_node_list_nodes')) === nodes ? true : undefined),
    { everyMs: 500, context: () => m.agent.log().slice(-1500) },
  );
}
