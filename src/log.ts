/** The slice of pino the modules use, so tests can pass a recorder and nothing imports pino but main. */
export interface Log {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** A Log that drops everything. */
export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Lets one log line per key through per window, then counts what it held back,
 * so one broken node or a flood of bad packets cannot flood the log.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Log,
    private readonly windowMs: number,
    private readonly now: () => number,
    private readonly maxKeys = 10_000,
  ) {}

  warn(key: string, fields: object, message: string): void {
    const now = this.now();
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.windowMs) {
      seen.suppressed++;
      return;
    }
    if (!seen && this.last.size >= this.maxKeys) this.last.delete(this.last.keys().next().value!);
    const suppressed = seen?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    this.log.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}
