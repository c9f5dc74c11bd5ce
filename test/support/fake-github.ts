/**
 * A loopback stand-in for the GitHub REST API, faithful in everything an HTTP cache cares about.
 *
 * Specs and benchmarks need an origin that follows GitHub's caching and rate-limit rules (see
 * "GitHub's rules the cache must obey" in DESIGN.md) without touching the network: ETags that differ per
 * token and per Accept, free 304s to authorized conditional requests, `cache-control`/`vary`, per-token
 * `x-ratelimit-*` windows, private resources hidden behind 404, paginated collections with RFC 5988 `link`
 * headers, writes, and injectable faults (5xx, connection resets, hangs, primary and secondary limits,
 * latency). Every request is counted so a spec can prove how many upstream requests and rate-limit units a
 * cache spent, and how many requests were in flight at once.
 *
 * It is a real `node:http` server on 127.0.0.1 with an ephemeral port. `close()` destroys every socket,
 * including hung and keep-alive ones, and clears every timer, so mocha exits on its own.
 *
 * Tokens are secrets even here: the server never prints them, and every counter and log entry names a
 * token by its label (`tokens[token].label`, default `token#<n>`), never by the token itself.
 *
 * Run directly (`node dist/test/support/fake-github.js [config.json]`, or with the config as JSON in the
 * `FAKE_GITHUB_CONFIG` environment variable) it serves a {@link FakeGitHubConfig} in a child process and
 * prints one JSON line `{"url": ...}` (also sent over IPC when there is a channel).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

/** Per-token settings. */
export interface FakeTokenSettings {
  /** Primary rate limit per hour for this token (GitHub: 5000 for a user token). */
  rateLimit?: number;
  /** The name this token has in stats and logs; default `token#<n>` (1-based, in configuration order). */
  label?: string;
}

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
  /** Port to listen on; default 0 (ephemeral). */
  port?: number;
}

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

/** Which requests a fault applies to. */
export interface FaultTarget {
  /**
   * A string matches the request's path exactly (the path with its query when the string holds a `?`,
   * else the path without it); a RegExp is tested against the path with its query. Default: every request.
   */
  path?: string | RegExp;
}

export interface RateLimitTokenOptions {
  /**
   * Secondary limit: every request of this token (conditional ones too) gets `status` with `retry-after`
   * until this many seconds have passed on the clock.
   */
  retryAfterSeconds?: number;
  /**
   * Primary limit: the token's window is exhausted (remaining 0) and resets this many seconds from now.
   * Used when neither option is given (then the window resets when it would have anyway).
   */
  resetInSeconds?: number;
  /** 403 (default) or 429: GitHub uses both for rate limits. */
  status?: 403 | 429;
}

/** What `rateLimitState` reports; the same numbers the `x-ratelimit-*` headers carry. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  used: number;
  /** Epoch seconds at which the window resets. */
  reset: number;
}

export interface FakeGitHubStats {
  /** Every request received, whatever became of it. */
  requests: number;
  /** Answers by status code (resets and hangs have no status and are counted apart). */
  byStatus: Record<number, number>;
  /** Rate-limit units spent, over all tokens. */
  charged: number;
  /** 304 answers. */
  notModified: number;
  /** Writes (POST/PATCH/PUT/DELETE) that reached the API (each costs 5 secondary points on GitHub). */
  writes: number;
  /** Requests by path with its query, as received (each page of a collection is its own key). */
  byPath: Record<string, number>;
  /** Requests by token label; `anonymous` and `invalid` (unknown token) besides the configured labels. */
  byToken: Record<string, number>;
  /** Connections destroyed without an answer by `resetNext`. */
  resets: number;
  /** Requests left unanswered by `hangNext`. */
  hangs: number;
  /** The most requests in flight at once (received, not yet answered). */
  maxConcurrent: number;
  /** Requests in flight now. */
  inFlight: number;
}

export interface RequestLogEntry {
  method: string;
  /** Path with its query. */
  path: string;
  /** 0 for a reset or a hang. */
  status: number;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  tokenLabel: string;
  /** Whether this answer spent a rate-limit unit. */
  charged: boolean;
  /** The clock (`now`) when answered. */
  at: number;
}

/** Config of a standalone server (see the module comment). */
export interface FakeGitHubConfig extends FakeGitHubOptions {
  resources?: Array<{ path: string; body: unknown } & ResourceOptions>;
  collections?: Array<{ path: string; items: unknown[] } & CollectionOptions>;
}

