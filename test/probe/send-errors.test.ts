import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SEND_ATTEMPTS, classifySendError } from '../../src/probe/send-errors.js';

const errno = (code: string | undefined): Error => Object.assign(new Error(code ?? 'no code'), code === undefined ? {} : { code });

test('a send error is retried when an ICMP error parked it, discarded when the buffer is full, else the probe failed', () => {
  const cases: Array<[string | undefined, number, ReturnType<typeof classifySendError>]> = [
    ['EHOSTUNREACH', 1, 'retry'],
    ['ENETUNREACH', 1, 'retry'],
    ['ECONNREFUSED', 2, 'retry'],
    ['EMSGSIZE', 1, 'retry'],
    ['EHOSTUNREACH', SEND_ATTEMPTS, 'failed'],
    ['EAGAIN', 1, 'buffer_full'],
    ['EWOULDBLOCK', 1, 'buffer_full'],
    ['ENOBUFS', SEND_ATTEMPTS, 'buffer_full'],
    ['EINVAL', 1, 'failed'],
    [undefined, 1, 'failed'],
  ];
  for (const [code, attempt, expected] of cases) assert.equal(classifySendError(errno(code), attempt), expected, `${code} on attempt ${attempt}`);
});
