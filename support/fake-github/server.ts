/**
 * The HTTP side of the fake GitHub: a real `node:http` server on 127.0.0.1 (or a given IPv4 address) that routes each request through
 * the same pipeline GitHub's front end applies, in this order: count it, hold it while paused, delay it,
 * apply an injected fault, refuse an unknown token (401), refuse a secondary limit still in force, then
 * serve a read (200, a free 304 when authorized, 404 for what the caller may not see) or a write.
 *
 * Every answer carries the headers GitHub puts on every response (`cache-control`, `vary`, `date`,
 * `x-ratelimit-*`, a request id) and is recorded once. `close()` destroys every socket, including hung and
 * keep-alive ones, and clears every timer, so a test process exits on its own. A bug in the fake answers
 * 500 rather than crashing the process it runs in.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { FAULT_MESSAGES, type FaultPlan } from './faults.js';
import { normalizePath, type ResourceRequest, type ResourceStore } from './resources.js';
import type { ExtraHeaders } from './recorded-headers.js';
import type { RequestCounters, RequestLogEntry } from './stats.js';
import { SECONDARY_MESSAGE, WINDOW_MS, type RateLimits } from './tokens.js';

/** The state a server answers from; owned by the FakeGitHub that starts it. */
export interface ServerParts {
  /** ms since the epoch; rate-limit windows, `x-ratelimit-reset` and `date` follow it. */
  clock: () => number;
  /** Whether an anonymous 304 spends a unit (GitHub: yes; only authorized 304s are free). */
  chargeAnonymousNotModified: boolean;
  rateLimits: RateLimits;
  resources: ResourceStore;
  faults: FaultPlan;
  counters: RequestCounters;
  /** Headers api.github.com sends on every answer beyond the fake's own (FakeGitHubOptions.recordedHeaders). */
  extraHeaders: ExtraHeaders | undefined;
}

/** A request as the pipeline sees it. */
interface Ctx extends ResourceRequest {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
}

const MAX_BODY_BYTES = 10 * 1024 * 1024;
const DOCS = 'https://docs.github.com/rest';

export class FakeGitHubServer {
  /** e.g. `http://127.0.0.1:41234`, no trailing slash. */
  readonly url: string;
  readonly #server: Server;
  readonly #parts: ServerParts;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Map<NodeJS.Timeout, () => void>();
  #requestSeq = 0;
  #closing: Promise<void> | undefined;

  private constructor(server: Server, url: string, parts: ServerParts) {
    this.#server = server;
    this.url = url;
    this.#parts = parts;
  }

