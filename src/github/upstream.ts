import { UpstreamError } from '../errors.js';

/**
 * UpstreamClient: one HTTP exchange with GitHub through Node's own fetch (undici, keep-alive by default),
 * with a timeout and the caller's abort signal. A response of any status is returned; only a failure to get
 * one (reset, refused, DNS, timeout) throws, as UpstreamError with status 0. The token travels in the
 * Authorization header and nowhere else: error messages carry the method and URL only.
 *
 * Outbound proxy: Node's fetch ignores HTTPS_PROXY. When HTTPS_PROXY, HTTP_PROXY (or their lowercase forms)
 * is set when the client is made, requests go through undici's EnvHttpProxyAgent with undici's own fetch (the
 * `undici` package, loaded only then), which also honours NO_PROXY. Without them, Node's fetch is used.
 */
export interface UpstreamResponse {
  status: number;
  /** Lowercase header names. */
  headers: Record<string, string>;
  /** The body as text ('' for a binary body). */
  body: string;
  /** The bytes of a body whose content type is not text (an archive, an asset): never cached. */
  binary?: Uint8Array | undefined;
}

/** Content types read as text (and so cacheable); everything else is kept as bytes. */
export function isTextual(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType === '') return true;
  return /^(text\/|application\/([\w.+-]*\+)?(json|xml)|application\/(javascript|x-www-form-urlencoded))/i.test(contentType);
}

/** Headers that describe the transfer, not the resource: never stored or replayed. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-encoding', 'content-length', 'date', 'server', 'set-cookie']);

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
    body?: string | undefined;
    signal?: AbortSignal | undefined;
  }): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...request.headers };
    if (request.token !== undefined && request.token !== '') headers.authorization = `token ${request.token}`;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = request.signal === undefined ? timeout : AbortSignal.any([request.signal, timeout]);
    let response: Response;
    let body = '';
    let binary: Uint8Array | undefined;
    try {
      const send: FetchLike = this.#proxied === undefined ? fetch : await this.#proxied;
      response = await send(request.url, { method: request.method, headers, body: request.body, signal });
      if (request.method !== 'HEAD') {
        if (isTextual(response.headers.get('content-type') ?? undefined)) body = await response.text();
        else binary = new Uint8Array(await response.arrayBuffer());
      }
    } catch (err) {
      if (request.signal?.aborted === true) throw request.signal.reason ?? err;
      const reason = timeout.aborted ? `no response within ${this.#timeoutMs} ms` : describeNetworkError(err);
      throw new UpstreamError(0, request.method, request.url, reason, { cause: err });
    }
    const out: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name)) out[name] = value;
    });
    return { status: response.status, headers: out, body, binary };
  }
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code !== undefined) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return err instanceof Error ? err.message : String(err);
}

/** GitHub's `message` from an error body, or a short description. */
export function upstreamMessage(response: UpstreamResponse): string {
  try {
    const parsed = JSON.parse(response.body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON
  }
  return response.body.length > 0 ? response.body.slice(0, 200) : `HTTP ${response.status}`;
}
