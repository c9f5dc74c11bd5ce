/**
 * A loopback stand-in for the GitHub REST API, faithful in everything an HTTP cache cares about.
 *
 * Specs, benchmarks and examples need an origin that follows GitHub's caching and rate-limit rules (see
 * "GitHub's rules the cache must obey" in DESIGN.md) without touching the network: ETags that differ per
 * token and per Accept, free 304s to authorized conditional requests, `cache-control`/`vary`, per-token
 * `x-ratelimit-*` windows, private resources hidden behind 404, paginated collections with RFC 5988 `link`
 * headers, writes, and injectable faults (5xx, connection resets, hangs, primary and secondary limits,
 * latency). Every request is counted so a caller can prove how many upstream requests and rate-limit units
 * a cache spent, and how many requests were in flight at once.
 *
 * This file is the public face, {@link FakeGitHub}; the work is split by job: server.ts (HTTP and the request
 * pipeline), tokens.ts (identities and rate-limit windows), resources.ts (what is served, ETags, pages,
 * writes), faults.ts (injected faults, latency, pause), stats.ts (counters, request log, waiters).
 *
 * Tokens are secrets even here: the server never prints them, and every counter and log entry names a
 * token by its label (`tokens[token].label`, default `token#<n>`), never by the token itself.
 */
import { FaultPlan, type FaultTarget } from './faults.js';
import { recordedEveryAnswerHeaders } from './recorded-headers.js';
import { FakeGitHubServer } from './server.js';
import { ResourceStore, type CollectionOptions, type ResourceOptions } from './resources.js';
import { RequestCounters, type FakeGitHubStats, type RequestLogEntry } from './stats.js';
import { RateLimits, type FakeTokenSettings, type RateLimitState, type RateLimitTokenOptions } from './tokens.js';

export type { FaultTarget } from './faults.js';
export type { CollectionOptions, ResourceOptions, Visibility } from './resources.js';
export type { FakeGitHubStats, RequestLogEntry } from './stats.js';
export type { FakeTokenSettings, RateLimitState, RateLimitTokenOptions } from './tokens.js';

export interface FakeGitHubOptions {
  /** token -> settings. A request with a token not listed here gets 401 `{"message":"Bad credentials"}`. */
  tokens?: Record<string, FakeTokenSettings>;
  /** Primary rate limit per hour of anonymous requests (all share one window, as one IP would). Default 60. */
  anonymousRateLimit?: number;
  /** Latency injected before every answer, in ms. Default 0. */
  latencyMs?: number;
  /** Clock in ms since the epoch; rate-limit windows, `x-ratelimit-reset` and `date` follow it. Default `Date.now`. */
  now?: () => number;
  /**
   * GitHub charges a 304 only when the request was not authorized ("a 304 … does not count against your
   * primary rate limit if … made while correctly authorized"). Default true, as on GitHub; set false to
   * make anonymous 304s free too.
   */
  chargeAnonymousNotModified?: boolean;
  /**
   * Also send the headers api.github.com puts on every answer beside the ones the fake always sends (CORS,
   * security policy, the token's OAuth scopes: ten more, about 700 bytes), with the values recorded in
   * `@octokit/fixtures` (get-repository), so that what a cache stores and shares per answer is as large as
   * GitHub's. Default true; false sends only the fake's own smaller set.
   */
  recordedHeaders?: boolean;
  /** Port to listen on; default 0 (ephemeral). */
  port?: number;
  /** IPv4 address to listen on, e.g. a bridge's address that other network namespaces reach; default 127.0.0.1. */
  host?: string;
}

/** Config of a standalone server (see standalone.ts). */
export interface FakeGitHubConfig extends FakeGitHubOptions {
  resources?: Array<{ path: string; body: unknown } & ResourceOptions>;
  collections?: Array<{ path: string; items: unknown[] } & CollectionOptions>;
}

/**
 * The fake GitHub server. Create with {@link FakeGitHub.start}; always {@link FakeGitHub.close} it.
 */
export class FakeGitHub {
  /** e.g. `http://127.0.0.1:41234`, no trailing slash; use as Octokit's `baseUrl`. */
  readonly url: string;

  readonly #server: FakeGitHubServer;
  readonly #rateLimits: RateLimits;
  readonly #resources: ResourceStore;
  readonly #faults: FaultPlan;
  readonly #counters: RequestCounters;

  private constructor(server: FakeGitHubServer, rateLimits: RateLimits, resources: ResourceStore, faults: FaultPlan, counters: RequestCounters) {
    this.url = server.url;
    this.#server = server;
    this.#rateLimits = rateLimits;
    this.#resources = resources;
    this.#faults = faults;
    this.#counters = counters;
  }

  /** Listen on 127.0.0.1 or `options.host` (ephemeral port unless `options.port`) and resolve once ready. */
  static async start(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
    const clock = options.now ?? Date.now;
    const rateLimits = new RateLimits(clock, options.tokens ?? {}, options.anonymousRateLimit ?? 60);
    const resources = new ResourceStore();
    const faults = new FaultPlan(options.latencyMs ?? 0);
    const counters = new RequestCounters();
    const server = await FakeGitHubServer.listen(options.port ?? 0, {
      clock, chargeAnonymousNotModified: options.chargeAnonymousNotModified ?? true, rateLimits, resources, faults, counters,
      extraHeaders: options.recordedHeaders === false ? undefined : recordedEveryAnswerHeaders(),
    }, options.host);
    return new FakeGitHub(server, rateLimits, resources, faults, counters);
  }