const REQUEST_LOG_LIMIT = 10_000;
const MAX_BODY_BYTES = 10 * 1024 * 1024;
const MAX_PER_PAGE = 100;
const WINDOW_MS = 60 * 60 * 1000;
const ANONYMOUS = 'anonymous';
const INVALID = 'invalid';
const DOCS = 'https://docs.github.com/rest';
/** Roughly what GitHub's front end says with each 5xx. */
const FAULT_MESSAGES: Record<number, string> = {
  500: 'Server Error',
  502: 'Server Error',
  503: 'Service Unavailable',
  504: 'We couldn\'t respond to your request in time. Sorry about that.',
};
const SECONDARY_MESSAGE =
  'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.';

interface Bucket {
  label: string;
  limit: number;
  used: number;
  /** ms; undefined until the first charged request opens a window. */
  resetAt: number | undefined;
  /** A secondary limit set by `rateLimitToken`: blocked until this time (ms). */
  blockedUntil: number | undefined;
  status: 403 | 429;
}

interface Identity {
  kind: 'anonymous' | 'token' | 'invalid';
  /** The token, for ETags and visibility only; never logged. */
  token: string | undefined;
  label: string;
  /** The window that pays for this request (invalid tokens show the anonymous one and pay nothing). */
  bucket: Bucket;
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

interface Fault {
  kind: 'fail' | 'reset' | 'hang' | 'secondary';
  remaining: number;
  target: FaultTarget;
  status: number;
  retryAfterSeconds: number;
}

interface LatencyRule {
  ms: number;
  target: FaultTarget;
}

/** A request as the router sees it. */
interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** Path without query, trailing slash removed. */
  path: string;
  /** Path with its query, as received. */
  fullPath: string;
  query: URLSearchParams;
  identity: Identity;
  accept: string;
  ifNoneMatch: string | undefined;
  ifModifiedSince: string | undefined;
}

/** What a GET or HEAD would return with 200. */
interface Representation {
  visibility: Visibility;
  payload: string;
  contentType: string;
  etag: string;
  lastModified: string | undefined;
  headers: Record<string, string>;
}

type Waiter = { predicate: (stats: Readonly<FakeGitHubStats>) => boolean; resolve: () => void };

function emptyStats(): FakeGitHubStats {
  return {
    requests: 0, byStatus: {}, charged: 0, notModified: 0, writes: 0, byPath: {}, byToken: {},
    resets: 0, hangs: 0, maxConcurrent: 0, inFlight: 0,
  };
}

