/**
 * Watch streams as the apiserver's watch cache serves them: one event history for every resource,
 * compacted as a whole; replay from a resourceVersion or synthetic ADDED for the current state;
 * 410 Expired from before compaction (as an ERROR event or an HTTP status); bookmarks; server-side
 * timeouts; and the per-watcher ADDED/DELETED translation of selectors. It knows nothing of HTTP
 * and answers through `Reply`.
 */
import { badRequest, RESOURCES, statusBody, withTypeMeta, type ResourceName, type ResourceType, type StoredObject } from './resources.js';
import { selectorOf, type Matcher } from './selectors.js';

/** The `type` of a watch event line. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** How a watch from a compacted resourceVersion is refused. */
export type ExpiredWatchMode = 'event' | 'http';

/** How the store answers a request: one JSON body, or a watch stream. */
export interface Reply {
  json(code: number, body: unknown): void;
  /** Starts a 200 watch stream; its head goes out at once. */
  stream(): WatchStream;
}

/** One open watch response. */
export interface WatchStream {
  write(text: string): void;
  /** Ends the stream cleanly (the terminating chunk), after `text` if given. */
  end(text?: string): void;
  /** Destroys the connection mid-stream. */
  cut(): void;
  onClose(fn: () => void): void;
}

/** One write, as the history keeps it. */
export interface HistoryEntry {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: ResourceName;
  /** Current object; for DELETED the last state stamped with the deletion resourceVersion. */
  obj: StoredObject;
  /** Previous state (MODIFIED/DELETED), needed to translate events for selector-filtered watches. */
  prev?: StoredObject;
}

/** Serialized event lines of one history entry, by delivered type, shared by every watch that gets them. */
type LineCache = Partial<Record<'ADDED' | 'MODIFIED' | 'DELETED', string>>;

interface WatchConn {
  type: ResourceType;
  namespace: string | undefined;
  stream: WatchStream;
  bookmarks: boolean;
  matches: Matcher | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** The state a watch starts from: the current revision, and the objects for a watch without one. */
export interface WatchSource {
  rv: number;
  objects: () => readonly StoredObject[];
}

/** Fixed at start: how much history is kept, and where it begins. */
export interface WatchHubOptions {
  maxHistory: number;
  initialResourceVersion: number;
  expiredWatchMode: ExpiredWatchMode;
}

/** One line of a watch stream. */
export function eventLine(type: WatchEventType, object: unknown): string {
  return `${JSON.stringify({ type, object })}\n`;
}

/** The event history and the open watches of every resource. */
export class WatchHub {
  private readonly history: HistoryEntry[] = [];
  private readonly watches = new Map<ResourceName, Set<WatchConn>>();
  private readonly maxHistory: number;
  private compactedRv: number;
  expiredWatchMode: ExpiredWatchMode;
  /** Server-side end of watches that send no timeoutSeconds; undefined = never. */
  defaultWatchTimeoutMs: number | undefined;

  constructor(opts: WatchHubOptions) {
    this.maxHistory = opts.maxHistory;
    this.compactedRv = opts.initialResourceVersion;
    this.expiredWatchMode = opts.expiredWatchMode;
    for (const r of Object.keys(RESOURCES) as ResourceName[]) this.watches.set(r, new Set());
  }

  /** Watches and continued lists must start at or after this revision; older ones get 410 Expired. */
  get oldestRv(): number {
    return this.compactedRv;
  }

  /** Forgets all history, like etcd compaction at `rv`. */
  compact(rv: number): void {
    this.history.length = 0;
    this.compactedRv = rv;
  }

  /** GET ?watch=true: replay from resourceVersion (or the current state), then live events. */
  watch(type: ResourceType, namespace: string | undefined, params: URLSearchParams, reply: Reply, source: WatchSource): void {
    const matches = selectorOf(type, params);
    const timeoutMs = this.timeoutOf(params.get('timeoutSeconds'));
    const inScope = (o: StoredObject): boolean => namespace === undefined || o.metadata.namespace === namespace;
    const rvRaw = params.get('resourceVersion') ?? '';
    let replay: string[];
    if (rvRaw === '' || rvRaw === '0') {
      // Unset/"0": synthetic ADDED for the current state, then live events.
      replay = source
        .objects()
        .filter((o) => inScope(o) && (!matches || matches(o)))
        .map((o) => eventLine('ADDED', withTypeMeta(type, o)));
    } else {
      const from = parseRv(rvRaw);
      if (from < this.compactedRv) {
        const status = statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
        if (this.expiredWatchMode === 'http') reply.json(410, status);
        else reply.stream().end(eventLine('ERROR', status));
        return;
      }
      replay = this.replayFrom(from, type, inScope, matches);
    }

    const stream = reply.stream();
    const w: WatchConn = { type, namespace, stream, bookmarks: params.get('allowWatchBookmarks') === 'true', matches, timer: undefined };
    // Replay and registration happen in the same tick, so no live event can slip in between.
    if (replay.length > 0) stream.write(replay.join(''));
    const set = this.watchSet(type.resource);
    set.add(w);
    stream.onClose(() => {
      set.delete(w);
      if (w.timer) clearTimeout(w.timer);
    });
    if (timeoutMs !== undefined) w.timer = setTimeout(() => this.dropWatch(w, 'end'), timeoutMs);
  }

