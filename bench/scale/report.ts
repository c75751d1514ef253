/** Section 3, scale: the Markdown of a run (run.ts), its budgets and its budget lines. */
import type { NodeSourceMode } from '../../src/kube/node-source.js';
import { NODE_SOURCE_GAUGE } from '../node-list.js';
import { formatProfile } from '../profile.js';
import { mib, ok, type BudgetRow } from '../report.js';
import { fmt, median, table } from '../stats.js';
import { SCRAPE_EVERY_S, type ScaleParams, type ScaleResult, type ShippedRow } from './params.js';

/** The full mesh's budgets by target count. */
export const SCALE_BUDGET = new Map<number, { cores: number; rssMiB: number; metricsMs: number }>([
  [1000, { cores: 0.1, rssMiB: 100, metricsMs: 250 }],
  [5000, { cores: 0.2, rssMiB: 128, metricsMs: 1000 }],
]);

/** An agent as shipped, at 5000 nodes: cores with a scrape every 15 s, and the slowest /metrics. */
export const SHIPPED_BUDGET = { cores: 0.05, metricsMs: 100 };

/** What the full-mesh tables show and how they were taken. */
function fullMeshIntro(r: ScaleResult, params: ScaleParams): string {
  return (
    `Targets are /32 addresses on one namespace's loopback (kernel echo replies), published as Nodes by the fake API server ` +
    `(minimal Node objects; paged list, then watch) and discovered by the agent; one probe per target every ${r.intervalMs} ms, ` +
    `with MENTAT_MESH=full (every node probed every interval, what these rows have always measured; since the bounded mesh, ` +
    `auto samples above 100 nodes: see the shipped row below), default settings otherwise. ` +
    `Probes, timeouts, CPU and RSS are taken over a quiet window without scrapes (RSS sampled each second); then /metrics is scraped ` +
    `${params.scaleScrapes} times, ${params.scaleScrapeGapMs} ms apart, each on a fresh connection from inside the namespace. ` +
    `"quiet" RSS follows a single scrape; "after scrapes" is 2 s after the timed scrapes; the RSS budget is checked against the larger. ` +
    `System time includes the kernel's work for the whole veth path, the target's echo replies included (see the caveat in section 2). ` +
    `"cores with a scrape every ${SCRAPE_EVERY_S} s" adds the measured CPU of one scrape per ${SCRAPE_EVERY_S} s to the quiet rate. ` +
    `Probe counters are read by the scrapes that bracket the quiet window, so their window is a little longer than it.`
  );
}

/** Probes, CPU and memory of each full-mesh row. */
function fullMeshTable(r: ScaleResult): string {
  return table(
    [
      'full mesh, targets',
      'ready ms',
      'probed 1 interval after ready',
      'probes / expected',
      'per target min–max',
      'missed targets',
      'timeout ratio',
      'cores quiet (of which user)',
      `cores with a scrape every ${SCRAPE_EVERY_S} s`,
      'cores budget',
      'RSS MiB quiet (median / max)',
      'RSS MiB after scrapes (of which anonymous)',
      'VmHWM MiB',
      'RSS budget',
    ],
    r.rows.map((x) => {
      const cores = x.cpuSeconds / x.windowSeconds;
      const scraped = cores + x.cpuPerScrape / SCRAPE_EVERY_S;
      const budget = SCALE_BUDGET.get(x.targets);
      const steady = Math.max(x.rssMaxKiB, x.rssAfterScrapesKiB) / 1024;
      return [
        String(x.targets),
        fmt(x.readyMs),
        `${x.probedAtStart} of ${x.targets}`,
        `${x.probes} / ${x.expected} (${fmt((x.probes / x.expected) * 100, 1)}%)`,
        `${x.perTargetMin}–${x.perTargetMax} (${fmt(x.counterSeconds, 1)} s)`,
        String(x.missed),
        fmt(x.probes > 0 ? x.timeouts / x.probes : Number.NaN, 4),
        `${fmt(cores, 3)} (${fmt(x.userSeconds / x.windowSeconds, 3)})`,
        fmt(scraped, 3),
        budget ? `≤ ${budget.cores}: quiet ${ok(cores <= budget.cores)}, scraped ${ok(scraped <= budget.cores)}` : '–',
        `${mib(x.rssMedianKiB)} / ${mib(x.rssMaxKiB)}`,
        `${mib(x.rssAfterScrapesKiB)} (${mib(x.anonAfterScrapesKiB)})`,
        mib(x.hwmKiB),
        budget ? `≤ ${budget.rssMiB}: ${ok(steady <= budget.rssMiB)}` : '–',
      ];
    }),
  );
}

