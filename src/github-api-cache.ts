import { setMaxListeners } from 'node:events';
import { CacheClosedError, CacheConfigError } from './errors.js';
import { InFlight } from './in-flight.js';
import { createLogger, type Logger } from './log.js';
import { resolveOptions, ttlForKey, type CacheOptions, type ResolvedCacheOptions } from './options.js';
import { CacheCounters, type CacheStats } from './cache/counters.js';
import { viewAsBuffer } from './cache/entry.js';
import type { EntryStore, Fleet } from './cache/ports.js';
import { HttpCache, type CachedResponse, type RequestOptions } from './cache/http-cache.js';
import { KeyValues, type PutOptions } from './cache/key-values.js';
import { ReadThrough } from './cache/read-through.js';
import { TieredEntries } from './cache/tiered-entries.js';
import { TokenVault } from './cache/token-vault.js';
import { meshed, meshTarget, settlesWithin, startPeerNetwork, type CreateInternals, type FleetStarter } from './fleet-start.js';
import { RecentWrites, WriteThrough } from './cache/write-through.js';
import { GitHubOrigin } from './github/github-origin.js';
import { RequestBuilder } from './github/request-builder.js';
import { holdTickShape } from './tick-shape.js';
import {
  clientHolds, errorAnswer, forwardableHeaders, isHttpAnswerError, jsonAnswer, keyRequestHeaders, notModifiedOf, parseAuthorization, rewriteApiUrls,
  upstreamRequestHeaders, type HttpAnswer,
} from './http/translation.js';

// Size: the public surface of the cache (request, exchange and the proxy's exchangeHit, key/value, stats, the
// P2P start and the close sequence) in one class whose methods are a few lines each over the parts it wires.

export type { CacheStats } from './cache/counters.js';
export type { PutOptions } from './cache/key-values.js';
export type { CreateInternals, FleetStarter } from './fleet-start.js';

/**
 * GitHubAPICache: one process-wide cache of GitHub API responses and JSON values — the composition root
 * that wires the cache's parts (src/cache/) to GitHub (src/github/), SQLite (src/store/) and the fleet
 * (src/p2p/, loaded only when P2P is on).
 *
 * Memory (LRU) in front of SQLite; expired entries are kept, so `getStale` and conditional revalidation work.
 * Every operation is async and rejects with CacheClosedError once `close()` was called. Values handed out are
 * deep-frozen copies: mutating them cannot corrupt the cache. The cache owns one shutdown signal that every
 * upstream request, peer ask and rate-limit wait listens to; `close()` aborts it after its drain deadline.
 *
 * Most applications do not construct it: they call `getGlobalCache()` or resolve `TYPES.GitHubAPICache`
 * from an Inversify container, which guarantees one instance (and one P2P host) per process.
 *
 * @example
 * ```ts
 * const cache = await GitHubAPICache.create({ persistence: 'off' });
 * await cache.put('get_repo_info:octo/hello', { stars: 3 });
 * await cache.get('get_repo_info:octo/hello'); // { stars: 3 }
 * await cache.close();
 * ```
 */
export class GitHubAPICache implements AsyncDisposable {
  /** The resolved options this instance runs with. */
  readonly options: ResolvedCacheOptions;
  readonly #logger: Logger;
  readonly #counters = new CacheCounters();
  readonly #tiers: TieredEntries;
  readonly #origin: GitHubOrigin;
  readonly #builder: RequestBuilder;
  readonly #reads: ReadThrough;
  readonly #writes: WriteThrough;
  readonly #http: HttpCache;
  readonly #values: KeyValues;
  readonly #shutdown = new AbortController();
  readonly #inFlight = new InFlight();
  #fleet: Fleet | undefined;
  /** The P2P host's start: resolves once it listens, rejects with why it did not start; undefined when P2P is off. */
  #fleetStart: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Creates a cache: resolves options (explicit > environment > defaults), opens SQLite unless
   * `persistence: 'off'`, and begins starting the P2P host when enabled. Resolves once the local tiers are open,
   * before the P2P host listens: the cache answers local hits and GitHub requests while libp2p starts (see
   * `p2pReady()` and the option `p2p.startWaitMs`). Throws CacheConfigError for an invalid option, or when
   * `persistence: 'required'` and the cache directory cannot be used.
   */
  static async create(options: CacheOptions = {}, internals: CreateInternals = {}): Promise<GitHubAPICache> {
    const resolved = resolveOptions(options);
    holdTickShape();
    const logger = createLogger('cache', resolved.logSink);
    const { store, failed } = await openStore(resolved, logger);
    const cache = new GitHubAPICache(resolved, store, logger);
    if (failed) cache.#counters.persistenceErrors++;
    if (resolved.p2p.enabled) cache.#beginFleet(internals.startFleet ?? startPeerNetwork);
    return cache;
  }

