/**
 * Lists as the apiserver pages them: `limit` and `continue` tokens over a consistent snapshot (like
 * an etcd read at the first page's revision), remainingItemCount when no selector filters, and the
 * 410 Expired of a token whose snapshot is gone.
 */
import { ApiError, badRequest, statusBody, type ResourceName, type ResourceType, type StoredObject } from './resources.js';
import { selectorOf } from './selectors.js';
import type { Reply } from './watch.js';

const MAX_SNAPSHOTS = 32;

/** kube-apiserver's message for a continue token past compaction, word for word. */
const CONTINUE_EXPIRED =
  'The provided continue parameter is too old to display a consistent list result. ' +
  'You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. ' +
  'Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted ' +
  'between the time the first chunk was returned and now may show up in the list.';

/** The state a list is served from: the current revision and objects, and the oldest revision still readable. */
export interface ListSource {
  rv: number;
  compactedRv: number;
  /** Every object of the resource, sorted by namespace and name; never mutated, so it doubles as a snapshot. */
  objects: () => readonly StoredObject[];
}

/** Where a page starts: in which snapshot, at which index. */
interface PageStart {
  snapshotRv: number;
  items: readonly StoredObject[];
  start: number;
}

/** The list snapshots that outstanding continue tokens read from. */
export class ListPages {
  private readonly snapshots = new Map<string, readonly StoredObject[]>();
  /** Lists ignore `limit` and answer in one page, as the apiserver's watch cache does. */
  ignoreLimit = false;

  /** GET on a collection: one page, consistent with earlier pages of the same continue chain. */
  list(type: ResourceType, namespace: string | undefined, params: URLSearchParams, reply: Reply, source: ListSource): void {
    const matches = selectorOf(type, params);
    const limitRaw = this.ignoreLimit ? null : params.get('limit');
    const limit = limitRaw === null || limitRaw === '' ? 0 : Number(limitRaw);
    if (!Number.isSafeInteger(limit) || limit < 0) throw badRequest(`invalid limit: ${limitRaw}`);
    const { snapshotRv, items, start } = this.pageStart(type, params.get('continue'), source);

    const inScope = (o: StoredObject): boolean => namespace === undefined || o.metadata.namespace === namespace;
    const page: StoredObject[] = [];
    let i = start;
    for (; i < items.length && (limit === 0 || page.length < limit); i++) {
      const o = items[i];
      if (o && inScope(o) && (!matches || matches(o))) page.push(o);
    }
    const metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number } = {
      resourceVersion: String(snapshotRv),
    };
    // Like etcd's key range: more keys in the range (namespace), matching the selector or not, means another page.
    const rest = namespace === undefined ? items.length - i : items.slice(i).filter(inScope).length;
    if (limit > 0 && rest > 0) {
      // Remember the snapshot so later pages are consistent with this one (like an etcd read at rv).
      this.remember(`${type.resource}@${snapshotRv}`, items);
      metadata.continue = encodeContinue(type.resource, snapshotRv, i);
      if (!matches) metadata.remainingItemCount = rest;
    }
    reply.json(200, { kind: `${type.kind}List`, apiVersion: type.apiVersion, metadata, items: page });
  }

  /** Forgets every snapshot: outstanding continue tokens get 410. */
  clear(): void {
    this.snapshots.clear();
  }

  private pageStart(type: ResourceType, cont: string | null, source: ListSource): PageStart {
    if (!cont) return { snapshotRv: source.rv, items: source.objects(), start: 0 };
    const tok = decodeContinue(cont, type.resource);
    const snap = this.snapshots.get(`${type.resource}@${tok.rv}`);
    if (!snap || tok.rv < source.compactedRv) throw new ApiError(statusBody(410, 'Expired', CONTINUE_EXPIRED));
    return { snapshotRv: tok.rv, items: snap, start: Math.min(tok.start, snap.length) };
  }

  private remember(key: string, items: readonly StoredObject[]): void {
    if (this.snapshots.has(key)) return;
    this.snapshots.set(key, items);
    if (this.snapshots.size > MAX_SNAPSHOTS) {
      const oldest = this.snapshots.keys().next().value;
      if (oldest !== undefined) this.snapshots.delete(oldest);
    }
  }
}

function encodeContinue(resource: ResourceName, rv: number, start: number): string {
  // Same envelope shape as the apiserver's token (base64 JSON with the snapshot revision).
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', r: resource, rv, start })).toString('base64url');
}

function decodeContinue(token: string, resource: ResourceName): { rv: number; start: number } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'rv' in parsed && 'start' in parsed && 'r' in parsed && parsed.r === resource) {
      const { rv, start } = parsed;
      if (Number.isSafeInteger(rv) && Number.isSafeInteger(start) && (start as number) >= 0) {
        return { rv: rv as number, start: start as number };
      }
    }
  } catch {
    // fall through
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}
