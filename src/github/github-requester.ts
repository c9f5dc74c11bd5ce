import { endpoint } from '@octokit/endpoint';
import { LRUCache } from 'lru-cache';
import pLimit, { type LimitFunction } from 'p-limit';
import { sha256Hex, type CacheEntry } from '../cache/entry.js';
import { deepFreeze } from '../cache/json-value.js';
import { Singleflight } from '../cache/singleflight.js';
import { TieredEntries } from '../cache/tiered-entries.js';
import { CacheValueError, RateLimitError, UpstreamError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ResolvedCacheOptions } from '../options.js';
import { RateLimitTracker, type ScopeRateLimit } from './rate-limits.js';
import { DEFAULT_ACCEPT, formatRequestKey, normalizeAccept, normalizeUrl, parseRequestKey, type RequestKeyParts } from '../cache/request-key.js';
import { RouteTemplates } from './route-template.js';
import { ANONYMOUS_SCOPE } from '../cache/scope.js';
import type { TokenVault } from '../cache/token-vault.js';
import { UpstreamClient, upstreamMessage, type UpstreamResponse } from './upstream.js';

/** Where an answer came from. */
export type ResponseSource = 'memory' | 'disk' | 'peer' | 'origin' | 'revalidated' | 'coalesced' | 'stale';

/** What `cache.request` resolves with: GitHub's status, headers and parsed data, and where it came from. */
export interface CachedResponse<T = unknown> {
  status: number;
  /** Lowercase header names. Cached answers carry the headers stored with the entry (ETag, Link, …). */
  headers: Record<string, string>;
  /** The parsed JSON body (deep-frozen), the text of a non-JSON body, or undefined for an empty one. */
  data: T;
  /** The body exactly as GitHub sent it (what a proxy forwards byte for byte). */
  body: string;
  source: ResponseSource;
}

/** Options of one `cache.request` call. */
export interface RequestOptions {
  /** The GitHub token of this call. It selects the cache scope and is sent upstream; it is never stored. */
  token?: string | undefined;
  /** Seconds the response stays fresh. Default: the response's `max-age` (GitHub sends 60), else defaultTtl. */
  ttl?: number | undefined;
  /** Aborts waiting for this call (a shared upstream request goes on for its other callers). */
  signal?: AbortSignal | undefined;
  /** Extra request headers, e.g. `accept` for a media type. Conditional headers are managed by the cache. */
  headers?: Record<string, string> | undefined;
  /** A write's raw body (e.g. forwarded by a proxy). Default: the route's leftover params as JSON, as Octokit does. */
  body?: string | undefined;
}

/** Asks the fleet for an entry (implemented by the P2P layer). */
export interface PeerLookup {
  fetch(key: string, scopeId: string, signal?: AbortSignal): Promise<
    { kind: 'self' } | { kind: 'entry'; entry: CacheEntry; peerId: string } | { kind: 'unavailable'; reason: string }
  >;
}

/** What the requester needs of the cache that owns it. */
export interface RequesterHost {
  readonly options: ResolvedCacheOptions;
  readonly logger: Logger;
  readonly tiers: TieredEntries;
  readonly vault: TokenVault;
  readonly counters: {
    hits: number;
    misses: number;
    peerHits: number;
    expirations: number;
    apiCallsMade: number;
    apiCallsSaved: number;
    staleServed: number;
  };
}

/** GitHub response entries live under this prefix, apart from key/value entries. */
export const HTTP_PREFIX = 'h:';

const SKIPPED_REQUEST_HEADERS = new Set(['authorization', 'if-none-match', 'if-modified-since', 'host', 'content-length']);
const UNSTORED_RESPONSE_HEADERS = /^(x-ratelimit-|x-github-request-id$|retry-after$)/;

interface Outcome {
  entry: CacheEntry;
  source: 'peer' | 'origin' | 'revalidated' | 'stale';
  /** The full response headers when the answer came from GitHub just now. */
  headers?: Record<string, string>;
}

/**
 * GitHubRequester: GitHub REST through the cache. Fresh entries answer without contacting GitHub; expired ones
 * are revalidated with If-None-Match / If-Modified-Since (a 304 is free of rate limit); one upstream request
 * per key at a time (singleflight); a scope GitHub rate-limited sends nothing until the time GitHub gave;
 * 5xx, resets and timeouts fall back to a stale entry; writes pass through and invalidate what they change.
 * Tokens live only in this object's memory (to make requests as a key's owner for peers), never in keys,
 * entries, logs or errors.
 */
