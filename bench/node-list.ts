/** What a process's /metrics says of the node list: whether a controller leads and has published, and where an agent's list comes from. */
import type { NodeSourceMode } from '../src/kube/node-source.js';
import { until } from '../test/support/agent-process.js';
import type { Sample } from './http-client.js';
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

/** The gauge that says where an agent's node list comes from (one series per mode, 1 for the current one). */
export const NODE_SOURCE_GAUGE = 'mentat_node_source';

/** The mode `mentat_node_source` marks in a scrape that kept it; undefined when none is marked. */
export function nodeSourceOf(samples: readonly Sample[]): NodeSourceMode | undefined {
  return samples.find((s) => s.name === NODE_SOURCE_GAUGE && s.value === 1)?.labels['mode'] as NodeSourceMode | undefined;
}

/** Until agent `m` follows the published list and knows `others` nodes besides its own. */
export function untilFollowing(m: Mentat, others: number, timeoutMs: number): Promise<true> {
  let seen = 'no scrape yet';
  return until(
    `${m.label} to follow the published list`,
    timeoutMs,
    async () => {
      const s = await m.scrape([NODE_SOURCE_GAUGE, 'mentat_targets']);
      const mode = nodeSourceOf(s.samples);
      const known = sumOf(s.samples, 'mentat_targets', { state: 'known' });
      seen = `${NODE_SOURCE_GAUGE} ${mode ?? 'absent'}, ${known} of ${others} other nodes known`;
      return mode === 'published' && known === others ? true : undefined;
    },
    { everyMs: 500, context: () => `last seen: ${seen}` },
  );
}
