import type { ResponseSource } from './counters.js';
import { deepFreeze } from './json-value.js';
import { parseBody } from './http-policy.js';
import type { ReadOutcome, ReadThrough } from './read-through.js';
import { formatRequestKey, isKnownNormalUrl, normalizeAccept, normalizeUrl, type RequestKeyParts } from './request-key.js';
import { TieredEntries } from './tiered-entries.js';
import type { TokenVault } from './token-vault.js';
import type { WriteThrough } from './write-through.js';

/**
 * HttpCache: one HTTP request in, one answer out. The token selects the scope (through the vault, the only
 * holder of tokens); GET and HEAD take the read path, keyed by normalized URL, method, scope and Accept;
 * every other method is a write. Answers carry GitHub's status and headers, the body exactly as stored, the
 * parsed `data` (deep-frozen, parsed once per memory item) and where they came from.
 */

/** What `cache.request` resolves with: GitHub's status, headers and parsed data, and where it came from. */
export interface CachedResponse<T = unknown> {
  status: number;
  /** Lowercase header names. Cached answers carry the headers stored with the entry (ETag, Link, …). */
  headers: Record<string, string>;
  /** The parsed JSON body (deep-frozen), the text of a non-JSON body, a Buffer for a binary body, or undefined for an empty one. */
  data: T;
  /** The body exactly as GitHub sent it (what a proxy forwards byte for byte); '' for a binary body. */
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

/** An HTTP request as built for GitHub (header names lowercase, no Authorization). */
export interface HttpRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
  /** True when `url` is already in normal form (saves normalizing it again). */
  readonly normal?: boolean;
}

export class HttpCache {
  readonly #reads: ReadThrough;
  readonly #writes: WriteThrough;
  readonly #vault: TokenVault;
  readonly #shutdown: AbortSignal;

  constructor(parts: { reads: ReadThrough; writes: WriteThrough; vault: TokenVault; shutdown: AbortSignal }) {
    this.#reads = parts.reads;
    this.#writes = parts.writes;
    this.#vault = parts.vault;
    this.#shutdown = parts.shutdown;
  }

  async request<T>(request: HttpRequest, options: RequestOptions): Promise<CachedResponse<T>> {
    const token = options.token === undefined || options.token === '' ? undefined : options.token;
    const scopeId = this.#vault.hold(token);
    const { method } = request;
    if (method !== 'GET' && method !== 'HEAD') {
      const signal = options.signal === undefined ? this.#shutdown : AbortSignal.any([options.signal, this.#shutdown]);
      const r = await this.#writes.write({ method, url: request.url, headers: request.headers, body: request.body, token, scopeId, signal });
      const data = r.binary !== undefined ? Buffer.from(r.binary) : deepFreeze(parseBody(r.body, r.headers['content-type']));
      return { status: r.status, headers: { ...r.headers }, data: data as T, body: r.body, source: 'origin' };
    }
    const parts: RequestKeyParts = {
      url: request.normal === true || isKnownNormalUrl(request.url) ? request.url : normalizeUrl(request.url),
      method: method as 'GET' | 'HEAD',
      scopeId,
      accept: normalizeAccept(request.headers.accept),
    };
    const outcome = await this.#reads.read({ parts, key: formatRequestKey(parts), headers: request.headers, token, ttl: options.ttl, signal: options.signal });
    return answerOf<T>(outcome);
  }
}

function answerOf<T>(outcome: ReadOutcome): CachedResponse<T> {
  if (outcome.kind === 'pass') {
    const r = outcome.response;
    return { status: r.status, headers: { ...r.headers }, data: Buffer.from(r.binary ?? []) as T, body: '', source: outcome.source };
  }
  const { entry } = outcome;
  const parse = (body: string) => deepFreeze(parseBody(body, entry.headers['content-type']));
  const data = outcome.item !== undefined ? TieredEntries.parsed(outcome.item, parse) : parse(entry.body);
  return { status: entry.status, headers: { ...(outcome.headers ?? entry.headers) }, data: data as T, body: entry.body, source: outcome.source };
}
