import { CacheClosedError, CacheError, CacheValueError, RateLimitError, UpstreamError } from '../errors.js';

/**
 * The one translation between HTTP and the cache, shared by the proxy and the Octokit plugin: one
 * Authorization parser, one hop-by-hop list, one choice of the request headers that reach GitHub, and one
 * mapping of cache errors to HTTP answers. A credential never appears in a message made here.
 */

/** Headers about one hop (RFC 9110 §7.6.1), plus the framing and coding of a body the cache re-frames. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'content-length', 'content-encoding',
]);

/** Request headers never forwarded upstream: this hop's, the credential (sent apart), the target host, and the validators the cache manages. */
const UNFORWARDED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP, 'authorization', 'host', 'if-none-match', 'if-modified-since', 'accept-encoding', 'cookie', 'expect',
]);

/** GitHub's default media type: `*\/*` (curl's default) and the v3 alias get the same answer, so they share its entry. */
const DEFAULT_ACCEPT = 'application/vnd.github+json';

const RATE_LIMIT_DOCS = 'https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api';

/** What an Authorization header carries. */
export type Credential =
  | { readonly kind: 'none' }
  /** A token GitHub accepts as `token X` or `Bearer X`. `jwt` marks a GitHub App's JWT (three dot-separated parts). */
  | { readonly kind: 'token'; readonly token: string; readonly scheme: 'token' | 'bearer'; readonly jwt: boolean }
  /** A scheme the cache does not carry (Basic, …); `problem` says so without echoing the credential. */
  | { readonly kind: 'unsupported'; readonly problem: string };

/** Parses an Authorization header (`token X`, `Bearer X`, or none). */
export function parseAuthorization(header: string | undefined): Credential {
  const value = header?.trim() ?? '';
  if (value === '') return { kind: 'none' };
  const match = /^(token|bearer)\s+(\S+)$/i.exec(value);
  if (match === null) {
    const scheme = /^\S+/.exec(value)?.[0] ?? '';
    const shown = /^[A-Za-z-]{1,20}$/.test(scheme) ? ` (got scheme "${scheme}")` : '';
    return { kind: 'unsupported', problem: `The cache accepts "Authorization: token <token>" or "Authorization: Bearer <token>"${shown}` };
  }
  const token = match[2]!;
  const scheme = match[1]!.toLowerCase() as 'token' | 'bearer';
  return { kind: 'token', token, scheme, jwt: scheme === 'bearer' && token.split('.').length === 3 };
}

/** The request headers to send GitHub, lowercase: everything but UNFORWARDED_REQUEST_HEADERS; a body gets a JSON content type unless it has one. */
export function upstreamRequestHeaders(headers: Readonly<Record<string, string | string[] | undefined>>, hasBody: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (UNFORWARDED_REQUEST_HEADERS.has(lower)) continue;
    const text = sentValue(value);
    if (text !== undefined) out[lower] = text;
  }
  if (out.accept !== undefined) out.accept = sentAccept(out.accept);
  if (hasBody && out['content-type'] === undefined) out['content-type'] = 'application/json; charset=utf-8';
  return out;
}

/**
 * Of upstreamRequestHeaders(headers, false), only the two a cache key reads (`accept`, `x-github-api-version`),
 * for header names already lowercase (as node:http gives them); undefined when a name is not, so the caller
 * takes the general path.
 */
export function keyRequestHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> | undefined {
  for (const name in headers) if (name !== name.toLowerCase()) return undefined;
  const accept = sentValue(headers.accept);
  const version = sentValue(headers['x-github-api-version']);
  const out: Record<string, string> = {};
  if (accept !== undefined) out.accept = sentAccept(accept);
  if (version !== undefined) out['x-github-api-version'] = version;
  return out;
}

/** A header value as sent upstream: repeated values joined, a blank one not sent. */
function sentValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text.trim() === '' ? undefined : text;
}

function sentAccept(accept: string): string {
  return /^\s*(\*\/\*|application\/vnd\.github\.v3\+json)\s*$/i.test(accept) ? DEFAULT_ACCEPT : accept;
}

/** Response headers a client may see: all but the hop-by-hop ones. */
export function forwardableHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!HOP_BY_HOP.has(lower)) out[lower] = value;
  }
  return out;
}

/** An HTTP answer: status, headers (lowercase), the body, and where it came from (`proxy` when the cache made it up). */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Text as GitHub sent it, or the bytes of a binary body. */
  readonly body: string | Buffer;
  readonly source: string;
  /** The URL that answered, after redirects, when known. */
  readonly url?: string | undefined;
}

/** A JSON answer the cache makes itself. */
export function jsonAnswer(status: number, value: unknown, headers: Record<string, string> = {}): HttpAnswer {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers, 'x-cache-source': 'proxy' },
    body: JSON.stringify(value),
    source: 'proxy',
  };
}

