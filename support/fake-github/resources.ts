/**
 * What the fake GitHub serves, and how a representation is built: resources at exact paths, paginated
 * collections with RFC 5988 `link` headers, items of a collection addressed by `number` or `id`, and the
 * writes that change them. Guarantees the caching rules a client relies on: an ETag differs per token, per
 * Accept and per `link` (so no two tokens share one, and a page whose neighbours moved is not current),
 * If-None-Match uses weak comparison, If-Modified-Since compares with `Last-Modified`, writes move
 * `Last-Modified` forward even within one second, and whatever a caller may not see is absent (404).
 *
 * Everything stored or returned is a deep copy, so a spec cannot change what is served by accident.
 */
import { createHash } from 'node:crypto';
import { ANONYMOUS, type Identity } from './tokens.js';

/** Who may see a resource or collection. */
export interface Visibility {
  /** Tokens that may see it. Default: every token and anonymous callers. */
  visibleTo?: readonly string[];
  /** Whether anonymous callers may see it. Default: true without `visibleTo`, false with it. */
  anonymous?: boolean;
}

export interface ResourceOptions extends Visibility {
  /** An HTTP date sent as `Last-Modified`, which enables `If-Modified-Since`. Bumped by writes. */
  lastModified?: string;
  /** A raw `link` header to send with the resource (collections build theirs; see `setCollection`). */
  link?: string;
  /** Extra response headers for this resource. */
  headers?: Record<string, string>;
}

export interface CollectionOptions extends Visibility {
  /** Items per page when the request has no `per_page` (GitHub: 30). `per_page` is capped at 100. */
  perPage?: number;
  /** An HTTP date sent as `Last-Modified` on every page. Bumped by writes. */
  lastModified?: string;
}

interface Resource extends Visibility {
  body: unknown;
  lastModified: string | undefined;
  link: string | undefined;
  headers: Record<string, string>;
}

interface Collection extends Visibility {
  items: unknown[];
  perPage: number;
  lastModified: string | undefined;
}

export type Found =
  | { kind: 'resource'; key: string; resource: Resource; value: unknown; visibility: Visibility }
  | { kind: 'collection'; key: string; collection: Collection; visibility: Visibility }
  | { kind: 'item'; key: string; collection: Collection; index: number; value: unknown; visibility: Visibility };

/** The parts of a request that decide what it is answered. */
export interface ResourceRequest {
  /** Path without query, trailing slash removed. */
  path: string;
  /** Path with its query, as received. */
  fullPath: string;
  query: URLSearchParams;
  /** Lower-cased. */
  accept: string;
  identity: Identity;
  ifNoneMatch: string | undefined;
  ifModifiedSince: string | undefined;
}

/** What a GET or HEAD would return with 200. */
export interface Representation {
  payload: string;
  contentType: string;
  etag: string;
  lastModified: string | undefined;
  headers: Record<string, string>;
}

/** The outcome of a write: a status and the JSON to answer with (none for 204). */
export type WriteOutcome = { status: 200 | 201; value: unknown } | { status: 204 } | { status: 422 };

const MAX_PER_PAGE = 100;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Strip the weak prefix: If-None-Match uses weak comparison (RFC 9110 §13.1.2). */
function opaqueTag(tag: string): string {
  const trimmed = tag.trim();
  return trimmed.startsWith('W/') ? trimmed.slice(2) : trimmed;
}

export function normalizePath(pathname: string): string {
  return pathname.length > 1 && pathname.endsWith('/') ? pathname.replace(/\/+$/, '') || '/' : pathname;
}

/** A later HTTP date than `previous` (writes inside one second must still move Last-Modified). */
function nextHttpDate(previous: string | undefined, nowMs: number): string {
  const prev = previous === undefined ? Number.NaN : Date.parse(previous);
  const at = Number.isNaN(prev) ? nowMs : Math.max(nowMs, prev + 1000);
  return new Date(at).toUTCString();
}

/** The resources and collections of one fake GitHub. */
export class ResourceStore {
  readonly #resources = new Map<string, Resource>();
  readonly #collections = new Map<string, Collection>();

