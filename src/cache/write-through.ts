import { LRUCache } from 'lru-cache';
import { RateLimitError, UpstreamError } from '../errors.js';
import type { CacheCounters } from './counters.js';
import { HTTP_PREFIX } from './entry.js';
import { parseBody } from './http-policy.js';
import type { Origin, OriginResponse } from './ports.js';
import { normalizeUrl } from './request-key.js';
import type { TieredEntries } from './tiered-entries.js';

/**
 * WriteThrough: a write (POST, PATCH, PUT, DELETE) goes to the origin as sent, never queued behind a paused
 * scope (it is refused at once instead), and once GitHub accepted it (status < 400) every entry of the
 * written resource, of what lies below it and of its collection is dropped, for every token and media type.
 * The resources written stay remembered for `rememberMs`, so reads below them go to GitHub rather than to a
 * peer that may hold the entry from before the write.
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

/** Resources this node wrote recently: the resource and everything below it, and its collection. */
export class RecentWrites {
  readonly #written: LRUCache<string, true>;
  readonly #apiUrl: string;

  constructor(options: { githubApiUrl: string; rememberMs: number; max?: number }) {
    this.#apiUrl = options.githubApiUrl;
    this.#written = new LRUCache<string, true>({ max: options.max ?? 10_000, ttl: options.rememberMs });
  }

  /** Remembers a write to `resource` (a URL without query or trailing slash) under `collection`. */
  add(resource: string, collection: string): void {
    this.#written.set(`${resource}/*`, true);
    this.#written.set(collection, true);
  }

  /** Whether `url` is a resource written recently, lies below one, or is the collection of one. */
  covers(url: string): boolean {
    if (this.#written.size === 0) return false;
    let path = url.split('?', 1)[0]!.replace(/\/+$/, '');
    if (this.#written.has(path)) return true;
    while (path.length > this.#apiUrl.length) {
      if (this.#written.has(`${path}/*`)) return true;
      path = path.slice(0, path.lastIndexOf('/'));
    }
    return false;
  }
}

export class WriteThrough {
  readonly #p: { tiers: TieredEntries; origin: Origin; counters: CacheCounters; recentWrites: RecentWrites };

  constructor(parts: { tiers: TieredEntries; origin: Origin; counters: CacheCounters; recentWrites: RecentWrites }) {
    this.#p = parts;
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
    if (response.status < 400) this.#invalidate(request.url);
    if (response.status < 400) return response;
    const data = parseBody(response.body, response.headers['content-type']);
    const message = response.message ?? `HTTP ${response.status}`;
    if (response.rateLimitedUntil !== undefined) {
      counters.rateLimited++;
      throw new RateLimitError(request.scopeId, response.rateLimitedUntil, message, { status: response.status, headers: { ...response.headers }, data, body: response.body });
    }
    throw new UpstreamError(response.status, request.method, request.url, message, { response: { headers: { ...response.headers }, data, body: response.body } });
  }

  /** Drops the written resource (and below it) and its collection, for every token and media type. */
  #invalidate(url: string): void {
    const target = new URL(normalizeUrl(url));
    target.search = '';
    const resource = target.href.replace(/\/+$/, '');
    const collection = resource.slice(0, resource.lastIndexOf('/'));
    this.#p.recentWrites.add(resource, collection);
    let dropped = 0;
    for (const prefix of [`${resource} `, `${resource}?`, `${resource}/`, `${collection} `, `${collection}?`]) {
      dropped += this.#p.tiers.deleteByPrefix(HTTP_PREFIX + prefix);
    }
    this.#p.counters.invalidations += dropped;
  }
}
