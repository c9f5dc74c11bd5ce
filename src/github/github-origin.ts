import pLimit, { type LimitFunction } from 'p-limit';
import { LRUCache } from 'lru-cache';
import { RateLimitError, TokenHostError } from '../errors.js';
import type { Origin, OriginRequest, OriginResponse, ScopeRateLimit } from '../cache/ports.js';
import { RateLimitTracker } from './rate-limits.js';
import { UpstreamClient, upstreamMessage } from './upstream.js';

/**
 * GitHubOrigin: the cache's origin port, implemented against GitHub's REST API. It follows GitHub's rules for
 * rate limits: a scope GitHub paused sends nothing until the time GitHub gave (a caller waits at most
 * `maxRateLimitWait` seconds, aborted by its signal, else gets RateLimitError); the search window is kept
 * apart from the core one; at most `maxConcurrentPerScope` requests of one scope are in flight at once.
 * The token travels in the Authorization header of requests to the configured API and nowhere else.
 */
export interface GitHubOriginOptions {
  /** Base URL of the GitHub API, without a trailing slash. */
  githubApiUrl: string;
  /** Where release assets are uploaded (a token may go there too). */
  githubUploadsUrl: string;
  /** Timeout of one exchange, in ms. */
  upstreamTimeoutMs: number;
  /** Longest wait for a paused scope, in seconds; longer pauses are refused at once. */
  maxRateLimitWait: number;
  /** Requests of one scope in flight at once. */
  maxConcurrentPerScope: number;
  /** The cache's clock (ms since the epoch). */
  now: () => number;
}

/** Per-scope limiters kept at most; a scope whose limiter was dropped gets a new one (bounded memory over 2,000 tokens). */
const MAX_SCOPE_LIMITERS = 1_000;

export class GitHubOrigin implements Origin {
  readonly #options: GitHubOriginOptions;
  readonly #upstream: UpstreamClient;
  readonly #rateLimits: RateLimitTracker;
  readonly #limiters = new LRUCache<string, LimitFunction>({ max: MAX_SCOPE_LIMITERS });
  readonly #searchPrefix: string;
  /** The origins a token may be sent to (the API's and the uploads'), parsed once. */
  readonly #tokenOrigins: ReadonlySet<string>;
  /** `<githubApiUrl>/`: a URL starting with it has the API's origin. */
  readonly #apiPrefix: string;

  constructor(options: GitHubOriginOptions) {
    this.#options = options;
    this.#upstream = new UpstreamClient({ timeoutMs: options.upstreamTimeoutMs });
    this.#rateLimits = new RateLimitTracker(options.now);
    this.#searchPrefix = `${options.githubApiUrl}/search/`;
    this.#apiPrefix = `${options.githubApiUrl}/`;
    this.#tokenOrigins = new Set([new URL(options.githubApiUrl).origin, new URL(options.githubUploadsUrl).origin]);
  }

  async admit(request: { scopeId: string; url: string; mayWait: boolean; signal: AbortSignal; refusal?: string; withToken?: boolean }): Promise<void> {
    if (request.withToken === true && !this.#tokenMayGoTo(request.url)) throw new TokenHostError(hostOf(request.url), this.#options.githubApiUrl);
    const blockedUntil = this.#rateLimits.blockedUntil(this.#rateKey(request.scopeId, request.url));
    if (blockedUntil === 0) return;
    const wait = blockedUntil - this.#options.now();
    if (!request.mayWait || wait > this.#options.maxRateLimitWait * 1000) {
      throw new RateLimitError(request.scopeId, blockedUntil, request.refusal ?? 'GitHub asked this token to pause');
    }
    await sleep(wait, request.signal);
  }

  async send(request: OriginRequest): Promise<OriginResponse> {
    if (request.token !== undefined && request.token !== '' && !this.#tokenMayGoTo(request.url)) {
      throw new TokenHostError(hostOf(request.url), this.#options.githubApiUrl);
    }
    const limiter = this.#limiter(request.scopeId);
    const response = await limiter(() => this.#upstream.send(request));
    const rateKey = this.#rateKey(request.scopeId, request.url);
    const message = response.status >= 400 ? upstreamMessage(response) : undefined;
    this.#rateLimits.record(rateKey, response.status, response.headers, message);
    if (!RateLimitTracker.isRateLimited(response.status, response.headers, message)) return { ...response, message };
    return { ...response, message, rateLimitedUntil: this.#rateLimits.blockedUntil(rateKey) || this.#options.now() };
  }

  isApiUrl(url: string): boolean {
    return url.startsWith(`${this.#options.githubApiUrl}/`);
  }

  rateLimits(): Record<string, ScopeRateLimit> {
    return this.#rateLimits.snapshot();
  }

  get rateLimitVersion(): number {
    return this.#rateLimits.version;
  }

  rateLimitHeaders(scopeId: string, url: string): Readonly<Record<string, string>> {
    return this.#rateLimits.headersOf(this.#rateKey(scopeId, url));
  }

  /**
   * Whether a token may be sent to `url`: the origin of the configured API or of its uploads URL
   * (uploads.github.com for api.github.com; GitHub Enterprise Server serves uploads on its own origin). A redirect
   * elsewhere is followed without the token (fetch drops Authorization across origins).
   */
  #tokenMayGoTo(url: string): boolean {
    // A URL under the configured API (the case of every call) is of its origin: no parse (it was two URL parses a miss).
    if (url.startsWith(this.#apiPrefix)) return true;
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return false;
    }
    return this.#tokenOrigins.has(target.origin);
  }

  /**
   * GitHub keeps separate rate-limit windows per resource (`x-ratelimit-resource`: core, search, …): a spent
   * search window must not stop a token's REST calls. Tracker keys are the scope id, plus `/search` for search.
   */
  #rateKey(scopeId: string, url: string): string {
    return url.startsWith(this.#searchPrefix) ? `${scopeId}/search` : scopeId;
  }

  #limiter(scopeId: string): LimitFunction {
    let limit = this.#limiters.get(scopeId);
    if (limit === undefined) {
      limit = pLimit(this.#options.maxConcurrentPerScope);
      this.#limiters.set(scopeId, limit);
    }
    return limit;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first (the timer never outlives it). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(an invalid URL)';
  }
}