  private constructor(options: ResolvedCacheOptions, store: EntryStore | undefined, logger: Logger) {
    this.options = options;
    this.#logger = logger;
    setMaxListeners(0, this.#shutdown.signal); // every upstream request and peer ask listens to it
    const counters = this.#counters;
    const vault = new TokenVault();
    const shutdown = this.#shutdown.signal;
    const recentWrites = new RecentWrites({ githubApiUrl: options.githubApiUrl, rememberMs: options.p2p.maxEntryTtl * 1000 });
    const peerWrites = new RecentWrites({ githubApiUrl: options.githubApiUrl, rememberMs: options.p2p.maxEntryTtl * 1000 });
    this.#tiers = new TieredEntries({ maxEntries: options.maxEntries, maxBytes: options.maxBytes, store, logger, counters, maxParsedValues: options.maxParsedValues });
    this.#origin = new GitHubOrigin({
      githubApiUrl: options.githubApiUrl,
      githubUploadsUrl: options.githubUploadsUrl,
      upstreamTimeoutMs: options.upstreamTimeoutMs,
      maxRateLimitWait: options.maxRateLimitWait,
      maxConcurrentPerScope: options.maxConcurrentPerScope,
      now: options.now,
    });
    this.#builder = new RequestBuilder({ githubApiUrl: options.githubApiUrl });
    const parts = { tiers: this.#tiers, origin: this.#origin, counters, recentWrites };
    this.#reads = new ReadThrough({ ...parts, peerWrites, vault, now: options.now, defaultTtl: options.defaultTtl, maxEntryBytes: options.maxEntryBytes, shutdown });
    this.#writes = new WriteThrough(parts);
    this.#http = new HttpCache({ reads: this.#reads, writes: this.#writes, vault, origin: this.#origin, shutdown, tiers: this.#tiers });
    this.#values = new KeyValues({ tiers: this.#tiers, counters, now: options.now, ttlForKey: (key) => ttlForKey(key, options) });
  }