function bump(record: Record<string | number, number>, key: string | number): void {
  record[key] = (record[key] ?? 0) + 1;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Strip the weak prefix: If-None-Match uses weak comparison (RFC 9110 §13.1.2). */
function opaqueTag(tag: string): string {
  const trimmed = tag.trim();
  return trimmed.startsWith('W/') ? trimmed.slice(2) : trimmed;
}

function matchesTarget(target: FaultTarget, path: string, fullPath: string): boolean {
  const { path: want } = target;
  if (want === undefined) return true;
  if (typeof want === 'string') return want.includes('?') ? want === fullPath : want === path;
  want.lastIndex = 0;
  return want.test(fullPath);
}

function normalizePath(pathname: string): string {
  return pathname.length > 1 && pathname.endsWith('/') ? pathname.replace(/\/+$/, '') || '/' : pathname;
}

/** A later HTTP date than `previous` (writes inside one second must still move Last-Modified). */
function nextHttpDate(previous: string | undefined, nowMs: number): string {
  const prev = previous === undefined ? Number.NaN : Date.parse(previous);
  const at = Number.isNaN(prev) ? nowMs : Math.max(nowMs, prev + 1000);
  return new Date(at).toUTCString();
}

/**
 * The fake GitHub server. Create with {@link FakeGitHub.start}; always {@link FakeGitHub.close} it.
 */
export class FakeGitHub {
  /** e.g. `http://127.0.0.1:41234`, no trailing slash; use as Octokit's `baseUrl`. */
  readonly url: string;

  private readonly server: Server;
  private readonly clock: () => number;
  private readonly chargeAnonymousNotModified: boolean;
  private readonly tokenBuckets = new Map<string, Bucket>();
  private readonly anonymousBucket: Bucket;
  private readonly resources = new Map<string, Resource>();
  private readonly collections = new Map<string, Collection>();
  private faults: Fault[] = [];
  private latencyMs: number;
  private latencyRules: LatencyRule[] = [];
  private counters: FakeGitHubStats = emptyStats();
  private log: RequestLogEntry[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Map<NodeJS.Timeout, () => void>();
  private waiters: Waiter[] = [];
  private paused: { promise: Promise<void>; release: () => void } | undefined;
  private requestSeq = 0;
  private closing: Promise<void> | undefined;

  private constructor(server: Server, url: string, options: FakeGitHubOptions) {
    this.server = server;
    this.url = url;
    this.clock = options.now ?? Date.now;
    this.chargeAnonymousNotModified = options.chargeAnonymousNotModified ?? true;
    this.latencyMs = options.latencyMs ?? 0;
    this.anonymousBucket = this.newBucket(ANONYMOUS, options.anonymousRateLimit ?? 60);
    let n = 0;
    for (const [token, settings] of Object.entries(options.tokens ?? {})) {
      n += 1;
      this.addToken(token, { label: settings.label ?? `token#${n}`, rateLimit: settings.rateLimit });
    }
  }

  /** Listen on 127.0.0.1 (ephemeral port unless `options.port`) and resolve once ready. */
  static async start(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
    const server = createServer({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const fake = new FakeGitHub(server, `http://127.0.0.1:${port}`, options);
    server.on('connection', (socket: Socket) => {
      fake.sockets.add(socket);
      socket.once('close', () => fake.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      fake.handle(req, res).catch((error: unknown) => fake.crashed(res, error));
    });
    return fake;
  }

  // ---------------------------------------------------------------- tokens and rate limits

  /** Accept another token (its label defaults to `token#<n>`). */
  addToken(token: string, settings: FakeTokenSettings = {}): void {
    const label = settings.label ?? `token#${this.tokenBuckets.size + 1}`;
    this.tokenBuckets.set(token, this.newBucket(label, settings.rateLimit ?? 5000));
  }

  /**
   * Rate-limit a token (`undefined`: anonymous callers) from now on: a primary limit (remaining 0 until
   * `resetInSeconds`), a secondary one (`retryAfterSeconds`: everything refused with `retry-after`), or
   * both. Lifts by itself when the clock passes the time, or with {@link clearRateLimit}.
   */
  rateLimitToken(token: string | undefined, opts: RateLimitTokenOptions = {}): void {
    const bucket = this.bucketOf(token);
    const now = this.clock();
    this.roll(bucket, now);
    bucket.status = opts.status ?? 403;
    if (opts.resetInSeconds !== undefined || opts.retryAfterSeconds === undefined) {
      bucket.used = bucket.limit;
      bucket.resetAt = opts.resetInSeconds !== undefined
        ? now + opts.resetInSeconds * 1000
        : (bucket.resetAt ?? now + WINDOW_MS);
    }
    if (opts.retryAfterSeconds !== undefined) bucket.blockedUntil = now + opts.retryAfterSeconds * 1000;
  }

  /** Give a token (`undefined`: anonymous) a fresh, unblocked window. */
  clearRateLimit(token: string | undefined): void {
    const bucket = this.bucketOf(token);
    bucket.used = 0;
    bucket.resetAt = undefined;
    bucket.blockedUntil = undefined;
    bucket.status = 403;
  }

  /** The token's (`undefined`: anonymous) window, as its `x-ratelimit-*` headers would say now. */
  rateLimitState(token: string | undefined): RateLimitState {
    const bucket = this.bucketOf(token);
    const now = this.clock();
    this.roll(bucket, now);
    return {
      limit: bucket.limit,
      remaining: bucket.limit - bucket.used,
      used: bucket.used,
      reset: Math.ceil((bucket.resetAt ?? now + WINDOW_MS) / 1000),
    };
  }

  // ---------------------------------------------------------------- resources

  /**
   * Serve `body` (deep-copied; a string is served as JSON, or as text/plain to the `raw` media types) at
   * `path`. A path with a query matches only that query; a path without one matches any query.
   */
  setResource(path: string, body: unknown, opts: ResourceOptions = {}): void {
    this.resources.set(this.key(path), {
      body: structuredClone(body),
      visibleTo: opts.visibleTo,
      anonymous: opts.anonymous,
      lastModified: opts.lastModified,
      link: opts.link,
      headers: { ...opts.headers },
    });
  }

  /**
   * Serve `items` as a paginated collection at `path`: `?page=N&per_page=M` (1-based, default per page 30,
   * at most 100) with a `link` header (`prev`, `next`, `last`, `first`, absolute URLs keeping the other
   * query parameters) whenever there is more than one page. `POST path` appends; `path/<number|id>`
   * addresses an object item by its `number` or `id` (GET, PATCH, DELETE).
   */
  setCollection(path: string, items: readonly unknown[], opts: CollectionOptions = {}): void {
    this.collections.set(this.key(path), {
      items: structuredClone([...items]),
      perPage: Math.min(Math.max(1, opts.perPage ?? 30), MAX_PER_PAGE),
      visibleTo: opts.visibleTo,
      anonymous: opts.anonymous,
      lastModified: opts.lastModified,
    });
  }

  /** A copy of what is served at `path` now (a resource, a collection's items, or a collection item). */
  getResource(path: string): unknown {
    const found = this.lookup(this.key(path), this.key(path));
    return found === undefined ? undefined : structuredClone(found.kind === 'collection' ? found.collection.items : found.value);
  }

  /** Stop serving `path` (resource and collection): it answers 404 from now on. */
  deleteResource(path: string): void {
    this.resources.delete(this.key(path));
    this.collections.delete(this.key(path));
  }

  // ---------------------------------------------------------------- faults and latency

  /** Answer the next `count` matching requests (`Infinity`: until cleared) with `status`, uncharged. */
  failNext(count: number, status: 500 | 502 | 503 | 504, opts: FaultTarget = {}): void {
    this.addFault('fail', count, opts, status, 0);
  }

  /** Destroy the connection of the next `count` matching requests without an answer (ECONNRESET). */
  resetNext(count: number, opts: FaultTarget = {}): void {
    this.addFault('reset', count, opts, 0, 0);
  }

  /** Never answer the next `count` matching requests (the client times out); `close()` still ends them. */
  hangNext(count: number, opts: FaultTarget = {}): void {
    this.addFault('hang', count, opts, 0, 0);
  }

  /**
   * Refuse the next `count` matching requests with `status` (403 by default, as GitHub mostly does),
   * `retry-after: retryAfterSeconds` and GitHub's secondary-limit message; remaining stays as it was.
   */
  secondaryLimitNext(count: number, retryAfterSeconds: number, opts: FaultTarget & { status?: 403 | 429 } = {}): void {
    this.addFault('secondary', count, { path: opts.path }, opts.status ?? 403, retryAfterSeconds);
  }

  /** Drop every pending fault from `failNext`, `resetNext`, `hangNext` and `secondaryLimitNext`. */
  clearFaults(): void {
    this.faults = [];
  }

  /**
   * Delay every answer by `ms` from now on, or only answers to `opts.path` (a path rule wins over the
   * global delay; the last matching rule wins among path rules). `ms` 0 with a path removes that rule.
   */
  setLatency(ms: number, opts: FaultTarget = {}): void {
    if (opts.path === undefined) {
      this.latencyMs = ms;
      return;
    }
    this.latencyRules = this.latencyRules.filter((rule) => String(rule.target.path) !== String(opts.path));
    if (ms > 0) this.latencyRules.push({ ms, target: { path: opts.path } });
  }

  /**
   * Hold every request, new and already waiting, until {@link resume}: they stay in flight, which lets a
   * spec count how many a client sends at once without relying on timing.
   */
  pause(): void {
    if (this.paused !== undefined) return;
    let release!: () => void;
    const promise = new Promise<void>((resolve) => { release = resolve; });
    this.paused = { promise, release };
  }

  /** Let held requests through. */
  resume(): void {
    const paused = this.paused;
    this.paused = undefined;
    paused?.release();
  }

  // ---------------------------------------------------------------- counters

  /** A snapshot of the counters (safe to keep and compare with a later one). */
  get stats(): FakeGitHubStats {
    return structuredClone(this.counters);
  }

  /** The last 10,000 answers, oldest first (a copy). */
  get requestLog(): RequestLogEntry[] {
    return [...this.log];
  }

  /** Zero the counters and empty the request log (`inFlight` keeps counting the requests still open). */
  resetStats(): void {
    const inFlight = this.counters.inFlight;
    this.counters = emptyStats();
    this.counters.inFlight = inFlight;
    this.counters.maxConcurrent = inFlight;
    this.log = [];
  }

  /** Resolve once `predicate(stats)` holds (checked now and after every change), e.g. `s => s.inFlight >= 10`. */
  waitFor(predicate: (stats: Readonly<FakeGitHubStats>) => boolean): Promise<void> {
    if (predicate(this.counters)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Stop listening, destroy every connection (keep-alive, hung, paused, delayed) and clear every timer.
   * Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const [timer, wake] of this.timers) {
        clearTimeout(timer);
        wake();
      }
      this.timers.clear();
      this.resume();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
      for (const waiter of this.waiters) waiter.resolve();
      this.waiters = [];
    });
    return this.closing;
  }

  // ---------------------------------------------------------------- the request pipeline

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const counters = this.counters;
    counters.requests += 1;
    counters.inFlight += 1;
    counters.maxConcurrent = Math.max(counters.maxConcurrent, counters.inFlight);
    res.once('close', () => {
      this.counters.inFlight = Math.max(0, this.counters.inFlight - 1);
      this.notify();
    });

    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const path = normalizePath(url.pathname);
    const fullPath = path + url.search;
    const identity = this.identify(req.headers.authorization);
    bump(counters.byPath, fullPath);
    bump(counters.byToken, identity.label);
    this.notify();

    const ctx: Ctx = {
      req, res, path, fullPath, identity,
      method: (req.method ?? 'GET').toUpperCase(),
      query: url.searchParams,
      accept: (req.headers.accept ?? '*/*').trim().toLowerCase(),
      ifNoneMatch: req.headers['if-none-match'],
      ifModifiedSince: req.headers['if-modified-since'],
    };

    const isWrite = ['POST', 'PATCH', 'PUT', 'DELETE'].includes(ctx.method);
    // Start reading at once so the body is buffered while the request waits.
    const body = isWrite ? readBody(req) : Promise.resolve('');
    body.catch(() => undefined);

    while (this.paused !== undefined && this.closing === undefined) await this.paused.promise;
    const latency = this.latencyFor(path, fullPath);
    if (latency > 0) await this.sleep(latency);
    if (this.gone(res)) return;

    if (this.applyFault(ctx)) return;

    if (identity.kind === 'invalid') {
      this.sendError(ctx, 401, 'Bad credentials', false);
      return;
    }

    const now = this.clock();
    const bucket = identity.bucket;
    this.roll(bucket, now);
    if (bucket.blockedUntil !== undefined) {
      if (now < bucket.blockedUntil) {
        const retryAfter = Math.max(1, Math.ceil((bucket.blockedUntil - now) / 1000));
        const exhausted = bucket.used >= bucket.limit;
        this.sendError(ctx, bucket.status, exhausted ? this.primaryMessage(identity) : SECONDARY_MESSAGE, false,
          { 'retry-after': String(retryAfter) });
        return;
      }
      bucket.blockedUntil = undefined;
    }

    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      this.read(ctx);
      return;
    }
    if (isWrite) {
      let text: string;
      try {
        text = await body;
      } catch {
        return; // the client went away mid-body
      }
      if (this.gone(res)) return;
      this.write(ctx, text);
      return;
    }
    if (!this.charge(ctx)) return;
    this.sendError(ctx, 404, 'Not Found', true);
  }

  /** GET and HEAD: 200 or a free 304, 404 for what this caller may not see. */
  private read(ctx: Ctx): void {
    const rep = this.represent(ctx);
    if (rep === undefined) {
      if (!this.charge(ctx)) return;
      this.sendError(ctx, 404, 'Not Found', true);
      return;
    }
    if (this.notModified(ctx, rep)) {
      const charged = ctx.identity.kind === 'anonymous' && this.chargeAnonymousNotModified;
      if (charged && !this.charge(ctx)) return;
      this.counters.notModified += 1;
      this.send(ctx, 304, undefined, { etag: rep.etag, ...(rep.lastModified ? { 'last-modified': rep.lastModified } : {}), ...rep.headers }, charged);
      return;
    }
    if (!this.charge(ctx)) return;
    this.send(ctx, 200, rep.payload, {
      'content-type': rep.contentType,
      etag: rep.etag,
      ...(rep.lastModified ? { 'last-modified': rep.lastModified } : {}),
      ...rep.headers,
    }, true);
  }

  /** POST appends to a collection, PATCH merges, PUT replaces or creates, DELETE removes. All cost 1. */
  private write(ctx: Ctx, text: string): void {
    if (ctx.identity.kind === 'anonymous') {
      this.sendError(ctx, 401, 'Requires authentication', false);
      return;
    }
    if (!this.charge(ctx)) return;
    this.counters.writes += 1;

    let input: unknown;
    if (text.trim() !== '') {
      try {
        input = JSON.parse(text);
      } catch {
        this.sendError(ctx, 400, 'Problems parsing JSON', true);
        return;
      }
    }

    const found = this.lookup(ctx.fullPath, ctx.path);
    if (found !== undefined && !this.visible(found.visibility, ctx.identity)) {
      this.sendError(ctx, 404, 'Not Found', true);
      return;
    }
    const now = this.clock();
    const json = (status: number, value: unknown): void =>
      this.send(ctx, status, JSON.stringify(value) ?? 'null', { 'content-type': 'application/json; charset=utf-8' }, true);

    switch (ctx.method) {
      case 'POST': {
        if (found?.kind !== 'collection') break;
        const item = input ?? {};
        found.collection.items.push(structuredClone(item));
        if (found.collection.lastModified !== undefined) {
          found.collection.lastModified = nextHttpDate(found.collection.lastModified, now);
        }
        json(201, item);
        return;
      }
      case 'PATCH': {
        if (found === undefined || found.kind === 'collection') break;
        const merged = isPlainObject(found.value) && isPlainObject(input) ? { ...found.value, ...input } : input;
        if (found.kind === 'resource') {
          found.resource.body = structuredClone(merged);
          if (found.resource.lastModified !== undefined) {
            found.resource.lastModified = nextHttpDate(found.resource.lastModified, now);
          }
        } else {
          found.collection.items[found.index] = structuredClone(merged);
        }
        json(200, merged);
        return;
      }
      case 'PUT': {
        if (found?.kind === 'collection') {
          if (!Array.isArray(input)) {
            this.sendError(ctx, 422, 'Validation Failed', true);
            return;
          }
          found.collection.items = structuredClone(input);
          json(200, input);
          return;
        }
        if (found?.kind === 'item') {
          found.collection.items[found.index] = structuredClone(input);
          json(200, input);
          return;
        }
        if (found?.kind === 'resource') {
          found.resource.body = structuredClone(input);
          if (found.resource.lastModified !== undefined) {
            found.resource.lastModified = nextHttpDate(found.resource.lastModified, now);
          }
          json(200, input);
          return;
        }
        this.setResource(ctx.path, input);
        json(201, input);
        return;
      }
      case 'DELETE': {
        if (found === undefined) break;
        if (found.kind === 'item') found.collection.items.splice(found.index, 1);
        else this.deleteResource(found.key);
        this.send(ctx, 204, undefined, {}, true);
        return;
      }
    }
    this.sendError(ctx, 404, 'Not Found', true);
  }

  /** What a 200 would carry for this caller, or undefined for 404 (missing or hidden). */
  private represent(ctx: Ctx): Representation | undefined {
    const found = this.lookup(ctx.fullPath, ctx.path);
    if (found === undefined || !this.visible(found.visibility, ctx.identity)) return undefined;

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
      const page = this.page(found.collection, ctx);
      value = page.items;
      link = page.link;
      lastModified = found.collection.lastModified;
    }

    const raw = typeof value === 'string' && /application\/vnd\.github(\.v3)?\.raw/.test(ctx.accept);
    const payload = raw ? (value as string) : (JSON.stringify(value) ?? 'null');
    // Like GitHub, the ETag depends on who asks and in which media type, so no two tokens share one.
    // The link header is part of it so that a page whose neighbours changed is not revalidated as current.
    const scope = ctx.identity.token === undefined ? ANONYMOUS : `token:${ctx.identity.token}`;
    const digest = createHash('sha256')
      .update(payload).update('\0').update(scope).update('\0').update(ctx.accept).update('\0').update(link ?? '')
      .digest('hex');
    return {
      visibility: found.visibility,
      payload,
      contentType: raw ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
      etag: `W/"${digest}"`,
      lastModified,
      headers: { ...headers, ...(link !== undefined ? { link } : {}) },
    };
  }

  private page(collection: Collection, ctx: Ctx): { items: unknown[]; link: string | undefined } {
    const perPageParam = Number.parseInt(ctx.query.get('per_page') ?? '', 10);
    const perPage = Number.isFinite(perPageParam) && perPageParam > 0 ? Math.min(perPageParam, MAX_PER_PAGE) : collection.perPage;
    const pageParam = Number.parseInt(ctx.query.get('page') ?? '', 10);
    const page = Number.isFinite(pageParam) && pageParam > 0 ? pageParam : 1;
    const last = Math.max(1, Math.ceil(collection.items.length / perPage));
    const items = collection.items.slice((page - 1) * perPage, page * perPage);

    if (last === 1 && page === 1) return { items, link: undefined };
    const pageUrl = (n: number): string => {
      const params = new URLSearchParams(ctx.query);
      params.set('page', String(n));
      return `${this.url}${ctx.path}?${params.toString()}`;
    };
    const parts: string[] = [];
    if (page > 1) parts.push(`<${pageUrl(Math.min(page - 1, last))}>; rel="prev"`);
    if (page < last) parts.push(`<${pageUrl(page + 1)}>; rel="next"`, `<${pageUrl(last)}>; rel="last"`);
    if (page > 1) parts.push(`<${pageUrl(1)}>; rel="first"`);
    return { items, link: parts.join(', ') };
  }

  private notModified(ctx: Ctx, rep: Representation): boolean {
    if (ctx.ifNoneMatch !== undefined) {
      const wanted = ctx.ifNoneMatch.split(',').map((tag) => tag.trim()).filter((tag) => tag !== '');
      const current = opaqueTag(rep.etag);
      return wanted.some((tag) => tag === '*' || opaqueTag(tag) === current);
    }
    if (ctx.ifModifiedSince !== undefined && rep.lastModified !== undefined) {
      const since = Date.parse(ctx.ifModifiedSince);
      const modified = Date.parse(rep.lastModified);
      return !Number.isNaN(since) && !Number.isNaN(modified) && since >= modified;
    }
    return false;
  }

  /** Spend one unit of the caller's window, or answer with the primary rate-limit error and return false. */
  private charge(ctx: Ctx): boolean {
    const bucket = ctx.identity.bucket;
    const now = this.clock();
    this.roll(bucket, now);
    if (bucket.used >= bucket.limit) {
      this.sendError(ctx, bucket.status, this.primaryMessage(ctx.identity), false);
      return false;
    }
    bucket.resetAt ??= now + WINDOW_MS;
    bucket.used += 1;
    this.counters.charged += 1;
    return true;
  }

  /** Answer with an injected fault, if one matches; true when the request is dealt with. */
  private applyFault(ctx: Ctx): boolean {
    const fault = this.faults.find((f) => matchesTarget(f.target, ctx.path, ctx.fullPath));
    if (fault === undefined) return false;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults = this.faults.filter((f) => f !== fault);

    switch (fault.kind) {
      case 'fail':
        this.sendError(ctx, fault.status, FAULT_MESSAGES[fault.status] ?? 'Server Error', false);
        return true;
      case 'secondary':
        this.sendError(ctx, fault.status, SECONDARY_MESSAGE, false, { 'retry-after': String(fault.retryAfterSeconds) });
        return true;
      case 'reset': {
        this.counters.resets += 1;
        this.record(ctx, 0, false);
        const socket = ctx.req.socket;
        // An RST rather than a FIN, so the client sees ECONNRESET rather than a clean close.
        if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
        else socket.destroy();
        return true;
      }
      case 'hang':
        // Left open on purpose; the client's timeout or close() ends it (its socket is tracked).
        this.counters.hangs += 1;
        this.record(ctx, 0, false);
        return true;
    }
  }

  // ---------------------------------------------------------------- answering

  private sendError(ctx: Ctx, status: number, message: string, charged: boolean, headers: Record<string, string> = {}): void {
    const body = JSON.stringify({ message, documentation_url: DOCS, status: String(status) });
    this.send(ctx, status, body, { 'content-type': 'application/json; charset=utf-8', ...headers }, charged);
  }

  /** Write the answer with the headers GitHub puts on every response. HEAD, 204 and 304 carry no body. */
  private send(ctx: Ctx, status: number, body: string | undefined, headers: Record<string, string>, charged: boolean): void {
    if (this.gone(ctx.res)) return;
    const now = this.clock();
    const { bucket, kind } = ctx.identity;
    const reset = Math.ceil((bucket.resetAt ?? now + WINDOW_MS) / 1000);
    this.requestSeq += 1;
    const all: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': kind === 'token' ? 'private, max-age=60, s-maxage=60' : 'public, max-age=60, s-maxage=60',
      vary: 'Accept, Authorization, Accept-Encoding',
      date: new Date(now).toUTCString(),
      'x-github-media-type': 'github.v3; format=json',
      'x-ratelimit-limit': String(bucket.limit),
      'x-ratelimit-remaining': String(Math.max(0, bucket.limit - bucket.used)),
      'x-ratelimit-used': String(bucket.used),
      'x-ratelimit-reset': String(reset),
      'x-ratelimit-resource': 'core',
      'x-github-request-id': `FAKE:${process.pid.toString(16).toUpperCase()}:${this.requestSeq.toString(16).toUpperCase().padStart(6, '0')}`,
      ...headers,
    };
    const withBody = body !== undefined && status !== 204 && status !== 304 && ctx.method !== 'HEAD';
    if (body !== undefined && status !== 204 && status !== 304) all['content-length'] = String(Buffer.byteLength(body));
    this.record(ctx, status, charged);
    ctx.res.writeHead(status, all);
    ctx.res.end(withBody ? body : undefined);
  }

  private record(ctx: Ctx, status: number, charged: boolean): void {
    if (status !== 0) bump(this.counters.byStatus, status);
    const entry: RequestLogEntry = {
      method: ctx.method, path: ctx.fullPath, status, tokenLabel: ctx.identity.label, charged, at: this.clock(),
    };
    if (ctx.ifNoneMatch !== undefined) entry.ifNoneMatch = ctx.ifNoneMatch;
    if (ctx.ifModifiedSince !== undefined) entry.ifModifiedSince = ctx.ifModifiedSince;
    this.log.push(entry);
    if (this.log.length > REQUEST_LOG_LIMIT * 1.1) this.log = this.log.slice(-REQUEST_LOG_LIMIT);
    this.notify();
  }

  /** Never let a bug in the fake crash the test process: answer 500 and carry on. */
  private crashed(res: ServerResponse, error: unknown): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ message: `fake-github: ${error instanceof Error ? error.message : String(error)}` }));
  }

  // ---------------------------------------------------------------- helpers

  private newBucket(label: string, limit: number): Bucket {
    return { label, limit, used: 0, resetAt: undefined, blockedUntil: undefined, status: 403 };
  }

  private bucketOf(token: string | undefined): Bucket {
    if (token === undefined) return this.anonymousBucket;
    const bucket = this.tokenBuckets.get(token);
    if (bucket === undefined) throw new Error('fake-github: unknown token (configure it in options.tokens or addToken)');
    return bucket;
  }

  /** Open a fresh window once the clock passes the reset time. */
  private roll(bucket: Bucket, now: number): void {
    if (bucket.resetAt !== undefined && now >= bucket.resetAt) {
      bucket.used = 0;
      bucket.resetAt = undefined;
      bucket.status = 403;
    }
  }

  private identify(authorization: string | undefined): Identity {
    const value = authorization?.trim() ?? '';
    if (value === '') {
      return { kind: 'anonymous', token: undefined, label: ANONYMOUS, bucket: this.anonymousBucket };
    }
    const match = /^(?:token|bearer)\s+(\S+)$/i.exec(value);
    const token = match?.[1];
    const bucket = token === undefined ? undefined : this.tokenBuckets.get(token);
    if (token === undefined || bucket === undefined) {
      return { kind: 'invalid', token: undefined, label: INVALID, bucket: this.anonymousBucket };
    }
    return { kind: 'token', token, label: bucket.label, bucket };
  }

  private primaryMessage(identity: Identity): string {
    return `API rate limit exceeded for ${identity.label}.`;
  }

  private visible(visibility: Visibility, identity: Identity): boolean {
    if (identity.kind !== 'token' || identity.token === undefined) {
      return visibility.anonymous ?? visibility.visibleTo === undefined;
    }
    return visibility.visibleTo === undefined || visibility.visibleTo.includes(identity.token);
  }

  private key(path: string): string {
    const at = path.indexOf('?');
    return at === -1 ? normalizePath(path) : normalizePath(path.slice(0, at)) + path.slice(at);
  }

  private lookup(fullPath: string, path: string):
    | { kind: 'resource'; key: string; resource: Resource; value: unknown; visibility: Visibility }
    | { kind: 'collection'; key: string; collection: Collection; visibility: Visibility }
    | { kind: 'item'; key: string; collection: Collection; index: number; value: unknown; visibility: Visibility }
    | undefined {
    for (const key of fullPath === path ? [path] : [fullPath, path]) {
      const resource = this.resources.get(key);
      if (resource !== undefined) return { kind: 'resource', key, resource, value: resource.body, visibility: resource };
    }
    const collection = this.collections.get(path);
    if (collection !== undefined) return { kind: 'collection', key: path, collection, visibility: collection };
    const slash = path.lastIndexOf('/');
    const parent = slash > 0 ? this.collections.get(path.slice(0, slash)) : undefined;
    if (parent === undefined) return undefined;
    const id = path.slice(slash + 1);
    const index = parent.items.findIndex((item) => isPlainObject(item) && (String(item['number']) === id || String(item['id']) === id));
    if (index === -1) return undefined;
    return { kind: 'item', key: path, collection: parent, index, value: parent.items[index], visibility: parent };
  }

  private latencyFor(path: string, fullPath: string): number {
    for (let i = this.latencyRules.length - 1; i >= 0; i -= 1) {
      const rule = this.latencyRules[i];
      if (rule !== undefined && matchesTarget(rule.target, path, fullPath)) return rule.ms;
    }
    return this.latencyMs;
  }

  private addFault(kind: Fault['kind'], count: number, target: FaultTarget, status: number, retryAfterSeconds: number): void {
    if (!(count > 0)) return;
    this.faults.push({ kind, remaining: count, target: { path: target.path }, status, retryAfterSeconds });
  }

  /** A delay that close() cuts short (the waiting request then sees the server closing and stops). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.set(timer, resolve);
    });
  }

  private gone(res: ServerResponse): boolean {
    return this.closing !== undefined || res.destroyed || res.writableEnded;
  }

  private notify(): void {
    if (this.waiters.length === 0) return;
    const waiting = this.waiters;
    this.waiters = [];
    for (const waiter of waiting) {
      if (waiter.predicate(this.counters)) waiter.resolve();
      else this.waiters.push(waiter);
    }
  }
}

/** The request body as text; rejects if the client goes away first or sends too much. */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
    req.once('close', () => reject(new Error('request closed before its body ended')));
  });
}

/** Standalone mode: serve a config until SIGTERM/SIGINT or until the parent disconnects. */
async function main(): Promise<void> {
  const source = process.argv[2] !== undefined ? readFileSync(process.argv[2], 'utf8') : process.env['FAKE_GITHUB_CONFIG'] ?? '{}';
  const config = JSON.parse(source) as FakeGitHubConfig;
  const fake = await FakeGitHub.start(config);
  for (const { path, body, ...opts } of config.resources ?? []) fake.setResource(path, body, opts);
  for (const { path, items, ...opts } of config.collections ?? []) fake.setCollection(path, items, opts);
  const stop = (): void => {
    void fake.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.once('disconnect', stop);
  process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);
  process.send?.({ url: fake.url });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`fake-github: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