/** /metrics, series, SIGTERM and sockets of each full-mesh row. */
function metricsTable(r: ScaleResult): string {
  return table(
    [
      'full mesh, targets',
      '/metrics median ms',
      '/metrics max ms',
      '/metrics budget',
      'size',
      'series',
      'CPU s per scrape',
      'timeouts during scrapes',
      'SIGTERM → exit',
      'sockets',
    ],
    r.rows.map((x) => {
      const budget = SCALE_BUDGET.get(x.targets);
      const max = Math.max(...x.scrapeMs);
      return [
        String(x.targets),
        fmt(median(x.scrapeMs), 1),
        fmt(max, 1),
        budget ? `≤ ${budget.metricsMs}: ${ok(max <= budget.metricsMs)}` : '–',
        `${fmt(x.scrapeBytes / 1024 / 1024, 2)} MiB`,
        String(x.series),
        fmt(x.cpuPerScrape, 3),
        `${x.scrapeTimeouts} of ${x.scrapeProbes}`,
        `${x.stopMs} ms, code ${x.stopCode}`,
        (x.sockets ?? ['?']).join(', '),
      ];
    }),
  );
}

/** CPU by thread of each full-mesh row, quiet and during the timed scrapes. */
function threadsText(r: ScaleResult, params: ScaleParams): string[] {
  const threads = (list: Array<{ thread: string; seconds: number }>, seconds: number): string =>
    list.map((t) => `${t.thread} ${fmt(t.seconds / seconds, 4)}`).join(', ');
  return [
    `CPU by thread (cores; MainThread: probes (dgram), discovery, metrics, HTTP; V8Worker: GC and compiler helpers):`,
    '',
    table(
      ['full mesh, targets', 'quiet window', `during the ${params.scaleScrapes} timed scrapes (CPU s per scrape, probing included)`],
      r.rows.map((x) => [
        String(x.targets),
        threads(x.threadsQuiet, x.windowSeconds),
        x.threadsScrapes.map((t) => `${t.thread} ${fmt(t.seconds / (params.scaleScrapes + 2), 3)}`).join(', '),
      ]),
    ),
    '',
  ];
}

/** The CPU profiles' summaries (--profile), if any. */
function profilesText(r: ScaleResult): string[] {
  const out: string[] = [];
  const withProfiles = r.rows.filter((x) => x.profiles.length > 0);
  if (withProfiles.length > 0) {
    out.push(
      '### CPU profiles (--profile)',
      '',
      'The profiler itself costs CPU: with --profile the cores columns read high. V8 samples on wall time, so a thread that waits for a core (2 cores, busy scrapes) shows time in whatever function it was in. One profile per thread.',
      '',
      '```',
    );
    for (const x of withProfiles) for (const p of x.profiles) out.push(`${x.targets} targets: ${formatProfile(p)}`);
    out.push('```', '');
  }
  return out;
}

/** The section's Markdown. */
export function scaleReport(r: ScaleResult, params: ScaleParams): string {
  const out: string[] = ['## 3. Scale (mentat)', '', '### The full mesh', ''];
  out.push(fullMeshIntro(r, params), '', fullMeshTable(r), '', metricsTable(r), '');
  const floor = floorText(r);
  if (floor)
    out.push(
      `Floor (idle processes with the shipped runtime settings, each loading what the one before it did and more, then the agent itself): ${floor}.`,
      '',
    );
  out.push(...threadsText(r, params));
  if (r.shipped.length > 0) out.push(shippedReport(r.shipped));
  for (const n of r.notes) out.push(`Note: ${n}`, '');
  out.push(...profilesText(r));
  return out.join('\n');
}

