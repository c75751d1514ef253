import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimitedLog, silentLog, type Log } from '../src/log.js';

function recorder(): { log: Log; warnings: Array<[object, string]> } {
  const warnings: Array<[object, string]> = [];
  return { log: { ...silentLog, warn: (fields, message) => warnings.push([fields, message]) }, warnings };
}

test('one line per key per window; the next line counts what was held back', () => {
  const { log, warnings } = recorder();
  let now = 0;
  const limited = new RateLimitedLog(log, 1000, () => now);
  limited.warn('a', { node: 'a' }, 'unreachable');
  limited.warn('a', { node: 'a' }, 'unreachable');
  limited.warn('a', { node: 'a' }, 'unreachable');
  limited.warn('b', { node: 'b' }, 'unreachable');
  now = 999;
  limited.warn('a', { node: 'a' }, 'unreachable');
  now = 1000;
  limited.warn('a', { node: 'a' }, 'unreachable');
  now = 2000;
  limited.warn('a', { node: 'a' }, 'unreachable');
  assert.deepEqual(warnings, [
    [{ node: 'a' }, 'unreachable'],
    [{ node: 'b' }, 'unreachable'],
    [{ node: 'a', suppressed: 3 }, 'unreachable'],
    [{ node: 'a' }, 'unreachable'],
  ]);
});

test('the keys it remembers are bounded: the oldest is forgotten, so its next line passes at once', () => {
  const { log, warnings } = recorder();
  const limited = new RateLimitedLog(log, 60_000, () => 0, 2);
  for (const key of ['a', 'b', 'c', 'a', 'c']) limited.warn(key, {}, key);
  assert.deepEqual(
    warnings.map(([, message]) => message),
    ['a', 'b', 'c', 'a'],
  );
});