export class GitHubRequester {
  readonly rateLimits: RateLimitTracker;
  readonly #host: RequesterHost;
  readonly #upstream: UpstreamClient;
  readonly #flights = new Singleflight<Outcome>();
  readonly #limiters = new Map<string, LimitFunction>();
  readonly #endpoint: typeof endpoint;
  readonly #routes = new RouteTemplates();
  peers: PeerLookup | undefined;
  /**
   * Resources this node wrote recently (URL without query → true). Peers may still hold the entry from before
   * the write until it expires, so reads below these go to GitHub (conditionally) instead of asking the owner.
   */
  readonly #written: LRUCache<string, true>;
  readonly extra = { coalesced: 0, notModified: 0, rateLimited: 0, upstreamErrors: 0, purged: 0, invalidations: 0, writes: 0 };

  constructor(host: RequesterHost) {
    this.#host = host;
    this.rateLimits = new RateLimitTracker(host.options.now);
    this.#upstream = new UpstreamClient({ timeoutMs: host.options.upstreamTimeoutMs });
    this.#written = new LRUCache<string, true>({ max: 10_000, ttl: host.options.p2p.maxEntryTtl * 1000 });
    this.#endpoint = endpoint.defaults({ baseUrl: host.options.githubApiUrl, headers: { 'user-agent': 'github-p2p-cache' } });
  }