/** What memory does not depend on the targets: the layers the agent loads, and the agent with one target. */
function floorText(r: ScaleResult, short = false): string | undefined {
  const one = r.rows.find((x) => x.targets === 1);
  const parts = (short ? r.layers.slice(0, 1) : r.layers).map((l) => `${l.label} ${mib(l.rssKiB)} MiB RSS (anonymous ${mib(l.anonKiB)})`);
  if (one) parts.push(`the agent running, 1 target ${mib(Math.max(one.rssMaxKiB, one.rssAfterScrapesKiB))} MiB (anonymous ${mib(one.anonAfterScrapesKiB)})`);
  return parts.length > 0 ? parts.join('; ') : undefined;
}

const shippedCores = (r: ShippedRow): number => r.cpuSeconds / r.windowSeconds;

/** What each node source means for an agent; '?' (no gauge) is said as it is. */
const SOURCE_TEXT: Record<NodeSourceMode, { short: string; long: string }> = {
  published: { short: 'follower', long: "follower (reads the controller's published list)" },
  fallback: { short: 'fallback', long: 'fallback (no live controller seen: watches Nodes itself)' },
  direct: { short: 'direct', long: 'direct (MENTAT_NODE_LIST=direct: watches Nodes itself)' },
};

/** The agent's node source over its window's scrapes, changes in order ("published → fallback"). */
function sourceOf(r: ShippedRow, form: 'short' | 'long'): string {
  const changes = r.nodeSources.filter((m, i) => m !== r.nodeSources[i - 1]);
  const said = (m: string): string => SOURCE_TEXT[m as NodeSourceMode]?.[form] ?? `${m} (no ${NODE_SOURCE_GAUGE} gauge)`;
  return changes.length === 1 ? said(changes[0]!) : `${changes.join(' → ')} across the window's scrapes`;
}

/** The agent's node and its node source. */
const agentLabel = (r: ShippedRow, form: 'short' | 'long'): string => `${r.agent}: ${sourceOf(r, form)}`;

/** What the shipped agents ran with and how they were measured. */
function shippedIntro(x: ShippedRow): string {
  const shown = ['MENTAT_DISCOVERY', 'MENTAT_ICMP_MODE', 'MENTAT_MAX_TARGETS', 'NODE_OPTIONS', 'MALLOC_ARENA_MAX', 'POD_NAMESPACE'].filter(
    (k) => x.env[k] !== undefined,
  );
  return (
    `The agent container's environment from deploy/base/daemonset.yaml (${shown.map((k) => `${k}=${x.env[k]}`).join(', ')}; ` +
    `nothing about the mesh, so the default, MENTAT_MESH=${x.mesh} at ${x.nodes + 1} nodes; one probe per peer every ${x.intervalMs / 1000} s, every other node swept once per ${x.sweepIntervalMs / 60_000} min). ` +
    `The fake API server holds ${x.nodes} Node objects the size kubelets report (about 10 KB of JSON each) and the first agent's own; ` +
    `each kubelet rewrites its node's status once per ${x.heartbeatPeriodMs / 60_000} min (${x.heartbeats} updates while the agents ran). ` +
    `First the mentat-controller (the same binary, MENTAT_ROLE=controller, deploy/base/controller.yaml's environment, the mentat-controller service account's token) takes the lease, watches Nodes ` +
    `and publishes the node list as ConfigMaps in POD_NAMESPACE (${fmt(x.controllerPublishedMs / 1000, 1)} s from its start until it led and had published all ${x.nodes + 1} nodes). ` +
    `Then an agent starts (the mentat service account's token; deploy/'s RBAC enforced by the fake API server) and, once its mentat_node_source gauge says it follows the published list and it knows every node in it, is measured; ` +
    `a second agent then starts and is measured likewise while the first and the controller keep running (2 cores: each waits for the others now and then). ` +
    `While a controller is live no agent watches Nodes: the agent that used to take the node-list lease, watch Nodes and write the list (the first row of earlier runs) no longer exists, so no row measures it; that work is the controller's, measured in section 5 (API load). ` +
    `The "agent" column names each agent's node and where its list came from at every scrape of its window (${NODE_SOURCE_GAUGE}). ` +
    `Each window holds ${x.scrapesInWindow} full scrapes of /metrics, one every ${SCRAPE_EVERY_S} s, so "cores" is the rate with scrapes. ` +
    `Probes every interval are counted on node_latency_probes_total against mentat_targets (probed + suspect + outlier); sweep probes on node_latency_sweep_probes_total against swept / ${x.sweepIntervalMs / 60_000} min.`
  );
}

