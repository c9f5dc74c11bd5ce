import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { CacheStats, GitHubAPICache } from '../github-api-cache.js';
import { InFlight } from '../in-flight.js';
import { CacheClosedError, CacheConfigError, CacheError, CacheValueError, UpstreamError } from '../errors.js';
import { errorAnswer, isHttpAnswerError, jsonAnswer, parseAuthorization, type HttpAnswer } from '../http/translation.js';
import { createLogger, type Logger } from '../log.js';
import { BodyBudget, BodyBudgetError, BodyTooLargeError, pathOnly, plainUpstreamUrl, publicUrlOf, readBody, upstreamUrl } from './client-request.js';
import { p2pStatsOf } from './p2p-stats.js';
import { ProxyListenError, type ProxyCounters, type ProxyOptions, type ProxyServer } from './proxy-api.js';
import { ProxyMetrics } from './proxy-metrics.js';

/**
 * The caching proxy: an HTTP server that answers GitHub REST calls through one GitHubAPICache, so a client in
 * any language shares the process's cache (and its P2P fleet): `curl -H "Authorization: token …"
 * http://127.0.0.1:8787/repos/o/r`, or Octokit with `baseUrl: 'http://127.0.0.1:8787'`.
 *
 * Every path but `/healthz`, `/metrics` and `/_cache/stats` is a GitHub call: the method, path and query go
 * to `cache.request` against the cache's `githubApiUrl`, the client's `Authorization` token selects the cache
 * scope (and is never logged or stored), and the answer carries GitHub's status, headers and exact body plus
 * `X-Cache-Source`. The proxy knows nothing of the singleton provider: the caller hands it a cache (or a getter).
 * A GET that a fresh memory entry answers takes a synchronous hot path (`#answerHit`: the answer the cache keeps
 * ready for the wire, written at once); everything else, misses included, takes the general path (`#route`).
 *
 * Size: one unit: the hot path and the general path share the request accounting (in flight, counters,
 * metrics) and the answer writer, and must be read side by side to see they answer alike.
 *
 * @example
 * ```ts
 * const cache = await GitHubAPICache.create();
 * const proxy = await startProxy({ cache, port: 0 });
 * console.log(proxy.url); // http://127.0.0.1:41234
 * await proxy.close();
 * await cache.close();
 * ```
 */

export { ProxyListenError, type ProxyCounters, type ProxyOptions, type ProxyServer } from './proxy-api.js';

const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_PORT = 8787;
const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
const DEFAULT_MAX_BUFFERED_BODY_BYTES = 64 * 1024 * 1024;
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/**
 * GitHub's REST methods; anything else is refused before it reaches the cache (OPTIONS too: the cache would
 * treat it as a write and drop the resource's entries, for a CORS preflight no API client sends here).
 */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE']);
/** During an outage every request fails alike: warn about it at most this often. */
const UNREACHABLE_WARNING_INTERVAL_MS = 10_000;
const RESERVED_PATHS = new Set(['/healthz', '/metrics', '/_cache/stats']);

/** A response the proxy is about to write. */
type Answer = HttpAnswer;


/** Starts the proxy and resolves once it listens. Rejects with ProxyListenError when it cannot. */
export async function startProxy(options: ProxyOptions): Promise<ProxyServer> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new CacheConfigError('port', `expected an integer from 0 to 65535, got ${String(port)}`);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 0) throw new CacheConfigError('maxBodyBytes', `expected a non-negative integer, got ${String(maxBodyBytes)}`);
  const maxBufferedBodyBytes = options.maxBufferedBodyBytes ?? DEFAULT_MAX_BUFFERED_BODY_BYTES;
  if (!Number.isInteger(maxBufferedBodyBytes) || maxBufferedBodyBytes < 0) {
    throw new CacheConfigError('maxBufferedBodyBytes', `expected a non-negative integer, got ${String(maxBufferedBodyBytes)}`);
  }
  if (options.cache === undefined || options.cache === null) throw new CacheConfigError('cache', 'a GitHubAPICache or a function returning one is required');
  const proxy = new CachingProxy({
    getCache: typeof options.cache === 'function' ? options.cache : ((cache) => () => cache)(options.cache),
    maxBodyBytes,
    maxBufferedBodyBytes,
    closeTimeoutMs: options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS,
    logger: createLogger('proxy', options.logSink),
    metrics: new ProxyMetrics({ processMetrics: options.processMetrics ?? true }),
  });
  await proxy.listen(host, port);
  return proxy;
}