  setResource(path: string, body: unknown, opts: ResourceOptions = {}): void {
    this.#resources.set(key(path), {
      body: structuredClone(body),
      visibleTo: opts.visibleTo,
      anonymous: opts.anonymous,
      lastModified: opts.lastModified,
      link: opts.link,
      headers: { ...opts.headers },
    });
  }

  setCollection(path: string, items: readonly unknown[], opts: CollectionOptions = {}): void {
    this.#collections.set(key(path), {
      items: structuredClone([...items]),
      perPage: Math.min(Math.max(1, opts.perPage ?? 30), MAX_PER_PAGE),
      visibleTo: opts.visibleTo,
      anonymous: opts.anonymous,
      lastModified: opts.lastModified,
    });
  }

  getResource(path: string): unknown {
    const found = this.lookup(key(path), key(path));
    return found === undefined ? undefined : structuredClone(found.kind === 'collection' ? found.collection.items : found.value);
  }

  deleteResource(path: string): void {
    this.#resources.delete(key(path));
    this.#collections.delete(key(path));
  }

  /** What is served at this path: a resource (the exact query first), a collection, or a collection's item. */
  lookup(fullPath: string, path: string): Found | undefined {
    for (const candidate of fullPath === path ? [path] : [fullPath, path]) {
      const resource = this.#resources.get(candidate);
      if (resource !== undefined) return { kind: 'resource', key: candidate, resource, value: resource.body, visibility: resource };
    }
    const collection = this.#collections.get(path);
    if (collection !== undefined) return { kind: 'collection', key: path, collection, visibility: collection };
    const slash = path.lastIndexOf('/');
    const parent = slash > 0 ? this.#collections.get(path.slice(0, slash)) : undefined;
    if (parent === undefined) return undefined;
    const id = path.slice(slash + 1);
    const index = parent.items.findIndex((item) => isPlainObject(item) && (String(item['number']) === id || String(item['id']) === id));
    if (index === -1) return undefined;
    return { kind: 'item', key: path, collection: parent, index, value: parent.items[index], visibility: parent };
  }

  visible(visibility: Visibility, identity: Identity): boolean {
    if (identity.kind !== 'token' || identity.token === undefined) {
      return visibility.anonymous ?? visibility.visibleTo === undefined;
    }
    return visibility.visibleTo === undefined || visibility.visibleTo.includes(identity.token);
  }

  /** What a 200 would carry for this caller, or undefined for 404 (missing or hidden). `baseUrl` prefixes page links. */
  represent(request: ResourceRequest, baseUrl: string): Representation | undefined {
    const found = this.lookup(request.fullPath, request.path);
    if (found === undefined || !this.visible(found.visibility, request.identity)) return undefined;

    let value: unknown;
    let link: string | undefined;
    let lastModified: string | undefined;
    let headers: Record<string, string> = {};
    if (found.kind === 'resource') {
      value = found.resource.body;
      link = found.resource.link;
      lastModified = found.resource.lastModified;
      headers = found.resource.headers;
    } else if (found.kind === 'item') {
      value = found.value;
      lastModified = found.collection.lastModified;
    } else {
      const page = pageOf(found.collection, request, baseUrl);
      value = page.items;
      link = page.link;
      lastModified = found.collection.lastModified;
    }

    const raw = typeof value === 'string' && /application\/vnd\.github(\.v3)?\.raw/.test(request.accept);
    const payload = raw ? (value as string) : (JSON.stringify(value) ?? 'null');
    // Like GitHub, the ETag depends on who asks and in which media type, so no two tokens share one.
    // The link header is part of it so that a page whose neighbours changed is not revalidated as current.
    const scope = request.identity.token === undefined ? ANONYMOUS : `token:${request.identity.token}`;
    const digest = createHash('sha256')
      .update(payload).update('\0').update(scope).update('\0').update(request.accept).update('\0').update(link ?? '')
      .digest('hex');
    return {
      payload,
      contentType: raw ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
      etag: `W/"${digest}"`,
      lastModified,
      headers: { ...headers, ...(link !== undefined ? { link } : {}) },
    };
  }

  /** Whether the request's validators still match this representation (a 304 answer). */
  notModified(request: ResourceRequest, rep: Representation): boolean {
    if (request.ifNoneMatch !== undefined) {
      const wanted = request.ifNoneMatch.split(',').map((tag) => tag.trim()).filter((tag) => tag !== '');
      const current = opaqueTag(rep.etag);
      return wanted.some((tag) => tag === '*' || opaqueTag(tag) === current);
    }
    if (request.ifModifiedSince !== undefined && rep.lastModified !== undefined) {
      const since = Date.parse(request.ifModifiedSince);
      const modified = Date.parse(rep.lastModified);
      return !Number.isNaN(since) && !Number.isNaN(modified) && since >= modified;
    }
    return false;
  }

  /**
   * POST appends to a collection, PATCH merges, PUT replaces or creates, DELETE removes. `found` is what
   * `lookup` gave for the path (already checked visible); undefined outcome means 404.
   */
  write(method: string, path: string, found: Found | undefined, input: unknown, now: number): WriteOutcome | undefined {
    switch (method) {
      case 'POST': {
        if (found?.kind !== 'collection') return undefined;
        const item = input ?? {};
        found.collection.items.push(structuredClone(item));
        if (found.collection.lastModified !== undefined) {
          found.collection.lastModified = nextHttpDate(found.collection.lastModified, now);
        }
        return { status: 201, value: item };
      }
      case 'PATCH': {
        if (found === undefined || found.kind === 'collection') return undefined;
        const merged = isPlainObject(found.value) && isPlainObject(input) ? { ...found.value, ...input } : input;
        if (found.kind === 'resource') {
          found.resource.body = structuredClone(merged);
          if (found.resource.lastModified !== undefined) {
            found.resource.lastModified = nextHttpDate(found.resource.lastModified, now);
          }
        } else {
          found.collection.items[found.index] = structuredClone(merged);
        }
        return { status: 200, value: merged };
      }
      case 'PUT': {
        if (found?.kind === 'collection') {
          if (!Array.isArray(input)) return { status: 422 };
          found.collection.items = structuredClone(input);
          return { status: 200, value: input };
        }
        if (found?.kind === 'item') {
          found.collection.items[found.index] = structuredClone(input);
          return { status: 200, value: input };
        }
        if (found?.kind === 'resource') {
          found.resource.body = structuredClone(input);
          if (found.resource.lastModified !== undefined) {
            found.resource.lastModified = nextHttpDate(found.resource.lastModified, now);
          }
          return { status: 200, value: input };
        }
        this.setResource(path, input);
        return { status: 201, value: input };
      }
      case 'DELETE': {
        if (found === undefined) return undefined;
        if (found.kind === 'item') found.collection.items.splice(found.index, 1);
        else this.deleteResource(found.key);
        return { status: 204 };
      }
    }
    return undefined;
  }
}