/** Probes and CPU of each shipped agent. */
function shippedProbeTable(list: readonly ShippedRow[]): string {
  return table(
    [
      'agent',
      'ready ms',
      'probed every interval / swept / over_cap',
      'probes / expected',
      'sweep probes / expected',
      'timeout ratio',
      `cores, a scrape every ${SCRAPE_EVERY_S} s (of which user)`,
      'cores budget',
    ],
    list.map((r) => [
      agentLabel(r, 'long'),
      fmt(r.readyMs),
      `${r.everyInterval} / ${r.targets['swept'] ?? 0} / ${r.targets['over_cap'] ?? 0}`,
      `${r.probes} / ${r.expectedProbes} (${fmt(r.counterSeconds, 1)} s)`,
      `${r.sweepProbes} / ${r.expectedSweepProbes}`,
      fmt(r.probes > 0 ? r.timeouts / r.probes : Number.NaN, 4),
      `${fmt(shippedCores(r), 3)} (${fmt(r.userSeconds / r.windowSeconds, 3)})`,
      `≤ ${SHIPPED_BUDGET.cores}: ${ok(shippedCores(r) <= SHIPPED_BUDGET.cores)}`,
    ]),
  );
}

/** /metrics and memory of each shipped agent. */
function shippedMemoryTable(list: readonly ShippedRow[]): string {
  return table(
    [
      'agent',
      '/metrics median / max ms',
      '/metrics budget',
      'series',
      'size',
      'RSS MiB median / max',
      'anonymous MiB',
      'VmHWM MiB',
      'SIGTERM → exit',
      'sockets',
    ],
    list.map((r) => {
      const max = Math.max(...r.scrapeMs);
      return [
        agentLabel(r, 'short'),
        `${fmt(median(r.scrapeMs), 1)} / ${fmt(max, 1)}`,
        `≤ ${SHIPPED_BUDGET.metricsMs}: ${ok(max <= SHIPPED_BUDGET.metricsMs)}`,
        String(r.series),
        `${fmt(r.scrapeBytes / 1024, 1)} KiB`,
        `${mib(r.rssMedianKiB)} / ${mib(r.rssMaxKiB)}`,
        mib(r.anonKiB),
        mib(r.hwmKiB),
        `${r.stopMs} ms, code ${r.stopCode}`,
        (r.sockets ?? ['?']).join(', '),
      ];
    }),
  );
}

/** The agents as shipped beside the controller: their settings, then two tables. */
function shippedReport(list: readonly ShippedRow[]): string {
  const x = list[0]!;
  return [
    `### Agents as shipped, ${x.nodes} kubelet-sized nodes`,
    '',
    shippedIntro(x),
    '',
    shippedProbeTable(list),
    '',
    shippedMemoryTable(list),
    '',
    `CPU by thread (cores): ${list.map((r) => `${agentLabel(r, 'short')}, ${r.threads.map((t) => `${t.thread} ${fmt(t.seconds / r.windowSeconds, 4)}`).join(', ')}`).join('; ')}. ` +
      `The memory a pod sees (the cgroup, the node binary's pages included) is what bench/pod-memory.sh measures: see bench/README.md.`,
    '',
  ].join('\n');
}

