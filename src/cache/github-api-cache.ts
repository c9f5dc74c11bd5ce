import { CacheClosedError, CacheConfigError, CacheValueError } from '../errors.js';
import { InFlight } from '../in-flight.js';
import { createLogger, type Logger } from '../log.js';
import { resolveOptions, ttlForKey, type CacheOptions, type ResolvedCacheOptions } from '../options.js';
import type { EntryStore } from './entry-store.js';
import { sha256Hex, type CacheEntry } from './entry.js';
import { checkJsonValue, deepFreeze } from './json-value.js';
import { TieredEntries } from './tiered-entries.js';
import { TokenVault } from './token-vault.js';
import { GitHubRequester, type CachedResponse, type RequestOptions } from '../github/github-requester.js';
import type { ScopeRateLimit } from '../github/rate-limits.js';
import type { PeerNetwork, PeerNetworkStats } from '../p2p/peer-network.js';

/** Counters and gauges of one cache instance. */
export interface CacheStats {
  /** Reads answered with a fresh entry (memory, disk or peer). */
  hits: number;
  /** Reads that found no fresh entry. */
  misses: number;
  /** Reads answered by a peer. */
  peerHits: number;
  /** Reads that found an entry past its TTL (kept for revalidation and stale answers). */
  expirations: number;
  /** Entries evicted to stay within maxEntries / maxBytes. */
  evictions: number;
  /** Requests sent to GitHub. */
  apiCallsMade: number;
  /** GitHub calls avoided: fresh hits, peer hits, coalesced callers, stale answers, and 304s (free of rate limit). */
  apiCallsSaved: number;
  /** Entries held. */
  size: number;
  /** hits / (hits + misses), 0 when nothing was read. */
  hitRate: number;
  /** Values served past their TTL with getStale or as stale answers. */
  staleServed: number;
  /** Failed SQLite reads or writes (the memory tier kept working). */
  persistenceErrors: number;
  /** 'sqlite' or 'memory'. */
  persistence: 'sqlite' | 'memory';
  /** Bytes of bodies on disk, when persistent. */
  diskBytes?: number | undefined;
  /** Callers that joined another caller's upstream request for the same key. */
  coalesced: number;
  /** Conditional requests GitHub answered 304 Not Modified (free of rate limit). */
  notModified: number;
  /** Requests refused because the scope was rate-limited (by GitHub, or by the cache honouring GitHub). */
  rateLimited: number;
  /** Upstream 5xx, resets and timeouts. */
  upstreamErrors: number;
  /** Entries dropped because their token lost access or the resource is gone (401/403/404/410 on revalidation). */
  purged: number;
  /** Entries dropped by writes (POST, PATCH, PUT, DELETE) to their resource or collection. */
  invalidations: number;
  /** Writes passed through to GitHub. */
  writes: number;
  /** What GitHub last said per token scope (keys are one-way scope ids, never tokens). */
  rateLimits: Record<string, ScopeRateLimit>;
  /** The P2P host: peer id, listen addresses, peers and counters; absent when P2P is disabled. */
  p2p?: PeerNetworkStats | undefined;
}

/** Options of `put`. */
export interface PutOptions {
  /** Seconds the value stays fresh. Default: the TTL of the key's operation, else `defaultTtl`. */
  ttl?: number;
}

/** Things the singleton factory or tests inject; everything has a production default. */
export interface CacheDependencies {
  /** Opens the persistent store; default opens SQLite in `cacheDir`. */
  openStore?: (options: ResolvedCacheOptions, logger: Logger) => EntryStore;
}


/** Key/value entries live under this prefix, so they never collide with GitHub response entries. */
const KV_PREFIX = 'k:';