  /** True once `close()` was called; every operation then rejects with CacheClosedError. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The fresh value of `key`, or undefined when absent or expired (the expired entry is kept; see getStale). */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    return this.#run('get', () => this.#values.get(key) as T | undefined);
  }

  /** The value of `key` even when it has expired, or undefined when absent. For fallbacks when GitHub fails. */
  async getStale<T = unknown>(key: string): Promise<T | undefined> {
    return this.#run('getStale', () => this.#values.getStale(key) as T | undefined);
  }

  /**
   * Stores a JSON value for `ttl` seconds (default: by the key's operation, else defaultTtl). A value JSON
   * cannot carry exactly is refused with CacheValueError and nothing is stored.
   */
  async put(key: string, value: unknown, options: PutOptions = {}): Promise<void> {
    return this.#run('put', () => this.#values.put(key, value, options));
  }

  /** Removes `key`. Returns whether it was there. */
  async invalidate(key: string): Promise<boolean> {
    return this.#run('invalidate', () => this.#values.invalidate(key));
  }

  /** Removes every key that starts with `prefix` (plain text, no wildcards). Returns how many. */
  async invalidatePattern(prefix: string): Promise<number> {
    return this.#run('invalidatePattern', () => this.#values.invalidatePattern(prefix));
  }

  /** Removes every entry (key/value and GitHub responses). Counters keep counting. */
  async clear(): Promise<void> {
    return this.#run('clear', () => this.#tiers.clear());
  }

  /**
   * A GitHub REST call through the cache, Octokit-style:
   * `cache.request('GET /repos/{owner}/{repo}', { owner, repo }, { token })`.
   *
   * GET and HEAD are cached per token scope, method, URL and Accept: a fresh entry answers without contacting
   * GitHub; an expired one is revalidated with If-None-Match (a 304 costs no rate limit); concurrent identical
   * calls share one upstream request. Other methods pass through and invalidate the resource and its
   * collection. Rejects with RateLimitError when GitHub rate-limited the token and no stale entry exists, and
   * with UpstreamError for other failures (a 5xx, reset or timeout is answered from a stale entry if any).
   */
  request<T = unknown>(route: string, params?: Record<string, unknown>, options: RequestOptions = {}): Promise<CachedResponse<T>> {
    // Not async: a fresh hit is answered synchronously and handed out as a resolved promise (no async frame,
    // no await hop); only a call that waits is counted in flight. A synchronous throw becomes the rejection.
    if (this.#closing !== undefined) return Promise.reject(new CacheClosedError('request'));
    let answer: CachedResponse<T> | Promise<CachedResponse<T>>;
    try {
      answer = this.#http.request<T>(this.#builder.build(route, params, options), options);
    } catch (err) {
      return Promise.reject(err);
    }
    return answer instanceof Promise ? this.#tracked(answer) : Promise.resolve(answer);
  }

  /**
   * One raw HTTP exchange through the cache, for HTTP front ends (the proxy, the Octokit plugin): method,
   * absolute URL, headers (Authorization included) and body in; status, headers, body and source out. What
   * GitHub answered (errors and rate-limit refusals included) is an answer, never an exception; an
   * Authorization scheme the cache does not carry is a 401 answer. Rejects only when no answer exists:
   * GitHub unreachable (UpstreamError, status 0), the cache closed, or the caller's signal aborted.
   */
  exchange(request: ExchangeRequest): Promise<HttpAnswer> {
    return this.#track('exchange', async () => {
      const credential = parseAuthorization(single(request.headers.authorization));
      if (credential.kind === 'unsupported') return jsonAnswer(401, { message: credential.problem });
      const method = request.method.toUpperCase();
      const read = method === 'GET' || method === 'HEAD';
      const body = read ? undefined : request.body;
      const sent = upstreamRequestHeaders(request.headers, body !== undefined && body.length > 0);
      const validators = { ifNoneMatch: single(request.headers['if-none-match']), ifModifiedSince: single(request.headers['if-modified-since']) };
      try {
        const answer = await this.#http.request({ method, url: request.url, headers: sent, body }, {
          token: credential.kind === 'token' ? credential.token : undefined,
          authScheme: credential.kind === 'token' ? credential.scheme : undefined,
          signal: request.signal,
          redirect: request.redirect,
        }, false); // bytes only: an HTTP front end never reads `data`, so no body is parsed or kept parsed for it
        // The answer's headers are a fresh object this call owns, already without hop-by-hop headers (the
        // origin drops them before anything is stored): marked in place rather than copied again.
        const headers = answer.source === 'origin' ? forwardableHeaders(answer.headers) : answer.headers;
        headers['x-cache-source'] = answer.source;
        let out: HttpAnswer = {
          status: answer.status,
          headers,
          // The bytes exactly as GitHub sent them, whatever the media type or charset.
          body: method === 'HEAD' ? '' : viewAsBuffer(answer.bytes),
          source: answer.source,
          url: answer.url,
        };
        if (request.publicUrl !== undefined) rewriteApiUrls(headers, this.options.githubApiUrl, request.publicUrl, isRedirect(out.status));
        // The caller's own validators: a 304 when it already holds this answer, as GitHub would have said.
        if (read && answer.status === 200 && clientHolds(validators, { etag: answer.headers.etag, lastModified: answer.headers['last-modified'] })) {
          out = notModifiedOf(out);
        }
        return out;
      } catch (err) {
        if (isHttpAnswerError(err)) {
          const answer = errorAnswer(err, this.options.now());
          if (request.publicUrl !== undefined) rewriteApiUrls(answer.headers, this.options.githubApiUrl, request.publicUrl, false);
          return answer;
        }
        throw err;
      }
    });
  }

  /**
   * Settles when the P2P host's start does: resolves once it listens (at once when P2P is off), rejects with
   * why it did not start — PeerNetworkStartError, or CacheConfigError for an address it cannot listen on (a
   * taken port with no fallback, an address of no interface) — and with CacheClosedError when the cache closed
   * first. A failed start is also logged as an error; the cache goes on without its fleet (its tiers and
   * GitHub). `getStats().p2p` is absent until the host listens.
   */
  p2pReady(): Promise<void> {
    return this.#fleetStart ?? Promise.resolve();
  }

  /**
   * exchange()'s answer to a GET that a fresh entry held locally answers, synchronously and ready for the wire
   * (`content-length` included, the body as bytes); undefined, with nothing counted, when exchange() must answer
   * instead: a miss, any other method, the client's own validators, an Authorization the cache does not carry,
   * header names not in lowercase, or the cache closed. For the proxy's hot path: the answer of a memory entry is
   * built once and then shared while the entry, the scope's rate limit and `publicUrl` stay the same, so callers
   * read it and never change it.
   */
  exchangeHit(request: ExchangeRequest): HttpAnswer | undefined {
    if (this.#closing !== undefined || request.method !== 'GET') return undefined;
    const h = request.headers;
    if (h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined) return undefined;
    const authorization = single(h.authorization);
    if (authorization !== this.#lastAuthorization) {
      this.#lastCredential = parseAuthorization(authorization);
      this.#lastAuthorization = authorization;
    }
    const credential = this.#lastCredential;
    if (credential.kind === 'unsupported') return undefined;
    const headers = keyRequestHeaders(h);
    if (headers === undefined) return undefined;
    const hit = this.#http.freshGet({ method: 'GET', url: request.url, headers, body: undefined }, credential.kind === 'token' ? credential.token : undefined);
    if (hit === undefined) return undefined;
    const kept = hit.item.wire;
    if (hit.source === 'memory' && kept !== undefined && kept.version === hit.version && kept.key === request.publicUrl) return kept.answer as HttpAnswer;
    // As exchange() builds it, and as the proxy completes it (content-length where it sends a body).
    const out = hit.headers();
    out['x-cache-source'] = hit.source;
    const { status } = hit.entry;
    if (request.publicUrl !== undefined) rewriteApiUrls(out, this.options.githubApiUrl, request.publicUrl, isRedirect(status));
    const body = viewAsBuffer(hit.entry.body);
    if (status !== 304 && status !== 204) out['content-length'] = String(body.length);
    const answer: HttpAnswer = { status, headers: out, body, source: hit.source, url: request.url };
    if (hit.source === 'memory') hit.item.wire = { version: hit.version, key: request.publicUrl, answer };
    return answer;
  }

  /** The Authorization header exchangeHit parsed last, and what it said (a repeat costs a comparison). */
  #lastAuthorization: string | undefined;
  #lastCredential: ReturnType<typeof parseAuthorization> = { kind: 'none' };

  /** A snapshot of counters and gauges. */
  async getStats(): Promise<CacheStats> {
    return this.#run('getStats', () => {
      const counted = this.#counters.snapshot();
      const reads = counted.hits + counted.misses;
      return {
        ...counted,
        size: this.#tiers.size(),
        hitRate: reads === 0 ? 0 : counted.hits / reads,
        persistence: this.#tiers.persistent ? 'sqlite' : 'memory',
        diskBytes: this.#tiers.diskBytes(),
        rateLimits: this.#origin.rateLimits(),
        ...(this.#fleet !== undefined ? { p2p: this.#fleet.stats() } : {}),
      };
    });
  }

  /**
   * Closes the cache: new operations reject with CacheClosedError at once; operations in flight get up to
   * `closeTimeoutMs` to finish, then their upstream requests, peer asks and rate-limit waits are aborted;
   * then the P2P host stops (its port is released) and SQLite is closed. Idempotent: every call returns the
   * same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdownNow();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Starts the fleet's host in the background (one per instance, so one per process through the provider).
   * Reads that would leave this node wait for it in two phases of at most `p2p.startWaitMs` each: for the host to
   * listen (from now), then, with bootstrap peers, for sessions with as many peers as it was given (from the moment
   * it listens), so a fleet that starts together agrees on owners from its first request even when a busy machine
   * makes libp2p's own start take seconds. Both ends of each phase are events, never a poll: the reads get the
   * fleet in the turn its last session comes up (`meshed`); when the second phase's timer fires, the listening host
   * is handed to them before they resume, whatever sessions it has, so no read skips a running fleet because a
   * timer fired first or late; when the first phase's timer fires before the host listens, they resume without it.
   * A failed start is logged and kept for `p2pReady()` (never an unhandled rejection); a start that completes
   * after close() is stopped.
   */
  #beginFleet(startFleet: FleetStarter): void {
    const waitMs = this.options.p2p.startWaitMs;
    const timers: NodeJS.Timeout[] = [];
    const after = (ms: number, then: () => void): void => {
      const timer = setTimeout(then, ms);
      timer.unref();
      timers.push(timer);
    };
    let meshWaitOver!: () => void;
    const meshWaitEnds = new Promise<void>((resolve) => {
      meshWaitOver = resolve;
    });
    const start = (async () => {
      const fleet = await startFleet({ p2p: this.options.p2p, cacheDir: this.options.cacheDir, logSink: this.options.logSink, now: this.options.now, host: this.#reads });
      if (this.#closing !== undefined) {
        await fleet.stop().catch((err: unknown) => this.#logger.warn('stopping the P2P host failed:', err));
        throw new CacheClosedError('start the P2P host');
      }
      this.#fleet = fleet;
      this.#writes.fleet = fleet;
      // Peers may ask this node once it listens; its own reads ask them once it is meshed (or the wait is over).
      if (waitMs === 0 || meshTarget(fleet, this.options.p2p.bootstrapPeers) === 0) this.#reads.fleet = fleet;
      else after(waitMs, meshWaitOver); // the second phase: sessions, counted from now
      return fleet;
    })();
    const readsReady = start.then(async (fleet) => {
      await meshed(fleet, this.options.p2p.bootstrapPeers, waitMs > 0 ? meshWaitEnds : Promise.resolve(), this.#shutdown.signal);
      this.#readsUse(fleet);
    }, () => undefined);
    this.#fleetStart = start.then(() => undefined);
    this.#fleetStart.catch(() => undefined); // handled below (logged); p2pReady() hands the rejection to who asks
    start.catch((err: unknown) => {
      this.#reads.fleetStarting(undefined);
      if (!(err instanceof CacheClosedError)) this.#logger.error('the P2P host did not start; the cache runs without its fleet (its own tiers and GitHub only):', err);
    });
    if (waitMs > 0) {
      // The first phase: a host that does not listen within the wait is not waited for any longer.
      const listenWaitOver = new Promise<void>((resolve) => after(waitMs, () => {
        if (this.#fleet === undefined) resolve();
      }));
      // The second phase is over: the listening host is the reads' fleet before they resume.
      const meshWaitOverThen = meshWaitEnds.then(() => {
        if (this.#fleet !== undefined) this.#readsUse(this.#fleet);
      });
      void readsReady.finally(() => {
        for (const timer of timers) clearTimeout(timer);
      });
      this.#reads.fleetStarting(Promise.race([readsReady, listenWaitOver, meshWaitOverThen]));
    }
  }

  /** Hands `fleet` to the reads, unless it is no longer this cache's fleet or the cache is closing. */
  #readsUse(fleet: Fleet): void {
    if (this.#fleet === fleet && this.#closing === undefined) this.#reads.fleet = fleet;
  }

  async #shutdownNow(): Promise<void> {
    if (!(await this.#inFlight.idle(this.options.closeTimeoutMs))) {
      this.#logger.warn(`close(): ${this.#inFlight.count} operation(s) still in flight after ${this.options.closeTimeoutMs} ms; aborting them`);
      this.#shutdown.abort(new CacheClosedError('finish the request'));
      // Aborted work settles within a turn or two; the tiers close only once it has (bounded all the same).
      await this.#inFlight.idle(1_000);
    } else {
      this.#shutdown.abort(new CacheClosedError('finish the request'));
    }
    this.#reads.fleet = undefined;
    this.#writes.fleet = undefined;
    // A start still under way is stopped when it completes (#beginFleet); close() waits for that, up to
    // closeTimeoutMs (libp2p's own start is bounded too; a start still running after that is stopped when it ends).
    if (this.#fleetStart !== undefined && !(await settlesWithin(this.#fleetStart, this.options.closeTimeoutMs))) {
      this.#logger.warn(`close(): the P2P host is still starting after ${this.options.closeTimeoutMs} ms; it is stopped once its start completes`);
    }
    const fleet = this.#fleet;
    this.#fleet = undefined;
    try {
      await fleet?.stop(); // releases the port: a new instance can bind it right after
    } catch (err) {
      this.#logger.warn('stopping the P2P host failed:', err);
    }
    this.#tiers.close();
  }

  /** Runs an operation: rejects when closed, counts it in flight so close() can wait for it. */
  async #track<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) throw new CacheClosedError(operation);
    this.#inFlight.enter();
    try {
      return await fn();
    } finally {
      this.#inFlight.leave();
    }
  }

  /** Counts an operation already started in flight until it settles (close() waits for it). */
  async #tracked<T>(pending: Promise<T>): Promise<T> {
    this.#inFlight.enter();
    try {
      return await pending;
    } finally {
      this.#inFlight.leave();
    }
  }

  async #run<T>(operation: string, fn: () => T): Promise<T> {
    if (this.#closing !== undefined) throw new CacheClosedError(operation);
    return fn();
  }
}

/** One HTTP request for `GitHubAPICache.exchange`. Header names in any case; values as Node's http module gives them. */
export interface ExchangeRequest {
  readonly method: string;
  /** Absolute URL under the GitHub API (or any URL: the token is sent only where the cache sends it). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** A write's body, forwarded byte for byte. */
  readonly body?: string | Uint8Array | undefined;
  /** Stops this caller's wait (a shared upstream request goes on for the others). */
  readonly signal?: AbortSignal | undefined;
  /** 'follow' (default): redirects are followed, as Octokit does; 'manual': a 3xx is answered as GitHub sent it (a proxy's clients follow it). */
  readonly redirect?: 'follow' | 'manual' | undefined;
  /** The base URL the client sees (a proxy's own): `link` and `location` URLs under the GitHub API are rewritten to it. */
  readonly publicUrl?: string | undefined;
}

/** A status whose `location` a client follows. */
function isRedirect(status: number): boolean {
  return status >= 300 && status < 400 && status !== 304;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Opens SQLite unless persistence is off; with 'auto', a failure leaves the cache memory-only (and says why). */
async function openStore(options: ResolvedCacheOptions, logger: Logger): Promise<{ store: EntryStore | undefined; failed: boolean }> {
  if (options.persistence === 'off') return { store: undefined, failed: false };
  try {
    const { SqliteStore } = await import('./store/sqlite-store.js');
    return {
      store: SqliteStore.open({ dir: options.cacheDir, maxEntries: options.maxEntries, maxBytes: options.maxBytes, logger, now: options.now }),
      failed: false,
    };
  } catch (err) {
    if (options.persistence === 'required') {
      throw err instanceof CacheConfigError ? err : new CacheConfigError('cacheDir', `cannot open the SQLite cache in ${options.cacheDir}: ${(err as Error).message}`, { cause: err });
    }
    logger.warn(`persistence disabled, running memory-only: cannot open the SQLite cache in ${options.cacheDir}:`, err);
    return { store: undefined, failed: true };
  }
}