/** The budget lines: the full mesh at 1000 and 5000 targets, and the agents as shipped. */
export function scaleBudgets(r: ScaleResult): BudgetRow[] {
  const rows: BudgetRow[] = [];
  const floor = floorText(r, true);
  for (const x of r.rows) {
    const b = SCALE_BUDGET.get(x.targets);
    if (!b) continue;
    const cores = x.cpuSeconds / x.windowSeconds;
    const scraped = cores + x.cpuPerScrape / SCRAPE_EVERY_S;
    const rss = Math.max(x.rssMaxKiB, x.rssAfterScrapesKiB) / 1024;
    const max = Math.max(...x.scrapeMs);
    const what = `full mesh, ${x.targets} targets`;
    rows.push([
      `${what}: ≤ ${b.cores} core`,
      `${fmt(cores, 3)} quiet, ${fmt(scraped, 3)} with a scrape every ${SCRAPE_EVERY_S} s`,
      `${ok(cores <= b.cores)} / ${ok(scraped <= b.cores)}`,
    ]);
    rows.push([
      `${what}: ≤ ${b.rssMiB} MiB`,
      `${fmt(rss, 0)} MiB RSS (quiet ${fmt(x.rssMaxKiB / 1024, 0)}, after scrapes ${fmt(x.rssAfterScrapesKiB / 1024, 0)}, peak ${fmt(x.hwmKiB / 1024, 0)}; anonymous ${fmt(x.anonAfterScrapesKiB / 1024, 0)}, the rest is the node binary mapped from disk${floor ? `; floor: ${floor}` : ''})`,
      ok(rss <= b.rssMiB),
    ]);
    rows.push([
      `${what}: /metrics ≤ ${b.metricsMs} ms`,
      `max ${fmt(max)} ms, median ${fmt(median(x.scrapeMs))} ms (${fmt(x.scrapeBytes / 1024 / 1024, 1)} MiB, ${x.series} series)`,
      ok(max <= b.metricsMs),
    ]);
    rows.push([
      `${what}: every target probed every interval`,
      `${x.probes} of ${x.expected} expected, ${x.missed} targets missed, timeout ratio ${fmt(x.probes > 0 ? x.timeouts / x.probes : Number.NaN, 4)}`,
      ok(x.missed === 0 && x.probes >= 0.98 * x.expected),
    ]);
  }
  for (const x of r.shipped) {
    const cores = x.cpuSeconds / x.windowSeconds;
    const max = Math.max(...x.scrapeMs);
    const what = `as shipped, ${x.nodes} kubelet-sized nodes, agent ${agentLabel(x, 'short')}`;
    rows.push([
      `${what}: ≤ ${SHIPPED_BUDGET.cores} core with a scrape every ${SCRAPE_EVERY_S} s`,
      `${fmt(cores, 3)} (RSS ${mib(x.rssMaxKiB)} MiB max)`,
      ok(cores <= SHIPPED_BUDGET.cores),
    ]);
    rows.push([
      `${what}: /metrics ≤ ${SHIPPED_BUDGET.metricsMs} ms`,
      `max ${fmt(max)} ms, median ${fmt(median(x.scrapeMs))} ms (${fmt(x.scrapeBytes / 1024, 0)} KiB, ${x.series} series)`,
      ok(max <= SHIPPED_BUDGET.metricsMs),
    ]);
    rows.push([
      `${what}: probes as planned (≥ 98% every interval, ≥ 90% of the sweep)`,
      `${x.probes} of ${x.expectedProbes} every interval (${x.everyInterval} nodes), ${x.sweepProbes} of ${x.expectedSweepProbes} sweep probes, timeout ratio ${fmt(x.probes > 0 ? x.timeouts / x.probes : Number.NaN, 4)}`,
      ok(x.probes >= 0.98 * x.expectedProbes && x.sweepProbes >= 0.9 * x.expectedSweepProbes),
    ]);
  }
  return rows;
}
