import { promisify } from 'node:util';
import { brotliDecompress, brotliDecompressSync, gunzip, gunzipSync, inflate, inflateSync } from 'node:zlib';
import { Agent, request as undiciRequest, type Dispatcher } from 'undici';
import { viewAsBuffer } from '../cache/entry.js';
import { UpstreamError } from '../errors.js';
import { HOP_BY_HOP } from '../http/translation.js';

/**
 * UpstreamClient: one HTTP exchange with GitHub through Node's own fetch (undici, keep-alive by default),
 * with a timeout and the caller's abort signal. A response of any status is returned; only a failure to get
 * one (reset, refused, DNS, timeout) throws, as UpstreamError with status 0. The token travels in the
 * Authorization header and nowhere else: error messages carry the method and URL only.
 *
 * A GET or HEAD whose connection closes before any response arrived (UND_ERR_SOCKET, ECONNRESET, EPIPE: a keep-alive
 * connection the server closed as the request went out, a race every client of a server with an idle timeout
 * meets, more often on a busy machine whose timers run late) is sent once more (on the pool's next connection:
 * a new one unless another idle one is kept), as Go's net/http and browsers do for idempotent requests. Nothing else is retried: not a timeout, not an abort, not
 * another method (the server may have acted on it), not a failure after the response began.
 *
 * Reads (GET, HEAD) go through undici's `request` on an Agent of this module, not through fetch: a miss is a
 * read, and fetch's WHATWG machinery (Request, Headers, a ReadableStream per body, an AbortSignal.timeout and
 * an AbortSignal.any per call) was about a third of a miss's CPU (bench/miss.ts). What fetch did for them is
 * done here, the same way: redirects followed (at most 20; the token dropped when one leads to another origin;
 * `response.url` the URL that answered), `accept-encoding: gzip, deflate, br` sent and the body decoded, and the
 * whole exchange bounded by the timeout: connecting by the agent's connect timeout, the response's head by undici's
 * header timer, and its body by one timer per exchange that ends the read at the deadline (undici's body timer
 * alone restarts on every chunk: a body trickling in would outlive the timeout), no signal per call. A body above
 * 64 KiB is decoded on libuv's thread pool, as fetch's streams decode it, so a large answer does not hold the
 * event loop. Writes and proxied requests still use fetch.
 *
 * Outbound proxy: Node's fetch ignores HTTPS_PROXY. When HTTPS_PROXY, HTTP_PROXY (or their lowercase forms)
 * is set when the client is made, requests go through undici's EnvHttpProxyAgent with undici's own fetch (the
 * `undici` package, loaded only then), which also honours NO_PROXY. Without them, Node's fetch is used.
 */
export interface UpstreamResponse {
  status: number;
  /** Lowercase header names. */
  headers: Record<string, string>;
  /** The body, byte for byte as it arrived (after the transfer and content codings are undone). */
  body: Uint8Array;
  /** The URL that answered, after redirects. */
  url?: string | undefined;
}

const EMPTY = new Uint8Array(0);

/** The agents of the read path by timeout (keep-alive, as fetch's global one; connecting bounded by the timeout). */
const readAgents = new Map<number, Agent>();

/** Bodies from this size on are decoded off the event loop. */
const ASYNC_DECODE_BYTES = 64 * 1024;
const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);
const brotliDecompressAsync = promisify(brotliDecompress);

/** Redirects fetch follows at most (its "redirect count" limit). */
const MAX_REDIRECTS = 20;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Headers of one exchange, not of the resource (besides the hop-by-hop ones): never stored or replayed. */
const EXCHANGE_ONLY = new Set(['date', 'server', 'set-cookie']);

/** Whether the environment names an outbound proxy (HTTPS_PROXY, HTTP_PROXY or their lowercase forms). */
export function proxyConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].some((name) => (env[name] ?? '').trim() !== '');
}

type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** undici's fetch bound to an EnvHttpProxyAgent (HTTPS_PROXY, HTTP_PROXY, NO_PROXY); loaded on first use. */
async function proxiedFetch(env: NodeJS.ProcessEnv): Promise<FetchLike> {
  const undici = await import('undici');
  const read = (name: string): string | undefined => {
    const value = (env[name] ?? env[name.toLowerCase()] ?? '').trim();
    return value === '' ? undefined : value;
  };
  const httpProxy = read('HTTP_PROXY');
  const httpsProxy = read('HTTPS_PROXY') ?? httpProxy;
  const noProxy = read('NO_PROXY');
  const dispatcher = new undici.EnvHttpProxyAgent({
    ...(httpProxy !== undefined ? { httpProxy } : {}),
    ...(httpsProxy !== undefined ? { httpsProxy } : {}),
    ...(noProxy !== undefined ? { noProxy } : {}),
  });
  return (url, init) => undici.fetch(url, { ...(init as object), dispatcher } as Parameters<typeof undici.fetch>[1]) as unknown as Promise<Response>;
}

