/**
 * Errnos that an ICMP error leaves parked on a socket with IP_RECVERR (the kernel's icmp_err_convert):
 * the next sendto, to any destination, fails with it and sends nothing, so it says nothing of that
 * destination. The error itself comes through the error queue, quoting the probe it is about.
 */
const PARKED_ERRNOS: ReadonlySet<string> = new Set([
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENONET',
  'ECONNREFUSED',
  'ENOPROTOOPT',
  'EMSGSIZE',
  'EOPNOTSUPP',
  'EACCES',
  'EPROTO',
]);

/** Attempts per probe: a second error parked in the microseconds between two sends is rare, a third rarer. */
export const SEND_ATTEMPTS = 3;

function isParked(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code !== undefined && PARKED_ERRNOS.has(code);
}

/** The socket's own buffer is full: the request never left, which says nothing of its destination. */
function isBufferFull(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'ENOBUFS';
}

/**
 * What a failed send means, on its `attempt`-th try (from 1): `retry` (an error parked by an earlier
 * ICMP error, probably another destination's: nothing went out), `buffer_full` (not sent, nothing
 * learnt of the destination), or `failed` (an error of the probe).
 */
export function classifySendError(error: Error, attempt: number): 'retry' | 'buffer_full' | 'failed' {
  if (attempt < SEND_ATTEMPTS && isParked(error)) return 'retry';
  if (isBufferFull(error)) return 'buffer_full';
  return 'failed';
}