/** The lookup key of a configured path: trailing slash dropped, query kept. */
function key(path: string): string {
  const at = path.indexOf('?');
  return at === -1 ? normalizePath(path) : normalizePath(path.slice(0, at)) + path.slice(at);
}

function pageOf(collection: Collection, request: ResourceRequest, baseUrl: string): { items: unknown[]; link: string | undefined } {
  const perPageParam = Number.parseInt(request.query.get('per_page') ?? '', 10);
  const perPage = Number.isFinite(perPageParam) && perPageParam > 0 ? Math.min(perPageParam, MAX_PER_PAGE) : collection.perPage;
  const pageParam = Number.parseInt(request.query.get('page') ?? '', 10);
  const page = Number.isFinite(pageParam) && pageParam > 0 ? pageParam : 1;
  const last = Math.max(1, Math.ceil(collection.items.length / perPage));
  const items = collection.items.slice((page - 1) * perPage, page * perPage);

  if (last === 1 && page === 1) return { items, link: undefined };
  const pageUrl = (n: number): string => {
    const params = new URLSearchParams(request.query);
    params.set('page', String(n));
    return `${baseUrl}${request.path}?${params.toString()}`;
  };
  const parts: string[] = [];
  if (page > 1) parts.push(`<${pageUrl(Math.min(page - 1, last))}>; rel="prev"`);
  if (page < last) parts.push(`<${pageUrl(page + 1)}>; rel="next"`, `<${pageUrl(last)}>; rel="last"`);
  if (page > 1) parts.push(`<${pageUrl(1)}>; rel="first"`);
  return { items, link: parts.join(', ') };
}