/**
 * GitHubAPICache: one process-wide cache of GitHub API responses and JSON values.
 *
 * Memory (LRU) in front of SQLite; expired entries are kept, so `getStale` and conditional revalidation work.
 * Every operation is async and rejects with CacheClosedError once `close()` was called. Values handed out are
 * deep-frozen copies: mutating them cannot corrupt the cache.
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
  protected readonly logger: Logger;
  protected readonly tiers: TieredEntries;
  protected readonly counters = {
    hits: 0,
    misses: 0,
    peerHits: 0,
    expirations: 0,
    evictions: 0,
    apiCallsMade: 0,
    apiCallsSaved: 0,
    staleServed: 0,
    persistenceErrors: 0,
  };
  protected readonly requester: GitHubRequester;
  protected readonly vault = new TokenVault();
  protected network: PeerNetwork | undefined;
  #closing: Promise<void> | undefined;
  readonly #inFlight = new InFlight();

  /**
   * Creates a cache: resolves options (explicit > environment > defaults), opens SQLite unless
   * `persistence: 'off'`. Throws CacheConfigError for an invalid option, or when `persistence: 'required'`
   * and the cache directory cannot be used.
   */
  static async create(options: CacheOptions = {}, dependencies: CacheDependencies = {}): Promise<GitHubAPICache> {
    const resolved = resolveOptions(options);
    const logger = createLogger('cache', resolved.logSink);
    const { store, failed } = await openStoreFor(resolved, logger, dependencies);
    const cache = new GitHubAPICache(resolved, store, logger);
    if (failed) cache.counters.persistenceErrors++;
    if (resolved.p2p.enabled) {
      try {
        await cache.startPeerNetwork();
      } catch (err) {
        cache.tiers.close(); // nothing may outlive a failed creation
        throw err;
      }
    }
    return cache;
  }

  protected constructor(options: ResolvedCacheOptions, store: EntryStore | undefined, logger: Logger) {
    this.options = options;
    this.logger = logger;
    this.tiers = new TieredEntries({ maxEntries: options.maxEntries, store, logger, counters: this.counters });
    this.requester = new GitHubRequester({ options, logger, tiers: this.tiers, vault: this.vault, counters: this.counters });
  }

  /** True once `close()` was called; every operation then rejects with CacheClosedError. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The fresh value of `key`, or undefined when absent or expired (the expired entry is kept; see getStale). */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    return this.#run('get', () => {
      const found = this.tiers.read(KV_PREFIX + checkKey(key));
      if (found === undefined) {
        this.counters.misses++;
        return undefined;
      }
      if (this.options.now() >= found.entry.expiresAt) {
        this.counters.expirations++;
        this.counters.misses++;
        return undefined;
      }
      this.counters.hits++;
      this.counters.apiCallsSaved++;
      return TieredEntries.parsed(found.item, parseFrozen) as T;
    });
  }

  /** The value of `key` even when it has expired, or undefined when absent. For fallbacks when GitHub fails. */
  async getStale<T = unknown>(key: string): Promise<T | undefined> {
    return this.#run('getStale', () => {
      const found = this.tiers.read(KV_PREFIX + checkKey(key));
      if (found === undefined) return undefined;
      if (this.options.now() >= found.entry.expiresAt) this.counters.staleServed++;
      return TieredEntries.parsed(found.item, parseFrozen) as T;
    });
  }

  /**
   * Stores a JSON value for `ttl` seconds (default: by the key's operation, else defaultTtl). A value JSON
   * cannot carry exactly is refused with CacheValueError and nothing is stored.
   */
  async put(key: string, value: unknown, options: PutOptions = {}): Promise<void> {
    return this.#run('put', () => {
      checkKey(key);
      const ttl = options.ttl ?? ttlForKey(key, this.options);
      if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
        throw new CacheValueError(key, `ttl must be a finite number of seconds >= 0, got ${String(ttl)}`);
      }
      const problem = checkJsonValue(value);
      if (problem !== undefined) throw new CacheValueError(key, `${problem}. Only JSON values can be cached.`);
      const body = JSON.stringify(value);
      const now = this.options.now();
      const entry: CacheEntry = {
        body,
        digest: sha256Hex(body),
        storedAt: now,
        expiresAt: now + ttl * 1000,
        status: 200,
        headers: {},
      };
      this.tiers.write(KV_PREFIX + key, entry);
    });
  }

  /** Removes `key`. Returns whether it was there. */
  async invalidate(key: string): Promise<boolean> {
    return this.#run('invalidate', () => this.tiers.delete(KV_PREFIX + checkKey(key)));
  }

  /** Removes every key that starts with `prefix` (plain text, no wildcards). Returns how many. */
  async invalidatePattern(prefix: string): Promise<number> {
    return this.#run('invalidatePattern', () => {
      if (typeof prefix !== 'string') throw new CacheValueError(String(prefix), 'the prefix must be a string');
      return this.tiers.deleteByPrefix(KV_PREFIX + prefix);
    });
  }

  /** Removes every entry (key/value and GitHub responses). Counters keep counting. */
  async clear(): Promise<void> {
    return this.#run('clear', () => this.tiers.clear());
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
  request<T = unknown>(route: string, params?: Record<string, unknown>, options?: RequestOptions): Promise<CachedResponse<T>> {
    // Not async itself: track() is, and an extra async layer would only add microtask hops to every call.
    return this.track('request', () => this.requester.request<T>(route, params, options));
  }

  /** A snapshot of counters and gauges. */
  async getStats(): Promise<CacheStats> {
    return this.#run('getStats', () => this.statsSnapshot());
  }

  /** Starts the libp2p host inside this instance (one per instance, so one per process through the provider). */
  protected async startPeerNetwork(): Promise<void> {
    // Loaded on demand: a cache without P2P never loads libp2p. The polyfill goes first (Node 20 lacks
    // Promise.withResolvers, which libp2p 3 calls).
    await import('../polyfills.js');
    const { PeerNetwork } = await import('../p2p/peer-network.js');
    const requester = this.requester;
    this.network = await PeerNetwork.start({
      p2p: this.options.p2p,
      cacheDir: this.options.cacheDir,
      logger: createLogger('p2p', this.options.logSink),
      now: this.options.now,
      host: {
        serveAsOwner: (key, signal, parts) => requester.serveAsOwner(key, signal, parts),
        heldEntry: (key, parts) => requester.heldEntry(key, parts),
        scopes: this.vault,
      },
    });
    requester.peers = this.network;
  }

  protected statsSnapshot(): CacheStats {
    const c = this.counters;
    const reads = c.hits + c.misses;
    return {
      ...c,
      size: this.tiers.size(),
      hitRate: reads === 0 ? 0 : c.hits / reads,
      persistence: this.tiers.persistent ? 'sqlite' : 'memory',
      diskBytes: this.tiers.diskBytes(),
      ...this.requester.extra,
      rateLimits: this.requester.rateLimitSnapshot(),
      ...(this.network !== undefined ? { p2p: this.network.stats() } : {}),
    };
  }

  /**
   * Closes the cache: new operations reject with CacheClosedError at once; operations in flight get up to
   * `closeTimeoutMs` to finish; then the P2P host stops (its port is released) and SQLite is closed.
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.shutdown();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Waits for in-flight work (bounded), then releases resources. Subclasses extend it. */
  protected async shutdown(): Promise<void> {
    await this.drain(this.options.closeTimeoutMs);
    this.requester.peers = undefined;
    const network = this.network;
    this.network = undefined;
    try {
      await network?.stop(); // releases the port: a new instance can bind it right after
    } catch (err) {
      this.logger.warn('stopping the P2P host failed:', err);
    }
    this.tiers.close();
  }

  /** Resolves when no operation is in flight, or after `timeoutMs` (with a warning). */
  protected async drain(timeoutMs: number): Promise<void> {
    if (!(await this.#inFlight.idle(timeoutMs))) {
      this.logger.warn(`close(): ${this.#inFlight.count} operation(s) still in flight after ${timeoutMs} ms; closing anyway`);
    }
  }

  /** Runs an operation: rejects when closed, counts it in flight so close() can wait for it. */
  protected async track<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) throw new CacheClosedError(operation);
    this.#inFlight.enter();
    try {
      return await fn();
    } finally {
      this.#inFlight.leave();
    }
  }

  async #run<T>(operation: string, fn: () => T): Promise<T> {
    if (this.#closing !== undefined) throw new CacheClosedError(operation);
    return fn();
  }
}

