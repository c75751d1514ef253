import { MetricReader } from '@opentelemetry/sdk-metrics';

/**
 * A reader that only answers collect(): its holder pulls it (the /metrics handler per scrape, the
 * destination folds per delta), so there is nothing to flush and nothing to close.
 */
export class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
