/**
 * The echo responder's command line (echo-responder.ts): delay, jitter, loss, duplication,
 * corruption, families and sources never answered, each checked with the flag's name in the error.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';

/** How a reply is spoiled: a bad checksum, cut short, another identifier, or an ICMP error instead. */
export type CorruptMode = 'checksum' | 'truncate' | 'identifier' | 'unreachable';

export interface ResponderArgs {
  delayMs: number;
  jitterMs: number;
  loss: number;
  seed: number;
  duplicate: boolean;
  corrupt: CorruptMode | undefined;
  corruptRatio: number;
  v4: boolean;
  v6: boolean;
  /** Requests from these sources are never answered: one lossy pair, every other pair fine. */
  dropFrom: ReadonlySet<string>;
}

/** Parses the responder's arguments; throws with the flag's name on a bad one. */
export function parseResponderArgs(argv: string[]): ResponderArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      'delay-ms': { type: 'string', default: '0' },
      'jitter-ms': { type: 'string', default: '0' },
      loss: { type: 'string', default: '0' },
      seed: { type: 'string' },
      duplicate: { type: 'boolean', default: false },
      corrupt: { type: 'string' },
      'corrupt-ratio': { type: 'string', default: '1' },
      family: { type: 'string', default: 'both' },
      'drop-from': { type: 'string', default: '' },
    },
    strict: true,
  });
  const num = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}]`);
    return n;
  };
  const corrupt = values.corrupt;
  if (corrupt !== undefined && corrupt !== 'checksum' && corrupt !== 'truncate' && corrupt !== 'identifier' && corrupt !== 'unreachable') {
    throw new Error('--corrupt must be checksum, truncate, identifier or unreachable');
  }
  const family = values.family;
  if (family !== 'both' && family !== '4' && family !== '6') throw new Error('--family must be both, 4 or 6');
  return {
    delayMs: num('delay-ms', values['delay-ms'], 0, 600_000),
    jitterMs: num('jitter-ms', values['jitter-ms'], 0, 600_000),
    loss: num('loss', values.loss, 0, 1),
    seed: values.seed === undefined ? randomInt(0, 2 ** 32) : num('seed', values.seed, 0, 2 ** 32 - 1),
    duplicate: values.duplicate,
    corrupt,
    corruptRatio: num('corrupt-ratio', values['corrupt-ratio'], 0, 1),
    v4: family !== '6',
    v6: family !== '4',
    dropFrom: new Set(
      values['drop-from']
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a !== ''),
    ),
  };
}