/**
 * How a cache error reaches an HTTP client: GitHub's own refusal when it sent one; a rate-limit pause the
 * cache honours as 429 with `retry-after` and `x-ratelimit-reset` (what GitHub's clients and Octokit's
 * throttling read); an unreachable GitHub as 502; a closing cache as 503; a bad request as 400; else 500.
 */
export function errorAnswer(err: unknown, now: number): HttpAnswer {
  if (err instanceof RateLimitError) {
    if (err.response !== undefined) return forwardedError(err.response.status, err.response.headers, err.response.data, err.response.body);
    return jsonAnswer(429, { message: err.message, documentation_url: RATE_LIMIT_DOCS }, {
      'retry-after': String(Math.max(1, Math.ceil((err.resetAt - now) / 1000))),
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': String(Math.ceil(err.resetAt / 1000)),
    });
  }
  if (err instanceof UpstreamError) {
    if (err.status !== 0 && err.response !== undefined) return forwardedError(err.status, err.response.headers, err.response.data, err.response.body);
    if (err.status !== 0) return { ...jsonAnswer(err.status, { message: err.upstreamMessage }), source: 'origin' };
    return jsonAnswer(502, { message: `Upstream GitHub API unreachable: ${err.upstreamMessage}`, error: err.message });
  }
  if (err instanceof CacheValueError) return jsonAnswer(400, { message: err.message });
  if (err instanceof CacheClosedError) return jsonAnswer(503, { message: 'The cache is shutting down; retry shortly' }, { 'retry-after': '1' });
  if (err instanceof CacheError) return jsonAnswer(500, { message: err.message, code: err.code });
  return jsonAnswer(500, { message: `Internal error: ${err instanceof Error ? err.message : String(err)}` });
}

/** Whether an error carries an answer GitHub sent (or a refusal the cache made for GitHub), rather than a failure to get one. */
export function isHttpAnswerError(err: unknown): boolean {
  return err instanceof RateLimitError || (err instanceof UpstreamError && err.status !== 0);
}

/** GitHub's error answer as it sent it: the raw body when the error carries it (never re-serialized), else the data. */
function forwardedError(status: number, headers: Readonly<Record<string, string>>, data: unknown, raw?: string | Uint8Array): HttpAnswer {
  const body = raw !== undefined ? (typeof raw === 'string' ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength))
    : data === undefined ? '' : typeof data === 'string' ? data : Buffer.isBuffer(data) ? data : JSON.stringify(data);
  return { status, headers: { ...forwardableHeaders(headers), 'x-cache-source': 'origin' }, body, source: 'origin' };
}

/**
 * Rewrites, in place, the URLs of `link`, and of `location` on a redirect (`redirect`), that lie under `apiUrl`
 * to lie under `publicUrl` (the proxy's own base URL), so a client that follows them (octokit.paginate, a
 * redirect) stays on the proxy. Other URLs are left as they are. Returns `headers`.
 */
export function rewriteApiUrls(headers: Record<string, string>, apiUrl: string, publicUrl: string, redirect: boolean): Record<string, string> {
  // In place: callers pass headers they own (a fresh answer), and most answers have nothing to rewrite.
  if (headers.link === undefined && (!redirect || headers.location === undefined)) return headers;
  const from = apiUrl.replace(/\/+$/, '');
  const to = publicUrl.replace(/\/+$/, '');
  if (from === to) return headers;
  const under = (url: string) => url === from || url.startsWith(`${from}/`) || url.startsWith(`${from}?`);
  if (headers.link !== undefined) headers.link = headers.link.replace(/<([^>]*)>/g, (whole, url: string) => (under(url) ? `<${to}${url.slice(from.length)}>` : whole));
  // Only a redirect's location is followed through the proxy; a 201's names the created resource, kept as GitHub sent it.
  if (redirect && headers.location !== undefined && under(headers.location)) headers.location = to + headers.location.slice(from.length);
  return headers;
}

/**
 * Whether the client already holds this answer: If-None-Match against its ETag (weak comparison, RFC 9110
 * §13.1.2; `*` matches any), else If-Modified-Since against its Last-Modified.
 */
export function clientHolds(request: { ifNoneMatch?: string | undefined; ifModifiedSince?: string | undefined },
  answer: { etag?: string | undefined; lastModified?: string | undefined }): boolean {
  if (request.ifNoneMatch !== undefined) {
    if (answer.etag === undefined) return false;
    const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
    const want = opaque(answer.etag);
    return request.ifNoneMatch.split(',').some((candidate) => candidate.trim() === '*' || opaque(candidate) === want);
  }
  if (request.ifModifiedSince === undefined || answer.lastModified === undefined) return false;
  const since = Date.parse(request.ifModifiedSince);
  const modified = Date.parse(answer.lastModified);
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since;
}

/** The 304 for an answer the client holds: the same validators and caching headers, no body and no content headers. */
export function notModifiedOf(answer: HttpAnswer): HttpAnswer {
  const headers = { ...answer.headers };
  delete headers['content-type'];
  delete headers['content-length'];
  return { status: 304, headers, body: '', source: answer.source };
}