export class UpstreamClient {
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  /** Set when an outbound proxy is configured: undici's fetch through EnvHttpProxyAgent. */
  #proxied: Promise<FetchLike> | undefined;

  constructor(options: { timeoutMs: number; userAgent?: string; env?: NodeJS.ProcessEnv }) {
    this.#timeoutMs = options.timeoutMs;
    this.#userAgent = options.userAgent ?? 'github-p2p-cache';
    const env = options.env ?? process.env;
    if (proxyConfigured(env)) this.#proxied = proxiedFetch(env);
  }

  async send(request: {
    method: string;
    url: string;
    headers: Readonly<Record<string, string>>;
    token?: string | undefined;
    /** How the token is sent: as the caller sent it; default Bearer for a JWT (GitHub accepts Apps' JWTs only so), else token. */
    scheme?: 'token' | 'bearer' | undefined;
    body?: string | Uint8Array | undefined;
    signal?: AbortSignal | undefined;
    /** 'follow' (default) answers with the final response; 'manual' returns a 3xx as it came. */
    redirect?: 'follow' | 'manual' | undefined;
  }): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...request.headers };
    if (request.token !== undefined && request.token !== '') headers.authorization = authorizationOf(request.token, request.scheme);
    if (this.#proxied === undefined && (request.method === 'GET' || request.method === 'HEAD') && request.body === undefined) {
      return this.#read(request, headers);
    }
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = request.signal === undefined ? timeout : AbortSignal.any([request.signal, timeout]);
    let response: Response;
    let body: Uint8Array = EMPTY;
    try {
      const send: FetchLike = this.#proxied === undefined ? fetch : await this.#proxied;
      const init: RequestInit = { method: request.method, headers, body: request.body, signal, redirect: request.redirect ?? 'follow' };
      try {
        response = await send(request.url, init);
      } catch (err) {
        if (!closedBeforeResponse(err, request.method) || signal.aborted) throw err;
        response = await send(request.url, init);
      }
      if (request.method !== 'HEAD') body = new Uint8Array(await response.arrayBuffer());
    } catch (err) {
      if (request.signal?.aborted === true) throw request.signal.reason ?? err;
      const reason = timeout.aborted ? `no response within ${this.#timeoutMs} ms` : describeNetworkError(err);
      throw new UpstreamError(0, request.method, request.url, reason, { cause: err });
    }
    const out: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name) && !EXCHANGE_ONLY.has(name)) out[name] = value;
    });
    return { status: response.status, headers: out, body, url: response.url || request.url };
  }

  /** A GET or HEAD through undici's `request` (see the header): the same answers and errors as the fetch path. */
  async #read(request: { method: string; url: string; signal?: AbortSignal | undefined; redirect?: 'follow' | 'manual' | undefined },
    headers: Record<string, string>): Promise<UpstreamResponse> {
    if (request.signal?.aborted === true) throw request.signal.reason;
    const deadline = performance.now() + this.#timeoutMs;
    headers['accept-encoding'] ??= 'gzip, deflate, br';
    let url = request.url;
    try {
      for (let hops = 0; ; hops++) {
        let response: Dispatcher.ResponseData;
        try {
          response = await this.#exchange(request.method, url, headers, request.signal, deadline);
        } catch (err) {
          if (!closedBeforeResponse(err, request.method) || isAborted(request.signal)) throw err;
          response = await this.#exchange(request.method, url, headers, request.signal, deadline);
        }
        const location = single(response.headers.location);
        if (request.redirect !== 'manual' && REDIRECT_STATUSES.has(response.statusCode) && location !== undefined) {
          await response.body.dump();
          if (hops >= MAX_REDIRECTS) throw new TypeError('redirect count exceeded');
          const next = new URL(location, url);
          if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new TypeError(`URL scheme must be a HTTP(S) scheme: ${next.protocol}`);
          // As fetch: the credential does not follow a redirect to another origin.
          if (next.origin !== new URL(url).origin) delete headers.authorization;
          url = next.href;
          continue;
        }
        const raw = request.method === 'HEAD' ? (await response.body.dump(), EMPTY) : await bodyByDeadline(response.body, deadline);
        const out: Record<string, string> = {};
        for (const name in response.headers) {
          if (HOP_BY_HOP.has(name) || EXCHANGE_ONLY.has(name)) continue;
          const value = response.headers[name];
          if (value !== undefined) out[name] = typeof value === 'string' ? value : value.join(', ');
        }
        const body = raw.byteLength === 0 ? raw : await decoded(raw, single(response.headers['content-encoding']));
        return { status: response.statusCode, headers: out, body, url };
      }
    } catch (err) {
      if (isAborted(request.signal)) throw request.signal!.reason ?? err;
      const code = (err as { code?: unknown }).code;
      const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT'
        || err === PAST_DEADLINE || performance.now() >= deadline;
      const reason = timedOut ? `no response within ${this.#timeoutMs} ms` : describeNetworkError(err);
      throw new UpstreamError(0, request.method, request.url, reason, { cause: err });
    }
  }

  /** One exchange on the read agent, bounded by what is left until `deadline`. */
  #exchange(method: string, url: string, headers: Record<string, string>, signal: AbortSignal | undefined, deadline: number): Promise<Dispatcher.ResponseData> {
    const left = Math.max(1, Math.ceil(deadline - performance.now()));
    let agent = readAgents.get(this.#timeoutMs);
    if (agent === undefined) {
      agent = new Agent({ connect: { timeout: this.#timeoutMs } });
      readAgents.set(this.#timeoutMs, agent);
    }
    return undiciRequest(url, {
      method: method as Dispatcher.HttpMethod, headers, signal, dispatcher: agent, headersTimeout: left, bodyTimeout: left,
    });
  }
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Ends a body read at the exchange's deadline (the error the read path reports as a timeout). */
const PAST_DEADLINE = new Error('the exchange ran past its deadline');

/** The whole body, or PAST_DEADLINE once `deadline` passes while it is still coming in. */
async function bodyByDeadline(body: Dispatcher.ResponseData['body'], deadline: number): Promise<Uint8Array> {
  const timer = setTimeout(() => body.destroy(PAST_DEADLINE), Math.max(1, Math.ceil(deadline - performance.now())));
  try {
    return new Uint8Array(await body.arrayBuffer());
  } finally {
    clearTimeout(timer);
  }
}

/** The body with its content codings undone (last applied, first undone), as fetch does; a large one off the loop. */
async function decoded(body: Uint8Array, encoding: string | undefined): Promise<Uint8Array> {
  if (encoding === undefined || encoding === '' || encoding === 'identity') return body;
  let out: Buffer = viewAsBuffer(body);
  for (const coding of encoding.split(',').map((c) => c.trim().toLowerCase()).reverse()) {
    const small = out.byteLength < ASYNC_DECODE_BYTES;
    if (coding === 'gzip' || coding === 'x-gzip') out = small ? gunzipSync(out) : await gunzipAsync(out);
    else if (coding === 'deflate') out = small ? inflateSync(out) : await inflateAsync(out);
    else if (coding === 'br') out = small ? brotliDecompressSync(out) : await brotliDecompressAsync(out);
    else if (coding !== 'identity') return body;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The Authorization header of a token: the scheme given, else Bearer for a JWT (three dot-separated parts), else token. */
export function authorizationOf(token: string, scheme?: 'token' | 'bearer'): string {
  const bearer = scheme === 'bearer' || (scheme === undefined && token.split('.').length === 3);
  return `${bearer ? 'Bearer' : 'token'} ${token}`;
}

/** Connection closed under an idempotent request before any response: safe to send once more (see the header). */
const CLOSED_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

function closedBeforeResponse(err: unknown, method: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const code = e.cause?.code ?? e.code;
  return typeof code === 'string' && CLOSED_CODES.has(code);
}

function describeNetworkError(err: unknown): string {
  // fetch wraps the system error in `cause`; undici's `request` (the read path) throws it as it is.
  const wrapped = (err as { cause?: { code?: string; message?: string } }).cause;
  const cause = wrapped?.code !== undefined ? wrapped : err as { code?: string; message?: string };
  if (typeof cause.code === 'string') return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return err instanceof Error ? err.message : String(err);
}

/** GitHub's `message` from an error body, or a short description. */
export function upstreamMessage(response: { status: number; body: Uint8Array }): string {
  const text = viewAsBuffer(response.body).toString('utf8');
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON
  }
  return text.length > 0 ? text.slice(0, 200) : `HTTP ${response.status}`;
}