class CachingProxy implements ProxyServer {
  readonly metrics: ProxyMetrics;
  readonly #server: Server;
  readonly #getCache: () => GitHubAPICache | Promise<GitHubAPICache>;
  readonly #maxBodyBytes: number;
  readonly #bodies: BodyBudget;
  readonly #closeTimeoutMs: number;
  readonly #log: Logger;
  readonly #counters: ProxyCounters = { requests: 0, inFlight: 0, bySource: {}, byStatus: {}, notModified: 0, upstreamUnreachable: 0, aborted: 0, bodiesRefused: 0 };
  readonly #sockets = new Set<Socket>();
  readonly #startedAt = performance.now();
  /** General-path responses not yet finished (close waits for them, bounded); hot-path answers are whole at once. */
  readonly #active = new InFlight();
  #closing: Promise<void> | undefined;
  #host = DEFAULT_HOST;
  #port = 0;
  #unreachableWarnedAt = Number.NEGATIVE_INFINITY;
  #unreachableSuppressed = 0;

  constructor(init: {
    getCache: () => GitHubAPICache | Promise<GitHubAPICache>;
    maxBodyBytes: number;
    maxBufferedBodyBytes: number;
    closeTimeoutMs: number;
    logger: Logger;
    metrics: ProxyMetrics;
  }) {
    this.#getCache = init.getCache;
    this.#maxBodyBytes = init.maxBodyBytes;
    this.#bodies = new BodyBudget(init.maxBufferedBodyBytes);
    this.#closeTimeoutMs = init.closeTimeoutMs;
    this.#log = init.logger;
    this.metrics = init.metrics;
    // keepAlive: TCP keep-alive probes on accepted sockets; HTTP keep-alive is on by default.
    this.#server = createServer({ keepAlive: true }, (req, res) => this.#onRequest(req, res));
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
  }

  get url(): string {
    const host = this.#host.includes(':') ? `[${this.#host}]` : this.#host;
    return `http://${host}:${this.#port}`;
  }

  get host(): string {
    return this.#host;
  }

  get port(): number {
    return this.#port;
  }

  get counters(): Readonly<ProxyCounters> {
    return this.#counters;
  }