  /** Keeps a write in the history and sends it to the watches that see it. */
  record(entry: HistoryEntry): void {
    this.history.push(entry);
    if (this.history.length > this.maxHistory) {
      // Trim in chunks so a long test does not pay O(n) per event.
      const drop = this.history.splice(0, Math.max(1, Math.floor(this.maxHistory / 10)));
      this.compactedRv = drop[drop.length - 1]?.rv ?? this.compactedRv;
    }
    const set = this.watchSet(entry.resource);
    if (set.size === 0) return;
    const type = RESOURCES[entry.resource];
    // Lines are cached for this event only: kept on history entries they would pin 10 KB per node update.
    const cache: LineCache = {};
    for (const w of set) {
      if (w.namespace !== undefined && entry.obj.metadata.namespace !== w.namespace) continue;
      const line = convert(type, entry, w.matches, cache);
      if (line !== undefined) w.stream.write(line);
    }
  }

  /** Open watches, of one resource or all. */
  watchCount(resource?: ResourceName): number {
    let n = 0;
    for (const [r, set] of this.watches) if (resource === undefined || r === resource) n += set.size;
    return n;
  }

  /** Ends open watches (of one resource or all): 'cut' destroys the connection, 'end' closes cleanly after `text`. */
  dropWatches(how: 'cut' | 'end', resource?: ResourceName, text?: string): number {
    const all = this.select(resource, () => true);
    for (const w of all) {
      if (text !== undefined) w.stream.write(text);
      this.dropWatch(w, how);
    }
    return all.length;
  }

  /** Writes raw text to open watches (of one resource or all); returns how many. */
  writeToWatches(text: string, resource?: ResourceName): number {
    const all = this.select(resource, () => true);
    for (const w of all) w.stream.write(text);
    return all.length;
  }

  /** BOOKMARK at resourceVersion `rv` to watches that asked for them (or all, with `force`). */
  bookmark(rv: number, force: boolean, resource?: ResourceName): number {
    const all = this.select(resource, (w) => w.bookmarks || force);
    for (const w of all) {
      w.stream.write(eventLine('BOOKMARK', { kind: w.type.kind, apiVersion: w.type.apiVersion, metadata: { resourceVersion: String(rv) } }));
    }
    return all.length;
  }

  private timeoutOf(timeoutRaw: string | null): number | undefined {
    if (timeoutRaw === null || timeoutRaw === '') return this.defaultWatchTimeoutMs;
    if (!/^\d+$/.test(timeoutRaw)) throw badRequest(`invalid timeoutSeconds: ${timeoutRaw}`);
    const s = Number(timeoutRaw);
    return s > 0 ? s * 1000 : this.defaultWatchTimeoutMs;
  }

  /** The event lines after revision `from` that a watch of `type` sees. */
  private replayFrom(from: number, type: ResourceType, inScope: (o: StoredObject) => boolean, matches: Matcher | undefined): string[] {
    const replay: string[] = [];
    for (let i = this.firstAfter(from); i < this.history.length; i++) {
      const e = this.history[i];
      const line = e && e.resource === type.resource && inScope(e.obj) ? convert(type, e, matches, {}) : undefined;
      if (line !== undefined) replay.push(line);
    }
    return replay;
  }

  private watchSet(resource: ResourceName): Set<WatchConn> {
    const s = this.watches.get(resource);
    if (!s) throw new Error(`no such resource: ${resource}`);
    return s;
  }

  private select(resource: ResourceName | undefined, pred: (w: WatchConn) => boolean): WatchConn[] {
    const out: WatchConn[] = [];
    for (const [r, set] of this.watches) if (resource === undefined || r === resource) for (const w of set) if (pred(w)) out.push(w);
    return out;
  }

  private dropWatch(w: WatchConn, how: 'cut' | 'end'): void {
    this.watchSet(w.type.resource).delete(w);
    if (w.timer) clearTimeout(w.timer);
    if (how === 'end') w.stream.end();
    else w.stream.cut();
  }

  /** Index of the first history entry with rv > `rv` (history is sorted by rv). */
  private firstAfter(rv: number): number {
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.history[mid]?.rv ?? Infinity) <= rv) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function parseRv(raw: string): number {
  if (!/^\d+$/.test(raw)) throw badRequest(`invalid resource version: ${raw}`);
  return Number(raw);
}

/** Mirrors the apiserver watch cache's per-watcher event translation for selectors. */
function convert(type: ResourceType, e: HistoryEntry, matches: Matcher | undefined, cache: LineCache): string | undefined {
  if (!matches) return (cache[e.type] ??= eventLine(e.type, withTypeMeta(type, e.obj)));
  const cur = e.type !== 'DELETED' && matches(e.obj);
  const old = e.prev !== undefined && matches(e.prev);
  if (cur) {
    const t = old ? 'MODIFIED' : 'ADDED';
    return (cache[t] ??= eventLine(t, withTypeMeta(type, e.obj)));
  }
  if (old && e.prev) {
    // Object left the selector (or was deleted): DELETED with previous content at the event's RV.
    const prev = e.prev;
    return (cache.DELETED ??= eventLine('DELETED', withTypeMeta(type, { ...prev, metadata: { ...prev.metadata, resourceVersion: String(e.rv) } })));
  }
  return undefined;
}