  async request<T = unknown>(route: string, params: Record<string, unknown> = {}, options: RequestOptions = {}): Promise<CachedResponse<T>> {
    const token = options.token === undefined || options.token === '' ? undefined : options.token;
    const scopeId = this.#host.vault.hold(token);
    let parts: RequestKeyParts;
    let headers: Record<string, string>;
    const simple = options.headers === undefined && options.body === undefined
      ? this.#routes.expand(route, params, this.#host.options.githubApiUrl) : undefined;
    if (simple !== undefined) {
      // Fast path: the URL is already normal (see RouteTemplates), the Accept is GitHub's default.
      parts = { url: simple.url, method: simple.method, scopeId, accept: DEFAULT_ACCEPT };
      headers = { accept: DEFAULT_ACCEPT };
    } else {
      const built = this.#build(route, params, options);
      const { method, url, body } = built;
      headers = built.headers;
      if (method !== 'GET' && method !== 'HEAD') return this.#write<T>(method, url, headers, body, token, scopeId, options.signal);
      parts = { url: normalizeUrl(url), method, scopeId, accept: normalizeAccept(headers.accept) };
    }

    const key = formatRequestKey(parts);
    const c = this.#host.counters;
    const found = this.#host.tiers.read(HTTP_PREFIX + key);
    const now = this.#host.options.now();
    if (found !== undefined && now < found.entry.expiresAt) {
      c.hits++;
      c.apiCallsSaved++;
      return this.#answer<T>(found.entry, found.tier, found.item);
    }
    c.misses++;
    if (found !== undefined) c.expirations++;

    const { promise, shared } = this.#flights.do(key, () =>
      this.#resolve(parts, key, token, { ttl: options.ttl, headers, usePeers: true }),
    );
    let outcome: Outcome;
    try {
      outcome = await abortable(promise, options.signal);
    } catch (err) {
      // A binary body (an archive, an asset) is passed through, never cached or parsed as text.
      if (err instanceof BinaryResponse) {
        const r = err.response;
        return { status: r.status, headers: { ...r.headers }, data: Buffer.from(r.binary!) as T, body: '', source: shared ? 'coalesced' : 'origin' };
      }
      throw err;
    }
    if (shared) {
      this.extra.coalesced++;
      c.apiCallsSaved++;
      return this.#answer<T>(outcome.entry, 'coalesced');
    }
    return this.#answer<T>(outcome.entry, outcome.source, undefined, outcome.headers);
  }

  /**
   * As the key's owner, for a peer: the fresh entry, or the one upstream request made with this node's own
   * token of the key's scope (under the same singleflight as local callers). undefined when this node holds
   * no token of that scope or GitHub failed.
   */
  async serveAsOwner(key: string, signal?: AbortSignal, parsed?: RequestKeyParts): Promise<CacheEntry | undefined> {
    const parts = parsed ?? parseRequestKey(key);
    // A peer may only make this node fetch from the GitHub API it is configured for (never an arbitrary URL
    // with this node's token: that would be a server-side request forgery through the fleet).
    if (parts === undefined || !this.#isApiUrl(parts.url)) return undefined;
    if (!this.#host.vault.holds(parts.scopeId)) return undefined;
    const token = parts.scopeId === ANONYMOUS_SCOPE ? undefined : this.#host.vault.tokenOf(parts.scopeId);
    const found = this.#host.tiers.read(HTTP_PREFIX + key);
    if (found !== undefined && this.#host.options.now() < found.entry.expiresAt) {
      this.#host.counters.apiCallsSaved++;
      return found.entry;
    }
    const headers: Record<string, string> = { accept: parts.accept };
    const { promise } = this.#flights.do(key, () => this.#resolve(parts, key, token, { ttl: undefined, headers, usePeers: false }));
    try {
      const outcome = await abortable(promise, signal);
      // Only fresh answers go to peers: a stale fallback is this node's business, the asker has its own.
      return this.#host.options.now() < outcome.entry.expiresAt ? outcome.entry : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * serveAsOwner's first step alone, synchronously: the fresh entry this node holds for `key` (parsed as
   * `parts`), under the same conditions (an API URL, a scope whose token it holds); else undefined, and
   * nothing was counted (serveAsOwner then does the rest).
   */
  heldEntry(key: string, parts: RequestKeyParts): CacheEntry | undefined {
    if (!this.#isApiUrl(parts.url)) return undefined;
    if (!this.#host.vault.holds(parts.scopeId)) return undefined;
    const found = this.#host.tiers.read(HTTP_PREFIX + key);
    if (found === undefined || this.#host.options.now() >= found.entry.expiresAt) return undefined;
    this.#host.counters.apiCallsSaved++;
    return found.entry;
  }

  rateLimitSnapshot(): Record<string, ScopeRateLimit> {
    return this.rateLimits.snapshot();
  }

  #build(route: string, params: Record<string, unknown>, options: RequestOptions) {
    if (typeof route !== 'string' || route.trim() === '') throw new CacheValueError(String(route), 'a route such as "GET /repos/{owner}/{repo}" is required');
    const requested: Record<string, string> = {};
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      const lower = name.toLowerCase();
      if (!SKIPPED_REQUEST_HEADERS.has(lower)) requested[lower] = value;
    }
    const ep = this.#endpoint(route, { ...params, headers: requested }) as {
      method: string; url: string; headers: Record<string, string>; body?: unknown;
    };
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(ep.headers)) if (!SKIPPED_REQUEST_HEADERS.has(name.toLowerCase())) headers[name.toLowerCase()] = String(value);
    if (headers.accept === 'application/vnd.github.v3+json') headers.accept = 'application/vnd.github+json';
    const method = ep.method.toUpperCase();
    const body = options.body !== undefined ? options.body
      : ep.body === undefined ? undefined : typeof ep.body === 'string' ? ep.body : JSON.stringify(ep.body);
    return { method, url: ep.url, headers, body } as { method: string; url: string; headers: Record<string, string>; body: string | undefined };
  }

  /** The leader's work for one key: a peer, else GitHub (conditional when an entry exists), else stale. */
  async #resolve(parts: RequestKeyParts, key: string, token: string | undefined,
    opts: { ttl: number | undefined; headers: Record<string, string>; usePeers: boolean }): Promise<Outcome> {
    const { options, tiers, counters } = this.#host;
    const storeKey = HTTP_PREFIX + key;
    const stale = tiers.read(storeKey)?.entry;
    const rateKey = this.#rateKey(parts.scopeId, parts.url);

    if (opts.usePeers && this.peers !== undefined && this.#isApiUrl(parts.url) && !this.#writtenBelow(parts.url)) {
      const answer = await this.peers.fetch(key, parts.scopeId);
      if (answer.kind === 'entry' && options.now() < answer.entry.expiresAt && (stale === undefined || answer.entry.storedAt >= stale.storedAt)) {
        tiers.write(storeKey, answer.entry);
        counters.peerHits++;
        counters.apiCallsSaved++;
        return { entry: answer.entry, source: 'peer' };
      }
    }

    const blockedUntil = this.rateLimits.blockedUntil(rateKey);
    if (blockedUntil > 0) {
      if (stale !== undefined) return this.#stale(stale);
      const wait = blockedUntil - options.now();
      if (wait > options.maxRateLimitWait * 1000) {
        this.extra.rateLimited++;
        throw new RateLimitError(parts.scopeId, blockedUntil, 'GitHub asked this token to pause');
      }
      await sleep(wait);
    }

    const headers: Record<string, string> = { ...opts.headers, accept: parts.accept };
    if (stale?.etag !== undefined) headers['if-none-match'] = stale.etag;
    if (stale?.lastModified !== undefined) headers['if-modified-since'] = stale.lastModified;

    let response: UpstreamResponse;
    try {
      response = await this.#limiter(parts.scopeId)(() => {
        counters.apiCallsMade++;
        return this.#upstream.send({ method: parts.method, url: parts.url, headers, token });
      });
    } catch (err) {
      this.extra.upstreamErrors++;
      if (stale !== undefined) return this.#stale(stale);
      throw err;
    }
    const message = response.status >= 400 ? upstreamMessage(response) : undefined;
    this.rateLimits.record(rateKey, response.status, response.headers, message);
    const now = options.now();

    if (response.status === 304 && stale !== undefined) {
      this.extra.notModified++;
      counters.apiCallsSaved++;
      const ttl = this.#ttl(opts.ttl, response.headers, stale.headers);
      const refreshed = tiers.refresh(storeKey, now, now + ttl * 1000) ?? { ...stale, storedAt: now, expiresAt: now + ttl * 1000 };
      return { entry: refreshed, source: 'revalidated' };
    }
    if (response.status >= 200 && response.status < 300) {
      if (response.binary !== undefined) throw new BinaryResponse(response);
      const entry = this.#entryOf(response, now, opts.ttl);
      if (response.status === 200 && !/no-store/i.test(response.headers['cache-control'] ?? '')) tiers.write(storeKey, entry);
      return { entry, source: 'origin', headers: response.headers };
    }
    const data = parseBody(response.body, response.headers['content-type']);
    if (RateLimitTracker.isRateLimited(response.status, response.headers, message)) {
      this.extra.rateLimited++;
      if (stale !== undefined) return this.#stale(stale);
      throw new RateLimitError(parts.scopeId, this.rateLimits.blockedUntil(rateKey) || now, message ?? `HTTP ${response.status}`,
        { status: response.status, headers: response.headers, data });
    }
    if (response.status >= 500) {
      this.extra.upstreamErrors++;
      if (stale !== undefined) return this.#stale(stale);
    } else if ([401, 403, 404, 410].includes(response.status) && stale !== undefined) {
      // The token lost access (or the resource is gone): its entry must not answer anyone again.
      tiers.delete(storeKey);
      this.extra.purged++;
    }
    throw new UpstreamError(response.status, parts.method, parts.url, message ?? `HTTP ${response.status}`, {
      response: { headers: response.headers, data },
    });
  }

  async #write<T>(method: string, url: string, headers: Record<string, string>, body: string | undefined, token: string | undefined,
    scopeId: string, signal: AbortSignal | undefined): Promise<CachedResponse<T>> {
    const rateKey = this.#rateKey(scopeId, url);
    const blockedUntil = this.rateLimits.blockedUntil(rateKey);
    if (blockedUntil > 0) {
      this.extra.rateLimited++;
      throw new RateLimitError(scopeId, blockedUntil, 'GitHub asked this token to pause; the write was not sent');
    }
    this.extra.writes++;
    const response = await this.#limiter(scopeId)(() => {
      this.#host.counters.apiCallsMade++;
      return this.#upstream.send({ method, url, headers, body, token, signal });
    });
    const message = response.status >= 400 ? upstreamMessage(response) : undefined;
    this.rateLimits.record(rateKey, response.status, response.headers, message);
    const data = response.binary !== undefined ? Buffer.from(response.binary) : parseBody(response.body, response.headers['content-type']);
    if (response.status < 400) this.#invalidateAfterWrite(url);
    if (RateLimitTracker.isRateLimited(response.status, response.headers, message)) {
      this.extra.rateLimited++;
      throw new RateLimitError(scopeId, this.rateLimits.blockedUntil(rateKey) || this.#host.options.now(), message ?? `HTTP ${response.status}`,
        { status: response.status, headers: response.headers, data });
    }
    if (response.status >= 400) {
      throw new UpstreamError(response.status, method, url, message ?? `HTTP ${response.status}`, { response: { headers: response.headers, data } });
    }
    return { status: response.status, headers: response.headers, data: (Buffer.isBuffer(data) ? data : deepFreeze(data)) as T, body: response.body, source: 'origin' };
  }

  /** Drops the written resource (and below it) and its collection, for every token and media type. */
  #invalidateAfterWrite(url: string): void {
    const target = new URL(normalizeUrl(url));
    target.search = '';
    const resource = target.href.replace(/\/+$/, '');
    const parent = resource.slice(0, resource.lastIndexOf('/'));
    const tiers = this.#host.tiers;
    this.#written.set(`${resource}/*`, true); // the resource and everything below it
    this.#written.set(parent, true); // its collection itself
    let dropped = 0;
    for (const prefix of [`${resource} `, `${resource}?`, `${resource}/`, `${parent} `, `${parent}?`]) {
      dropped += tiers.deleteByPrefix(HTTP_PREFIX + prefix);
    }
    this.extra.invalidations += dropped;
  }

  /**
   * GitHub keeps separate rate-limit windows per resource (`x-ratelimit-resource`: core, search, …): a spent
   * search window must not stop a token's REST calls. Tracker keys are the scope id, plus `/search` for search.
   */
  #rateKey(scopeId: string, url: string): string {
    return url.startsWith(`${this.#host.options.githubApiUrl}/search/`) ? `${scopeId}/search` : scopeId;
  }

  /** Whether `url` is under the configured GitHub API base (only such requests are shared with peers). */
  #isApiUrl(url: string): boolean {
    return url.startsWith(`${this.#host.options.githubApiUrl}/`);
  }

  /** Whether `url` is a resource this node wrote recently, or lies below or is the collection of one. */
  #writtenBelow(url: string): boolean {
    if (this.#written.size === 0) return false;
    let path = url.split('?', 1)[0]!.replace(/\/+$/, '');
    if (this.#written.has(path)) return true;
    const origin = this.#host.options.githubApiUrl;
    while (path.length > origin.length) {
      if (this.#written.has(`${path}/*`)) return true;
      path = path.slice(0, path.lastIndexOf('/'));
    }
    return false;
  }

  #limiter(scopeId: string): LimitFunction {
    let limit = this.#limiters.get(scopeId);
    if (limit === undefined) {
      limit = pLimit(this.#host.options.maxConcurrentPerScope);
      this.#limiters.set(scopeId, limit);
    }
    return limit;
  }

  #stale(entry: CacheEntry): Outcome {
    this.#host.counters.staleServed++;
    this.#host.counters.apiCallsSaved++;
    return { entry, source: 'stale' };
  }

  #ttl(explicit: number | undefined, headers: Record<string, string>, fallbackHeaders?: Readonly<Record<string, string>>): number {
    if (explicit !== undefined) return explicit;
    const cc = headers['cache-control'] ?? fallbackHeaders?.['cache-control'] ?? '';
    const match = /(?:^|,)\s*max-age=(\d+)/i.exec(cc);
    return match ? Number(match[1]) : this.#host.options.defaultTtl;
  }

  #entryOf(response: UpstreamResponse, now: number, ttl: number | undefined): CacheEntry {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) if (!UNSTORED_RESPONSE_HEADERS.test(name)) headers[name] = value;
    return {
      body: response.body,
      digest: sha256Hex(response.body),
      storedAt: now,
      expiresAt: now + this.#ttl(ttl, response.headers) * 1000,
      status: response.status,
      headers,
      etag: response.headers.etag,
      lastModified: response.headers['last-modified'],
    };
  }

  #answer<T>(entry: CacheEntry, source: ResponseSource, item?: { entry: CacheEntry; parsed?: { value: unknown } },
    headers?: Record<string, string>): CachedResponse<T> {
    const parse = (body: string) => deepFreeze(parseBody(body, entry.headers['content-type']));
    const data = item !== undefined ? TieredEntries.parsed(item, parse) : parse(entry.body);
    return { status: entry.status, headers: { ...(headers ?? entry.headers) }, data: data as T, body: entry.body, source };
  }
}

/** Carries a binary response out of a singleflight without it ever becoming an entry. */
class BinaryResponse extends Error {
  constructor(readonly response: UpstreamResponse) {
    super('binary response');
  }
}

function parseBody(body: string, contentType: string | undefined): unknown {
  if (body === '') return undefined;
  if (contentType === undefined || /json/i.test(contentType)) {
    try {
      return JSON.parse(body);
    } catch {
      return body;
    }
  }
  return body;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Resolves like `promise`, or rejects with the signal's reason when it aborts first. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
