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
  const code = (err as { cause?: { code?: unknown } }).cause?.code;
  return typeof code === 'string' && CLOSED_CODES.has(code);
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code !== undefined) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
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
