/**
 * The controller role (MENTAT_ROLE=controller): the same binary and image as the agent, but it probes
 * nothing. Its replicas elect one writer of the node list (kube/controller.ts); each serves /metrics
 * (who leads, how many nodes it published), /healthz and /readyz on the agent's port.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Resource } from '@opentelemetry/resources';
import type { Config } from './config.js';
import type { KubeClient } from './kube/client.js';
import { NodeListController } from './kube/controller.js';
import { RateLimitedLog, type Log } from './log.js';
import { registerControllerGauges } from './telemetry/node-list-metrics.js';
import { metricsServer } from './metrics-server.js';
import type { HttpServer } from './server.js';
import { Telemetry } from './telemetry/telemetry.js';
import type { Ambient } from './types.js';

export interface ControllerDeps extends Ambient {
  readonly config: Config;
  /** mentat's namespace: where the lease, the index and the shards live. */
  readonly namespace: string;
  readonly log: Log;
  readonly kube: { readonly client: KubeClient; readonly kubeConfig: KubeConfig };
  readonly serviceAccount?: string | undefined;
  readonly resource: Resource;
}

export class Controller {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly log: Log,
    private readonly parts: { controller: NodeListController; telemetry: Telemetry; server: HttpServer },
    readonly port: number,
  ) {}

  static async start(deps: ControllerDeps): Promise<Controller> {
    const { config, log, clock, wallNow, random, delay } = deps;
    const warnings = new RateLimitedLog(log, 60_000, () => clock.now());
    const controller = new NodeListController({
      client: deps.kube.client,
      kubeConfig: deps.kube.kubeConfig,
      namespace: deps.namespace,
      identity: config.nodeList.identity,
      leaseDurationMs: config.nodeList.leaseDurationMs,
      clock,
      wallNow,
      random,
      delay,
      log,
      warnings,
      serviceAccount: deps.serviceAccount,
      podAddresses: config.paths.includes('pod'),
    });
    const telemetry = await Telemetry.create({ resource: deps.resource, meterName: 'mentat' });
    registerControllerGauges(telemetry.meter, config.nodeList.identity, () => ({ leader: controller.isLeader, nodes: controller.publishedNodes }));
    // A standby replica is ready too: it is there to take over.
    const server = metricsServer(config, telemetry, warnings, { readiness: () => ({ ready: true, reason: '' }) });
    let port: number;
    try {
      port = await server.listen();
    } catch (err) {
      await telemetry.shutdown();
      throw err;
    }
    controller.start();
    log.info(
      { port, namespace: deps.namespace, identity: config.nodeList.identity, leaseDurationMs: config.nodeList.leaseDurationMs },
      'mentat-controller started: electing the writer of the node list',
    );
    return new Controller(log, { controller, telemetry, server }, port);
  }

  /** Stops writing, gives the lease up (another replica takes over at once), closes the server. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const { controller, telemetry, server } = this.parts;
      await controller.stop().catch(() => {});
      await telemetry.shutdown();
      await server.close();
      this.log.info({}, 'mentat-controller stopped');
    })();
    return this.stopping;
  }
}