  get closing(): boolean {
    return this.#closing !== undefined;
  }

  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: unknown) => reject(new ProxyListenError(host, port, err));
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    const address = this.#server.address() as AddressInfo;
    this.#host = host;
    this.#port = address.port;
    this.#server.on('error', (err) => this.#log.error('server error:', err));
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    if (!(await this.#active.idle(this.#closeTimeoutMs))) {
      this.#log.warn(`close(): ${this.#active.count} request(s) still in flight after ${this.#closeTimeoutMs} ms; cutting their connections`);
    }
    this.#server.closeAllConnections();
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  // ---------------------------------------------------------------- requests

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    // A hot-path answer is whole (res.end called) before this returns, so it is never in flight: only the
    // general path's answers, which wait for the cache, are what close() waits for. While closing, every request
    // takes the general path (it answers with `connection: close`).
    if (this.#closing === undefined && req.method === 'GET' && this.#answerHit(req, res)) return;
    this.#active.enter();
    res.once('close', () => {
      this.#active.leave();
      // While closing, let the keep-alive socket go now that its last response is out.
      if (this.#active.count === 0 && this.#closing !== undefined) this.#server.closeIdleConnections();
    });
    if (this.#closing !== undefined) res.setHeader('connection', 'close');
    this.#route(req, res).catch((err: unknown) => {
      this.#log.error(`unexpected failure answering ${req.method ?? '?'} ${pathOnly(req.url)}:`, err);
      if (!res.headersSent && !res.destroyed) this.#send(res, req, jsonAnswer(500, { message: 'Internal proxy error' }));
      else res.destroy();
    });
  }

  /**
   * The hot path: a GET a fresh entry in memory answers is written at once, from the answer the cache keeps
   * ready for it (no promise, no abort signal, no copy of its headers). False when the general path must answer
   * (anything else, a miss included, goes through #route as before; nothing was counted or written).
   */
  #answerHit(req: IncomingMessage, res: ServerResponse): boolean {
    // The cache the getter gave last, while it is open (a getter answering with a promise, as the provider's
    // does, would cost a promise per hit); the general path asks the getter again.
    const cache = this.#lastCache;
    if (cache === undefined || cache.closed || res.destroyed) return false;
    const target = req.url ?? '/';
    if (RESERVED_PATHS.has(pathOnly(target))) return false;
    const url = plainUpstreamUrl(cache.options.githubApiUrl, target);
    if (url === undefined) return false;
    const host = req.headers.host;
    if (host !== this.#lastHost) {
      this.#lastHost = host;
      this.#lastPublicUrl = publicUrlOf(req, this.url);
    }
    const started = performance.now();
    const answer = cache.exchangeHit({ method: 'GET', url, headers: req.headers, publicUrl: this.#lastPublicUrl });
    if (answer === undefined) return false;
    req.resume();
    try {
      res.writeHead(answer.status, answer.source === 'memory' ? this.#rawHeadersOf(answer) : answer.headers);
    } catch {
      // A header Node refuses to write: the general sender answers without it (and says so).
      this.#send(res, req, { ...answer, headers: { ...answer.headers } });
      this.#countAnswered(answer, started);
      return true;
    }
    res.end(answer.status === 204 || answer.status === 304 ? undefined : answer.body);
    this.#countAnswered(answer, started);
    return true;
  }

  /** The getter's cache, remembered for #answerHit. */
  async #cacheOf(): Promise<GitHubAPICache> {
    try {
      const cache = await this.#getCache();
      this.#lastCache = cache;
      return cache;
    } catch (err) {
      this.#lastCache = undefined;
      throw err;
    }
  }

  /**
   * A memory answer's headers as the flat [name, value, ...] list writeHead also takes: the same header block
   * (the same names, values and order) without Node walking the object's keys on every hit. Made once per
   * answer: exchangeHit hands out one shared answer per memory entry while it stays the same.
   */
  #rawHeadersOf(answer: Answer): string[] {
    let raw = this.#rawHeaders.get(answer);
    if (raw === undefined) {
      raw = [];
      for (const name of Object.keys(answer.headers)) raw.push(name, answer.headers[name]!);
      this.#rawHeaders.set(answer, raw);
    }
    return raw;
  }

  readonly #rawHeaders = new WeakMap<Answer, string[]>();
  #lastCache: GitHubAPICache | undefined;
  #lastHost: string | undefined;
  #lastPublicUrl = '';

  #countAnswered(answer: Answer, started: number): void {
    this.#counters.requests++;
    bump(this.#counters.bySource, answer.source);
    bump(this.#counters.byStatus, String(answer.status));
    this.metrics.requestAnswered(answer.source, answer.status, (performance.now() - started) / 1000);
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const path = pathOnly(target);
    if (RESERVED_PATHS.has(path) && (req.method === 'GET' || req.method === 'HEAD')) {
      req.resume();
      if (path === '/healthz') this.#send(res, req, await this.#health());
      else if (path === '/metrics') this.#send(res, req, await this.#metricsAnswer());
      else this.#send(res, req, await this.#statsAnswer());
      return;
    }
    await this.#forward(req, res, target);
  }

  async #forward(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
    const started = performance.now();
    this.#counters.requests++;
    this.#counters.inFlight++;
    this.metrics.requestStarted();
    let finished = false;
    const finish = (answer: Answer | undefined) => {
      if (finished) return;
      finished = true;
      this.#counters.inFlight--;
      if (answer === undefined) {
        this.#counters.aborted++;
        this.metrics.requestAbandoned();
        return;
      }
      bump(this.#counters.bySource, answer.source);
      bump(this.#counters.byStatus, String(answer.status));
      this.metrics.requestFinished(answer.source, answer.status, (performance.now() - started) / 1000);
    };
    const aborter = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) {
        aborter.abort(new Error('the client closed the connection'));
        finish(undefined);
      }
    });

    let answer: Answer;
    try {
      answer = await this.#answer(req, target, aborter.signal);
    } catch (err) {
      answer = this.#errorAnswer(err, req.method ?? 'GET', target);
    }
    if (res.destroyed || aborter.signal.aborted) {
      finish(undefined);
      return;
    }
    const sent = answer;
    // A 304 for validators the client sent (GitHub's, or the cache's answer to them: free either way).
    if (answer.status === 304 && (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined)) this.#counters.notModified++;
    this.#send(res, req, sent);
    finish(sent);
  }

  /** What GitHub (through the cache) answers to this request, or the proxy's own error answer. */
  async #answer(req: IncomingMessage, target: string, signal: AbortSignal): Promise<Answer> {
    const method = (req.method ?? 'GET').toUpperCase();
    if (!METHODS.has(method)) {
      req.resume();
      return jsonAnswer(405, { message: `Method ${method} is not a GitHub REST method` }, { allow: [...METHODS].join(', ') });
    }
    const credential = parseAuthorization(req.headers.authorization);
    if (credential.kind === 'unsupported') {
      req.resume();
      return jsonAnswer(401, { message: credential.problem });
    }

    let cache: GitHubAPICache;
    try {
      cache = await this.#cacheOf();
    } catch (err) {
      req.resume();
      return this.#errorAnswer(err, method, target);
    }
    const url = upstreamUrl(cache.options.githubApiUrl, target);
    if (url === undefined) {
      req.resume();
      return jsonAnswer(400, { message: 'The request path must stay under the GitHub API URL (no "..", no other host)' });
    }

    let body: Buffer | undefined;
    let reserved = 0;
    if (method === 'GET' || method === 'HEAD') {
      req.resume();
    } else {
      try {
        ({ body, reserved } = await readBody(req, this.#maxBodyBytes, this.#bodies));
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          return jsonAnswer(413, { message: `The request body is larger than the proxy's limit of ${this.#maxBodyBytes} bytes` }, { connection: 'close' });
        }
        if (err instanceof BodyBudgetError) {
          this.#counters.bodiesRefused++;
          return jsonAnswer(503, { message: 'The proxy holds too many request bodies at once; retry shortly' }, { 'retry-after': '1', connection: 'close' });
        }
        throw err;
      }
    }
    try {
      // Redirects go to the client as GitHub sent them (clients follow them), with URLs pointing back at the proxy.
      return await cache.exchange({ method, url, headers: req.headers, body, signal, redirect: 'manual', publicUrl: publicUrlOf(req, this.url) });
    } catch (err) {
      if (signal.aborted) return jsonAnswer(499, { message: 'client closed request' });
      return this.#errorAnswer(err, method, target, cache.options.now);
    } finally {
      this.#bodies.release(reserved);
    }
  }

  /** How an error from the cache reaches the client (the shared mapping), with the proxy's own logging. */
  #errorAnswer(err: unknown, method: string, target: string, now: () => number = Date.now): Answer {
    if (err instanceof UpstreamError && err.status === 0) {
      this.#counters.upstreamUnreachable++;
      this.#warnUnreachable(`${method} ${pathOnly(target)}: GitHub API unreachable: ${err.upstreamMessage}`);
    } else if (err instanceof CacheError && !(err instanceof CacheValueError) && !(err instanceof CacheClosedError) && !isHttpAnswerError(err)) {
      this.#log.error(`${method} ${pathOnly(target)}:`, err);
    } else if (!(err instanceof CacheError)) {
      this.#log.error(`${method} ${pathOnly(target)}: unexpected error:`, err);
    }
    return errorAnswer(err, now());
  }

  #warnUnreachable(message: string): void {
    const now = performance.now();
    if (now - this.#unreachableWarnedAt < UNREACHABLE_WARNING_INTERVAL_MS) {
      this.#unreachableSuppressed++;
      return;
    }
    const suppressed = this.#unreachableSuppressed;
    this.#unreachableWarnedAt = now;
    this.#unreachableSuppressed = 0;
    this.#log.warn(suppressed === 0 ? message : `${message} (and ${suppressed} more such failures)`);
  }

  // ---------------------------------------------------------------- /healthz, /metrics, /_cache/stats

  /** The cache if it can be had and is open, else undefined. */
  async #openCache(): Promise<GitHubAPICache | undefined> {
    try {
      const cache = await this.#getCache();
      return cache.closed ? undefined : cache;
    } catch {
      return undefined;
    }
  }

  async #statsOf(cache: GitHubAPICache | undefined): Promise<CacheStats | undefined> {
    if (cache === undefined) return undefined;
    try {
      return await cache.getStats();
    } catch {
      return undefined; // closed between the check and the call
    }
  }

  async #health(): Promise<Answer> {
    const cache = await this.#openCache();
    const stats = await this.#statsOf(cache);
    const p2p = p2pStatsOf(stats);
    const ok = stats !== undefined && this.#closing === undefined;
    return jsonAnswer(ok ? 200 : 503, {
      status: ok ? 'ok' : this.#closing !== undefined ? 'closing' : 'unavailable',
      uptime: Math.round((performance.now() - this.#startedAt) / 1000),
      cache: stats === undefined ? 'closed' : 'open',
      p2p: p2p === undefined ? 'disabled' : { connectedPeers: p2p.connectedPeers },
    }, { 'cache-control': 'no-store' });
  }

  async #metricsAnswer(): Promise<Answer> {
    const stats = await this.#statsOf(await this.#openCache());
    const { contentType, body } = await this.metrics.render(stats);
    return { status: 200, headers: { 'content-type': contentType, 'cache-control': 'no-store' }, body, source: 'proxy' };
  }

  async #statsAnswer(): Promise<Answer> {
    const stats = await this.#statsOf(await this.#openCache());
    if (stats === undefined) return jsonAnswer(503, { message: 'The cache is closed' });
    return jsonAnswer(200, { ...stats, proxy: this.#counters }, { 'cache-control': 'no-store' });
  }

  #send(res: ServerResponse, req: IncomingMessage, answer: Answer): void {
    if (res.destroyed) return;
    const bytes = typeof answer.body === 'string' ? Buffer.from(answer.body, 'utf8') : answer.body;
    const headers = answer.headers; // the answer's own object, built for this response: marked in place
    if (answer.status !== 304 && answer.status !== 204 && req.method !== 'HEAD') headers['content-length'] = String(bytes.length);
    if (this.#closing !== undefined) headers['connection'] = 'close';
    try {
      res.writeHead(answer.status, headers);
    } catch (err) {
      // A header value GitHub sent that Node refuses to write (should not happen): answer without it.
      this.#log.warn('dropping unwritable response headers:', err);
      res.writeHead(answer.status, { 'content-type': headers['content-type'] ?? 'application/octet-stream', 'content-length': String(bytes.length) });
    }
    res.end(answer.status === 304 || answer.status === 204 || req.method === 'HEAD' ? undefined : bytes);
  }
}

function bump(record: Record<string, number>, key: string): void {
  record[key] = (record[key] ?? 0) + 1;
}
