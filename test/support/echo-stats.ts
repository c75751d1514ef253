/** The echo responder's counters, printed as one JSON line when it stops (echo-responder.ts). */

export interface ResponderStats {
  /** Well-formed echo requests seen (both families). */
  requests: number;
  requestsV4: number;
  requestsV6: number;
  /** Requests dropped on purpose (--loss). */
  dropped: number;
  /** Reply packets handed to the kernel successfully (duplicates included). */
  replies: number;
  /** Extra copies sent because of --duplicate. */
  duplicates: number;
  /** Replies sent corrupted. */
  corrupted: number;
  sendErrors: number;
  /** ICMPv4 echo requests ignored because of a bad checksum or short packet. */
  badRequests: number;
  /** Replies still waiting for their delay when the responder stopped. */
  pending: number;
  seed: number;
}

/** Every counter at zero, with the seed the run uses. */
export function emptyStats(seed: number): ResponderStats {
  return {
    requests: 0,
    requestsV4: 0,
    requestsV6: 0,
    dropped: 0,
    replies: 0,
    duplicates: 0,
    corrupted: 0,
    sendErrors: 0,
    badRequests: 0,
    pending: 0,
    seed,
  };
}
