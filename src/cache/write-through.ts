import { LRUCache } from 'lru-cache';
import { RateLimitError, UpstreamError } from '../errors.js';
import type { CacheCounters } from './counters.js';
import { HTTP_PREFIX } from './entry.js';
import { parseBody } from './http-policy.js';
import type { Fleet, Origin, OriginResponse } from './ports.js';
import { normalizeUrl } from './request-key.js';
import type { TieredEntries } from './tiered-entries.js';

/**
 * WriteThrough: a write (POST, PATCH, PUT, DELETE) goes to the origin as sent, never queued behind a paused
 * scope (it is refused at once instead), and once GitHub accepted it (status < 400) every entry of the
 * written resource, of what lies below it and of its collection is dropped, for every token and media type.
 * The resources written stay remembered for `rememberMs`, so reads below them go to GitHub rather than to a
 * peer that may hold the entry from before the write. Then the fleet (when there is one) is told, fire and
 * forget: every peer drops the same entries in the scopes this node proved to it (see src/p2p/invalidation.ts).
 * The write's answer never waits on a peer.
 */

/** One write to send. Header names are lowercase; no Authorization. */
export interface WriteRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Uint8Array | undefined;
  readonly token: string | undefined;
  readonly scheme?: 'token' | 'bearer' | undefined;
  readonly redirect?: 'follow' | 'manual' | undefined;
  readonly scopeId: string;
  readonly signal: AbortSignal;
}

/**
 * Resources written recently (by this node, or by a peer whose notice arrived), with when: the resource and
 * everything below it, and its collection.
 */
export class RecentWrites {
  readonly #written: LRUCache<string, number>;
  readonly #apiUrl: string;

  constructor(options: { githubApiUrl: string; rememberMs: number; max?: number }) {
    this.#apiUrl = options.githubApiUrl;
    this.#written = new LRUCache<string, number>({ max: options.max ?? 10_000, ttl: options.rememberMs });
  }

  /** Remembers a write to `resource` (a URL without query or trailing slash) under `collection`, made at `at` (ms). */
  add(resource: string, collection: string, at = 0): void {
    for (const path of [`${resource}/*`, collection]) this.#written.set(path, Math.max(at, this.#written.get(path) ?? 0));
  }

  /** Whether `url` is a resource written recently, lies below one, or is the collection of one. */
  covers(url: string): boolean {
    return this.writtenAt(url) !== undefined;
  }

  /** When the latest remembered write covering `url` was made (see covers), or undefined if none is. */
  writtenAt(url: string): number | undefined {
    if (this.#written.size === 0) return undefined;
    let path = url.split('?', 1)[0]!.replace(/\/+$/, '');
    let latest = this.#written.get(path);
    while (path.length > this.#apiUrl.length) {
      const below = this.#written.get(`${path}/*`);
      if (below !== undefined) latest = Math.max(latest ?? 0, below);
      path = path.slice(0, path.lastIndexOf('/'));
    }
    return latest;
  }
}

/** What a write to `url` invalidates: the resource (normalized, no query or trailing slash) and its collection. */
export function writtenResource(url: string): { resource: string; collection: string } {
  const target = new URL(normalizeUrl(url));
  target.search = '';
  const resource = target.href.replace(/\/+$/, '');
  return { resource, collection: resource.slice(0, resource.lastIndexOf('/')) };
}

/**
 * Drops the entries a write to `resource` makes stale: the resource, below it, and its collection, for every
 * method, token and media type, or only for `scopeIds` (a peer's notice). Returns how many went.
 */
export function dropWritten(tiers: TieredEntries, resource: string, collection: string, scopeIds?: ReadonlySet<string>): number {
  const prefixes = [`${resource} `, `${resource}?`, `${resource}/`, `${collection} `, `${collection}?`];
  let dropped = 0;
  for (const prefix of prefixes) {
    dropped += scopeIds === undefined
      ? tiers.deleteByPrefix(HTTP_PREFIX + prefix)
      // A key is `h:<url> <method> <scope> …` and a URL holds no space: the scope is the third field.
      : tiers.deleteByPrefixWhere(HTTP_PREFIX + prefix, (key) => scopeIds.has(key.split(' ', 3)[2] ?? ''));
  }
  return dropped;
}

export class WriteThrough {
  readonly #p: { tiers: TieredEntries; origin: Origin; counters: CacheCounters; recentWrites: RecentWrites };
  #fleet: Fleet | undefined;

  constructor(parts: { tiers: TieredEntries; origin: Origin; counters: CacheCounters; recentWrites: RecentWrites }) {
    this.#p = parts;
  }

  /** The fleet to tell of each write (set once the P2P host runs; undefined to stop telling). */
  set fleet(fleet: Fleet | undefined) {
    this.#fleet = fleet;
  }

  /** Sends the write; resolves with a success (status < 400), else rejects with RateLimitError or UpstreamError. */
  async write(request: WriteRequest): Promise<OriginResponse> {
    const { origin, counters } = this.#p;
    try {
      await origin.admit({ scopeId: request.scopeId, url: request.url, mayWait: false, signal: request.signal,
        refusal: 'GitHub asked this token to pause; the write was not sent', withToken: request.token !== undefined });
    } catch (err) {
      if (err instanceof RateLimitError) counters.rateLimited++;
      throw err;
    }
    counters.writes++;
    counters.apiCallsMade++;
    const response = await origin.send(request);
    if (response.status < 400) this.#invalidate(request.url, request.scopeId);
    if (response.status < 400) return response;
    const data = parseBody(response.body, response.headers['content-type']);
    const message = response.message ?? `HTTP ${response.status}`;
    if (response.rateLimitedUntil !== undefined) {
      counters.rateLimited++;
      throw new RateLimitError(request.scopeId, response.rateLimitedUntil, message, { status: response.status, headers: { ...response.headers }, data, body: response.body });
    }
    throw new UpstreamError(response.status, request.method, request.url, message, { response: { headers: { ...response.headers }, data, body: response.body } });
  }

  /**
   * Drops the written resource (and below it) and its collection, for every token and media type; then tells
   * the fleet (fire and forget) when the URL is under the GitHub API.
   */
  #invalidate(url: string, scopeId: string): void {
    const { resource, collection } = writtenResource(url);
    this.#p.recentWrites.add(resource, collection);
    this.#p.counters.invalidations += dropWritten(this.#p.tiers, resource, collection);
    if (this.#fleet !== undefined && this.#p.origin.isApiUrl(resource)) {
      try {
        this.#fleet.invalidate(resource, scopeId);
      } catch {
        // Fire and forget: the fleet never fails a write.
      }
    }
  }
}