  // ---------------------------------------------------------------- tokens and rate limits

  /** Accept another token (its label defaults to `token#<n>`). */
  addToken(token: string, settings: FakeTokenSettings = {}): void {
    this.#rateLimits.addToken(token, settings);
  }

  /**
   * Rate-limit a token (`undefined`: anonymous callers) from now on: a primary limit (remaining 0 until
   * `resetInSeconds`), a secondary one (`retryAfterSeconds`: everything refused with `retry-after`), or
   * both. Lifts by itself when the clock passes the time, or with {@link clearRateLimit}.
   */
  rateLimitToken(token: string | undefined, opts: RateLimitTokenOptions = {}): void {
    this.#rateLimits.rateLimitToken(token, opts);
  }

  /** Give a token (`undefined`: anonymous) a fresh, unblocked window. */
  clearRateLimit(token: string | undefined): void {
    this.#rateLimits.clearRateLimit(token);
  }

  /** The token's (`undefined`: anonymous) window, as its `x-ratelimit-*` headers would say now. */
  rateLimitState(token: string | undefined): RateLimitState {
    return this.#rateLimits.rateLimitState(token);
  }

  // ---------------------------------------------------------------- resources

  /**
   * Serve `body` (deep-copied; a string is served as JSON, or as text/plain to the `raw` media types) at
   * `path`. A path with a query matches only that query; a path without one matches any query.
   */
  setResource(path: string, body: unknown, opts: ResourceOptions = {}): void {
    this.#resources.setResource(path, body, opts);
  }

  /**
   * Serve `items` as a paginated collection at `path`: `?page=N&per_page=M` (1-based, default per page 30,
   * at most 100) with a `link` header (`prev`, `next`, `last`, `first`, absolute URLs keeping the other
   * query parameters) whenever there is more than one page. `POST path` appends; `path/<number|id>`
   * addresses an object item by its `number` or `id` (GET, PATCH, DELETE).
   */
  setCollection(path: string, items: readonly unknown[], opts: CollectionOptions = {}): void {
    this.#resources.setCollection(path, items, opts);
  }

  /** A copy of what is served at `path` now (a resource, a collection's items, or a collection item). */
  getResource(path: string): unknown {
    return this.#resources.getResource(path);
  }

  /** Stop serving `path` (resource and collection): it answers 404 from now on. */
  deleteResource(path: string): void {
    this.#resources.deleteResource(path);
  }

  // ---------------------------------------------------------------- faults and latency

  /** Answer the next `count` matching requests (`Infinity`: until cleared) with `status`, uncharged. */
  failNext(count: number, status: 500 | 502 | 503 | 504, opts: FaultTarget = {}): void {
    this.#faults.add('fail', count, opts, status, 0);
  }

  /** Destroy the connection of the next `count` matching requests without an answer (ECONNRESET). */
  resetNext(count: number, opts: FaultTarget = {}): void {
    this.#faults.add('reset', count, opts, 0, 0);
  }

  /** Never answer the next `count` matching requests (the client times out); `close()` still ends them. */
  hangNext(count: number, opts: FaultTarget = {}): void {
    this.#faults.add('hang', count, opts, 0, 0);
  }

  /**
   * Refuse the next `count` matching requests with `status` (403 by default, as GitHub mostly does),
   * `retry-after: retryAfterSeconds` and GitHub's secondary-limit message; remaining stays as it was.
   */
  secondaryLimitNext(count: number, retryAfterSeconds: number, opts: FaultTarget & { status?: 403 | 429 } = {}): void {
    this.#faults.add('secondary', count, { path: opts.path }, opts.status ?? 403, retryAfterSeconds);
  }

  /** Drop every pending fault from `failNext`, `resetNext`, `hangNext` and `secondaryLimitNext`. */
  clearFaults(): void {
    this.#faults.clear();
  }

  /**
   * Delay every answer by `ms` from now on, or only answers to `opts.path` (a path rule wins over the
   * global delay; the last matching rule wins among path rules). `ms` 0 with a path removes that rule.
   */
  setLatency(ms: number, opts: FaultTarget = {}): void {
    this.#faults.setLatency(ms, opts);
  }

  /**
   * Hold every request, new and already waiting, until {@link resume}: they stay in flight, which lets a
   * spec count how many a client sends at once without relying on timing.
   */
  pause(): void {
    this.#faults.pause();
  }

  /** Let held requests through. */
  resume(): void {
    this.#faults.resume();
  }

  // ---------------------------------------------------------------- counters

  /** A snapshot of the counters (safe to keep and compare with a later one). */
  get stats(): FakeGitHubStats {
    return this.#counters.snapshot();
  }

  /** The last 10,000 answers, oldest first (a copy). */
  get requestLog(): RequestLogEntry[] {
    return this.#counters.logCopy();
  }

  /** Zero the counters and empty the request log (`inFlight` keeps counting the requests still open). */
  resetStats(): void {
    this.#counters.reset();
  }

  /** Resolve once `predicate(stats)` holds (checked now and after every change), e.g. `s => s.inFlight >= 10`. */
  waitFor(predicate: (stats: Readonly<FakeGitHubStats>) => boolean): Promise<void> {
    return this.#counters.waitFor(predicate);
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Stop listening, destroy every connection (keep-alive, hung, paused, delayed) and clear every timer.
   * Idempotent.
   */
  close(): Promise<void> {
    return this.#server.close();
  }
}