function checkKey(key: string): string {
  if (typeof key !== 'string') throw new CacheValueError(String(key), `a key must be a string, got a ${typeof key}`);
  return key;
}

function parseFrozen(body: string): unknown {
  return deepFreeze(JSON.parse(body));
}

async function defaultOpenStore(): Promise<(options: ResolvedCacheOptions, logger: Logger) => EntryStore> {
  const { SqliteStore } = await import('../store/sqlite-store.js');
  return (options, logger) =>
    SqliteStore.open({ dir: options.cacheDir, maxEntries: options.maxEntries, maxBytes: options.maxBytes, logger, now: options.now });
}

export async function openStoreFor(options: ResolvedCacheOptions, logger: Logger, dependencies: CacheDependencies):
  Promise<{ store: EntryStore | undefined; failed: boolean }> {
  if (options.persistence === 'off') return { store: undefined, failed: false };
  try {
    const open = dependencies.openStore ?? (await defaultOpenStore());
    return { store: open(options, logger), failed: false };
  } catch (err) {
    if (options.persistence === 'required') {
      throw err instanceof CacheConfigError ? err : new CacheConfigError('cacheDir', `cannot open the SQLite cache in ${options.cacheDir}: ${(err as Error).message}`, { cause: err });
    }
    logger.warn(`persistence disabled, running memory-only: cannot open the SQLite cache in ${options.cacheDir}:`, err);
    return { store: undefined, failed: true };
  }
}
