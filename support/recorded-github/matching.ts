/**
 * How the replay decides which recorded answer a request gets, as GitHub would decide which representation
 * and which state of a resource to serve.
 *
 * Guarantees: a request matches a recorded exchange when the host, the method (HEAD also matches a recorded
 * GET), the path (exactly, except that one trailing slash is optional, as on GitHub's router: `/contents/`
 * and `/contents` list the same directory, and @octokit/endpoint drops the slash the recordings kept; the
 * request log keeps the path as received, for specs that check it) and the query (as GitHub reads it: the same name/value pairs in any order, `+` and
 * `%20` alike) are equal, and, on the API and uploads hosts, the Accept header selects the same
 * representation (`application/vnd.github.v3+json`, `application/vnd.github+json`, `application/json`, `*` and
 * no Accept all select JSON; `…github.v3.raw` and `…github.raw+json` select `raw`, and so on). When the
 * recording holds the same request several times (a GET before and after a write), the one at or after the
 * scenario's current position wins, else the last before it: the world is as it was at that point of the
 * recording. Conditional requests follow RFC 9110 §13: `If-None-Match` (weak comparison, `*` included)
 * decides when present, else `If-Modified-Since` against the recorded `Last-Modified`.
 */
import type { RecordedExchange, RecordedHost } from './scenarios.js';

/** What the replay needs to know of a request to pick an answer. */
export interface ReplayRequest {
  readonly host: RecordedHost;
  readonly method: string;
  /** Path and query as received. */
  readonly url: string;
  /** Lowercase names. */
  readonly headers: Readonly<Record<string, string | undefined>>;
}

/** The outcome of matching: an exchange, or why none. */
export type MatchResult =
  | { readonly kind: 'match'; readonly exchange: RecordedExchange }
  | { readonly kind: 'miss'; readonly status: 404 | 415; readonly reason: string };

/** The representation an Accept header selects ('json', 'raw', 'diff', …, or the media type itself). */
export function representationOf(accept: string | undefined): string {
  const first = (accept ?? '').split(',')[0]!.split(';')[0]!.trim().toLowerCase();
  if (first === '' || first === '*/*' || first === 'application/json') return 'json';
  const vendor = /^application\/vnd\.github(?:\.v3|\.[a-z0-9-]+-preview)?(?:\.([a-z0-9]+))?(?:\+json)?$/.exec(first);
  if (vendor !== null) return vendor[1] ?? 'json';
  return first;
}

/** The query as GitHub reads it: decoded pairs, sorted. */
function queryOf(search: string): string {
  return JSON.stringify([...new URLSearchParams(search).entries()].sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0)));
}

function split(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return { path: path.length > 1 ? path.replace(/\/$/, '') : path, query: queryOf(q < 0 ? '' : url.slice(q + 1)) };
}

/**
 * The exchange that answers `request` among `exchanges` (one scenario's, or all of them in load order).
 * `position` is the scenario's current position (undefined: the earliest matching exchange wins).
 */
export function matchExchange(exchanges: readonly RecordedExchange[], request: ReplayRequest, position: number | undefined): MatchResult {
  const wanted = split(request.url);
  const method = request.method.toUpperCase();
  const samePlace = exchanges.filter((e) => {
    if (e.host !== request.host) return false;
    const recorded = split(e.path);
    return recorded.path === wanted.path && recorded.query === wanted.query;
  });
  const sameMethod = samePlace.filter((e) => e.method === method || (method === 'HEAD' && e.method === 'GET'));
  if (sameMethod.length === 0) {
    return { kind: 'miss', status: 404, reason: samePlace.length === 0 ? `no recording of ${request.url} on ${request.host}` : `no ${method} recorded for ${request.url}` };
  }
  const representation = representationOf(request.headers.accept);
  const candidates = request.host === 'codeload'
    ? sameMethod
    : sameMethod.filter((e) => representationOf(e.requestHeaders.accept) === representation);
  if (candidates.length === 0) {
    return { kind: 'miss', status: 415, reason: `no recording of ${method} ${request.url} for the '${representation}' representation` };
  }
  if (position === undefined) return { kind: 'match', exchange: candidates[0]! };
  const atOrAfter = candidates.find((e) => e.index >= position);
  return { kind: 'match', exchange: atOrAfter ?? candidates[candidates.length - 1]! };
}

/** Entity tags of an `If-None-Match` value, without the weak prefix ('*' kept). */
function tagsOf(value: string): string[] {
  return value.split(',').map((t) => t.trim().replace(/^W\//, '')).filter((t) => t !== '');
}

/** Whether a conditional GET/HEAD for `exchange` is answered 304 Not Modified. */
export function notModified(exchange: RecordedExchange, headers: Readonly<Record<string, string | undefined>>): boolean {
  if (exchange.status !== 200) return false;
  const inm = headers['if-none-match'];
  if (inm !== undefined) {
    const etag = exchange.headers.etag;
    if (etag === undefined) return false;
    const own = etag.replace(/^W\//, '');
    return tagsOf(inm).some((tag) => tag === '*' || tag === own);
  }
  const ims = headers['if-modified-since'];
  const lastModified = exchange.headers['last-modified'];
  if (ims === undefined || lastModified === undefined) return false;
  const since = Date.parse(ims);
  const modified = Date.parse(lastModified);
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since;
}

/** The token of an `Authorization` header (`token X`, `Bearer X`: GitHub accepts both for tokens), or undefined. */
export function tokenOf(authorization: string | undefined): string | undefined {
  const match = /^\s*(?:token|bearer)\s+(\S+)\s*$/i.exec(authorization ?? '');
  return match?.[1];
}
