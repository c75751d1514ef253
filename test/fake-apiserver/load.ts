/**
 * The fake API server's load accounting: requests and bytes written back per user, resource and
 * kind of request, a response's bytes being its socket's bytesWritten delta (status line, headers,
 * body, chunk framing), open watches counting what they have sent so far.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { matchesFilter, type RequestFilter, type RequestKind, type RequestResource } from './routing.js';

/** Requests received and bytes sent back. */
export interface LoadCount {
  requests: number;
  /** Bytes written to the socket for these responses: status line, headers, body, chunk framing. */
  bytes: number;
}

/** The load of one user, resource and kind of request. */
export interface LoadRow extends LoadCount {
  user: string;
  resource: RequestResource;
  kind: RequestKind;
}

/** Requests and bytes sent since the last reset; open watches count what they have sent so far. */
export interface LoadSnapshot {
  total: LoadCount;
  /** One row per (user, resource, kind) seen. */
  rows: LoadRow[];
  byUser: Record<string, LoadCount>;
  byResource: Record<string, LoadCount>;
  byKind: Record<string, LoadCount>;
}

/** Sums the rows of a snapshot that match `filter`. */
export function sumLoad(snapshot: LoadSnapshot, filter: RequestFilter = {}): LoadCount {
  const sum = { requests: 0, bytes: 0 };
  for (const r of snapshot.rows) {
    if (matchesFilter(filter, r)) {
      sum.requests += r.requests;
      sum.bytes += r.bytes;
    }
  }
  return sum;
}

interface OpenMeter {
  socket: Socket;
  base: number;
  key: Omit<LoadRow, 'requests' | 'bytes'>;
  row: LoadRow;
}

/** Requests and socket bytes per (user, resource, kind); a response's bytes are its socket's bytesWritten delta. */
export class LoadMeter {
  private rows = new Map<string, LoadRow>();
  private readonly open = new Set<OpenMeter>();

  /** Counts a request; its bytes are taken from the socket until the response closes. */
  begin(socket: Socket, res: ServerResponse, key: OpenMeter['key']): void {
    // HTTP/1.1 answers one request at a time per connection, so the delta is this response's alone.
    const m: OpenMeter = { socket, base: socket.bytesWritten, key, row: this.row(key) };
    m.row.requests++;
    this.open.add(m);
    res.once('close', () => {
      m.row.bytes += socket.bytesWritten - m.base;
      this.open.delete(m);
    });
  }

  snapshot(): LoadSnapshot {
    const live = new Map<LoadRow, number>();
    for (const m of this.open) live.set(m.row, (live.get(m.row) ?? 0) + m.socket.bytesWritten - m.base);
    const rows = [...this.rows.values()].map((r) => ({ ...r, bytes: r.bytes + (live.get(r) ?? 0) }));
    const total = { requests: 0, bytes: 0 };
    const byUser: Record<string, LoadCount> = {};
    const byResource: Record<string, LoadCount> = {};
    const byKind: Record<string, LoadCount> = {};
    for (const r of rows) {
      for (const [into, k] of [
        [byUser, r.user],
        [byResource, r.resource],
        [byKind, r.kind],
      ] as const) {
        const c = (into[k] ??= { requests: 0, bytes: 0 });
        c.requests += r.requests;
        c.bytes += r.bytes;
      }
      total.requests += r.requests;
      total.bytes += r.bytes;
    }
    return { total, rows, byUser, byResource, byKind };
  }

  /** Starts counting from zero; open responses go on counting only what they send from now on. */
  reset(): void {
    this.rows = new Map();
    for (const m of this.open) {
      m.base = m.socket.bytesWritten;
      m.row = this.row(m.key);
    }
  }

  private row(key: OpenMeter['key']): LoadRow {
    const id = `${key.user}\0${key.resource}\0${key.kind}`;
    let r = this.rows.get(id);
    if (!r) this.rows.set(id, (r = { ...key, requests: 0, bytes: 0 }));
    return r;
  }
}
