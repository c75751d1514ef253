/** Gauges of the node list: where each agent's list comes from, and what the controller publishes. */
import type { Meter } from '@opentelemetry/api';

/** mentat_node_source{mode}: 1 for where this agent's node list comes from now, 0 for the others (the fallback alert reads it). */
export function registerNodeSourceGauge(meter: Meter, originNode: string, modes: readonly string[], mode: () => string): void {
  meter
    .createObservableGauge('mentat_node_source', {
      description:
        "Where this agent's node list comes from: published (the controller's list), direct (MENTAT_NODE_LIST=direct: it watches Nodes), fallback (no live controller: it watches Nodes until one is back)",
    })
    .addCallback((result) => {
      const now = mode();
      for (const m of modes) result.observe(m === now ? 1 : 0, { origin_node: originNode, mode: m });
    });
}

/** The controller's gauges: whether this replica writes the list, and how many nodes it last published. */
export function registerControllerGauges(meter: Meter, identity: string, stats: () => { leader: boolean; nodes: number | undefined }): void {
  meter
    .createObservableGauge('mentat_controller_leader', { description: '1 when this mentat-controller replica holds the lease and writes the node list' })
    .addCallback((result) => result.observe(stats().leader ? 1 : 0, { pod: identity }));
  meter
    .createObservableGauge('mentat_node_list_nodes', { description: 'Nodes in the node list this replica last published (absent until it publishes)' })
    .addCallback((result) => {
      const { nodes } = stats();
      if (nodes !== undefined) result.observe(nodes, { pod: identity });
    });
}