  /** Listen on `host` (127.0.0.1 unless given; `port` 0: ephemeral) and resolve once ready. */
  static async listen(port: number, parts: ServerParts, host = '127.0.0.1'): Promise<FakeGitHubServer> {
    const server = createServer({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const front = new FakeGitHubServer(server, `http://${host}:${address.port}`, parts);
    server.on('connection', (socket: Socket) => {
      front.#sockets.add(socket);
      socket.once('close', () => front.#sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      front.#handle(req, res).catch((error: unknown) => crashed(res, error));
    });
    return front;
  }

  /** Stop listening, destroy every connection (keep-alive, hung, paused, delayed) and clear every timer. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const [timer, wake] of this.#timers) {
        clearTimeout(timer);
        wake();
      }
      this.#timers.clear();
      this.#parts.faults.resume();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
      for (const socket of this.#sockets) socket.destroy();
      this.#sockets.clear();
      this.#parts.counters.releaseAll();
    });
    return this.#closing;
  }

  // ---------------------------------------------------------------- the request pipeline

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { counters, faults, rateLimits } = this.#parts;
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const path = normalizePath(url.pathname);
    const fullPath = path + url.search;
    const identity = rateLimits.identify(req.headers.authorization);
    counters.received(fullPath, identity.label);
    res.once('close', () => counters.closed());

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

    for (let held = faults.pausedUntil; held !== undefined && this.#closing === undefined; held = faults.pausedUntil) await held;
    const latency = faults.latencyFor(path, fullPath);
    if (latency > 0) await this.#sleep(latency);
    if (this.#gone(res)) return;

    if (this.#applyFault(ctx)) return;

    if (identity.kind === 'invalid') {
      this.#sendError(ctx, 401, 'Bad credentials', false);
      return;
    }

    const refusal = rateLimits.refusal(identity);
    if (refusal !== undefined) {
      this.#sendError(ctx, refusal.status, refusal.message, false, { 'retry-after': String(refusal.retryAfterSeconds) });
      return;
    }

    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      this.#read(ctx);
      return;
    }
    if (isWrite) {
      let text: string;
      try {
        text = await body;
      } catch {
        return; // the client went away mid-body
      }
      if (this.#gone(res)) return;
      this.#write(ctx, text);
      return;
    }
    if (!this.#charge(ctx)) return;
    this.#sendError(ctx, 404, 'Not Found', true);
  }

  /** GET and HEAD: 200 or a free 304, 404 for what this caller may not see. */
  #read(ctx: Ctx): void {
    const { resources, counters } = this.#parts;
    const rep = resources.represent(ctx, this.url);
    if (rep === undefined) {
      if (!this.#charge(ctx)) return;
      this.#sendError(ctx, 404, 'Not Found', true);
      return;
    }
    const lastModified: Record<string, string> = rep.lastModified ? { 'last-modified': rep.lastModified } : {};
    if (resources.notModified(ctx, rep)) {
      const charged = ctx.identity.kind === 'anonymous' && this.#parts.chargeAnonymousNotModified;
      if (charged && !this.#charge(ctx)) return;
      counters.countNotModified();
      this.#send(ctx, 304, undefined, { etag: rep.etag, ...lastModified, ...rep.headers }, charged);
      return;
    }
    if (!this.#charge(ctx)) return;
    this.#send(ctx, 200, rep.payload, { 'content-type': rep.contentType, etag: rep.etag, ...lastModified, ...rep.headers }, true);
  }

  /** Writes need a token and cost 1 whatever their outcome. */
  #write(ctx: Ctx, text: string): void {
    const { resources, counters } = this.#parts;
    if (ctx.identity.kind === 'anonymous') {
      this.#sendError(ctx, 401, 'Requires authentication', false);
      return;
    }
    if (!this.#charge(ctx)) return;
    counters.countWrite();

    let input: unknown;
    if (text.trim() !== '') {
      try {
        input = JSON.parse(text);
      } catch {
        this.#sendError(ctx, 400, 'Problems parsing JSON', true);
        return;
      }
    }

    const found = resources.lookup(ctx.fullPath, ctx.path);
    if (found !== undefined && !resources.visible(found.visibility, ctx.identity)) {
      this.#sendError(ctx, 404, 'Not Found', true);
      return;
    }
    const outcome = resources.write(ctx.method, ctx.path, found, input, this.#parts.clock());
    if (outcome === undefined) this.#sendError(ctx, 404, 'Not Found', true);
    else if (outcome.status === 422) this.#sendError(ctx, 422, 'Validation Failed', true);
    else if (outcome.status === 204) this.#send(ctx, 204, undefined, {}, true);
    else this.#send(ctx, outcome.status, JSON.stringify(outcome.value) ?? 'null', { 'content-type': 'application/json; charset=utf-8' }, true);
  }

  /** Spend one unit of the caller's window, or answer with the primary rate-limit error and return false. */
  #charge(ctx: Ctx): boolean {
    const spent = this.#parts.rateLimits.spend(ctx.identity);
    if (spent !== true) {
      this.#sendError(ctx, spent.status, spent.message, false);
      return false;
    }
    this.#parts.counters.countCharge();
    return true;
  }

  /** Answer with an injected fault, if one matches; true when the request is dealt with. */
  #applyFault(ctx: Ctx): boolean {
    const fault = this.#parts.faults.take(ctx.path, ctx.fullPath);
    if (fault === undefined) return false;
    switch (fault.kind) {
      case 'fail':
        this.#sendError(ctx, fault.status, FAULT_MESSAGES[fault.status] ?? 'Server Error', false);
        return true;
      case 'secondary':
        this.#sendError(ctx, fault.status, SECONDARY_MESSAGE, false, { 'retry-after': String(fault.retryAfterSeconds) });
        return true;
      case 'reset': {
        this.#parts.counters.countReset();
        this.#record(ctx, 0, false);
        const socket = ctx.req.socket;
        // An RST rather than a FIN, so the client sees ECONNRESET rather than a clean close.
        if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
        else socket.destroy();
        return true;
      }
      case 'hang':
        // Left open on purpose; the client's timeout or close() ends it (its socket is tracked).
        this.#parts.counters.countHang();
        this.#record(ctx, 0, false);
        return true;
    }
  }

  // ---------------------------------------------------------------- answering

  #sendError(ctx: Ctx, status: number, message: string, charged: boolean, headers: Record<string, string> = {}): void {
    const body = JSON.stringify({ message, documentation_url: DOCS, status: String(status) });
    this.#send(ctx, status, body, { 'content-type': 'application/json; charset=utf-8', ...headers }, charged);
  }

  /** Write the answer with the headers GitHub puts on every response. HEAD, 204 and 304 carry no body. */
  #send(ctx: Ctx, status: number, body: string | undefined, headers: Record<string, string>, charged: boolean): void {
    if (this.#gone(ctx.res)) return;
    const now = this.#parts.clock();
    const { bucket, kind } = ctx.identity;
    const reset = Math.ceil((bucket.resetAt ?? now + WINDOW_MS) / 1000);
    this.#requestSeq += 1;
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
      'x-github-request-id': `FAKE:${process.pid.toString(16).toUpperCase()}:${this.#requestSeq.toString(16).toUpperCase().padStart(6, '0')}`,
      ...this.#parts.extraHeaders?.every,
      ...(kind === 'token' ? this.#parts.extraHeaders?.authorized : undefined),
      ...headers,
    };
    const withBody = body !== undefined && status !== 204 && status !== 304 && ctx.method !== 'HEAD';
    if (body !== undefined && status !== 204 && status !== 304) all['content-length'] = String(Buffer.byteLength(body));
    this.#record(ctx, status, charged);
    ctx.res.writeHead(status, all);
    ctx.res.end(withBody ? body : undefined);
  }

  #record(ctx: Ctx, status: number, charged: boolean): void {
    const entry: RequestLogEntry = {
      method: ctx.method, path: ctx.fullPath, status, tokenLabel: ctx.identity.label, charged, at: this.#parts.clock(),
    };
    if (ctx.ifNoneMatch !== undefined) entry.ifNoneMatch = ctx.ifNoneMatch;
    if (ctx.ifModifiedSince !== undefined) entry.ifModifiedSince = ctx.ifModifiedSince;
    this.#parts.counters.record(entry);
  }

  /** A delay that close() cuts short (the waiting request then sees the server closing and stops). */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.set(timer, resolve);
    });
  }

  #gone(res: ServerResponse): boolean {
    return this.#closing !== undefined || res.destroyed || res.writableEnded;
  }
}

/** Never let a bug in the fake crash the test process: answer 500 and carry on. */
function crashed(res: ServerResponse, error: unknown): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ message: `fake-github: ${error instanceof Error ? error.message : String(error)}` }));
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
