import { ANONYMOUS_SCOPE } from './scope.js';

/**
 * The cache key of a GitHub request: normalized URL (with its sorted query), method, scope id, API version and
 * the Accept media type, space-separated — every request header GitHub's answers vary on (`Vary: Accept,
 * Authorization, …`, and X-GitHub-Api-Version, which selects the representation): Authorization through the
 * scope, the others as themselves. The URL is percent-encoded so it holds no space; Accept goes last so it
 * may. Two requests share an entry exactly when a cache may answer one with the other's response. The URL
 * comes first so that a write can drop a resource's entries for every token and method by key prefix.
 */
export interface RequestKeyParts {
  readonly scopeId: string;
  readonly method: 'GET' | 'HEAD';
  /** Absolute, normalized URL (see normalizeUrl). */
  readonly url: string;
  /** Normalized Accept media type. */
  readonly accept: string;
  /** The X-GitHub-Api-Version asked for (GitHub's default when absent). */
  readonly apiVersion?: string | undefined;
}

/** The API version field of a key when the request names none. */
const NO_API_VERSION = '-';

/** The X-GitHub-Api-Version of a request as the key holds it: trimmed; undefined when absent or empty. */
export function normalizeApiVersion(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

export const DEFAULT_ACCEPT = 'application/vnd.github+json';

/** Lowercases scheme and host, drops the default port and fragment, sorts the query. */
export function normalizeUrl(input: string | URL): string {
  const url = new URL(input);
  url.hash = '';
  const entries = [...url.searchParams.entries()].sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  url.search = '';
  for (const [k, v] of entries) url.searchParams.append(k, v);
  // URL already lowercases scheme/host and drops default ports.
  return url.href.replace(/ /g, '%20');
}

/** Normalizes an Accept header: trimmed, lowercased, spaces around separators removed; absent → GitHub's default. */
export function normalizeAccept(accept: string | undefined): string {
  if (accept === undefined || accept.trim() === '') return DEFAULT_ACCEPT;
  return accept.trim().toLowerCase().replace(/\s*([,;=])\s*/g, '$1');
}

export function formatRequestKey(parts: RequestKeyParts): string {
  const version = parts.apiVersion === undefined ? NO_API_VERSION : encodeURIComponent(parts.apiVersion);
  return `${parts.url} ${parts.method} ${parts.scopeId} ${version} ${parts.accept}`;
}

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const QUERY_PART = '[A-Za-z0-9*._-]+=[A-Za-z0-9*._-]*';
/**
 * URLs that normalizeUrl provably leaves as they are, recognised without parsing: http(s), a lowercase host name
 * (no punycode, last label starting with a letter) or a dotted-quad IPv4 address in its canonical form, a port
 * without leading zeros, a path of unreserved characters, sub-delimiters (no "'"), ':', '@' and %XX escapes,
 * and a query of name=value pairs of the characters that form encoding keeps as they are. No fragment, no
 * userinfo. Linear: no part of it can match the same text two ways.
 */
const CANONICAL_URL = new RegExp(
  `^(https?)://(?:(?:[a-z0-9-]+\\.)*[a-z][a-z0-9-]*|${OCTET}(?:\\.${OCTET}){3})(?::([1-9][0-9]{0,4}))?` +
  `((?:/(?:[A-Za-z0-9._~!$&()*+,;=:@-]|%[0-9A-Fa-f]{2})*)+)(?:\\?(${QUERY_PART}(?:&${QUERY_PART})*))?$`,
);
/** A dot segment, which URL parsing would resolve. */
const DOT_SEGMENT = /\/\.\.?(?=\/|$)|%2e/i;

/**
 * Whether `url` is certainly a normalized http(s) URL (normalizeUrl(url) === url), decided without parsing it.
 * false means "not known": the caller parses. Never true for a URL that normalizeUrl would change.
 */
export function isKnownNormalUrl(url: string): boolean {
  const match = CANONICAL_URL.exec(url);
  if (match === null || url.includes('xn--')) return false;
  const [, scheme, port, path, query] = match;
  if (port !== undefined && (Number(port) > 65_535 || (scheme === 'http' && port === '80') || (scheme === 'https' && port === '443'))) return false;
  if (DOT_SEGMENT.test(path!)) return false;
  if (query !== undefined) {
    // normalizeUrl sorts the pairs by name, then value: they must already be in that order.
    let previous: [string, string] | undefined;
    for (const pair of query.split('&')) {
      const eq = pair.indexOf('=');
      const current: [string, string] = [pair.slice(0, eq), pair.slice(eq + 1)];
      if (previous !== undefined && (previous[0] > current[0] || (previous[0] === current[0] && previous[1] > current[1]))) return false;
      previous = current;
    }
  }
  return true;
}

/** Parses a key made by formatRequestKey; undefined if it is not one (never throws: peers send keys). */
export function parseRequestKey(key: string): RequestKeyParts | undefined {
  const a = key.indexOf(' ');
  const b = a < 0 ? -1 : key.indexOf(' ', a + 1);
  const c = b < 0 ? -1 : key.indexOf(' ', b + 1);
  const d = c < 0 ? -1 : key.indexOf(' ', c + 1);
  if (d < 0) return undefined;
  const url = key.slice(0, a);
  const method = key.slice(a + 1, b);
  const scopeId = key.slice(b + 1, c);
  const version = key.slice(c + 1, d);
  const accept = key.slice(d + 1);
  if (!(scopeId === ANONYMOUS_SCOPE || /^[0-9a-f]{32}$/.test(scopeId))) return undefined;
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  if (accept === '' || accept.length > 512) return undefined;
  let apiVersion: string | undefined;
  if (version !== NO_API_VERSION) {
    try {
      apiVersion = decodeURIComponent(version);
    } catch {
      return undefined;
    }
    // Only the one spelling formatRequestKey writes: two keys never name the same version.
    if (apiVersion === '' || apiVersion.length > 64 || encodeURIComponent(apiVersion) !== version) return undefined;
  }
  const parts: Omit<RequestKeyParts, 'url'> = apiVersion === undefined ? { scopeId, method, accept } : { scopeId, method, accept, apiVersion };
  if (isKnownNormalUrl(url)) return { ...parts, url };
  let normalized: string;
  try {
    normalized = normalizeUrl(url);
  } catch {
    return undefined;
  }
  if (normalized !== url || !/^https?:$/.test(new URL(url).protocol)) return undefined;
  return { ...parts, url };
}
