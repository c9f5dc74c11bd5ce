import { ANONYMOUS_SCOPE } from './scope.js';

/**
 * The cache key of a GitHub request: normalized URL (with its sorted query), method, scope id and the Accept
 * media type, space-separated. The URL is percent-encoded so it holds no space; Accept goes last so it may.
 * Two requests share an entry exactly when a cache may answer one with the other's response. The URL comes
 * first so that a write can drop a resource's entries for every token and method by key prefix.
 */
export interface RequestKeyParts {
  readonly scopeId: string;
  readonly method: 'GET' | 'HEAD';
  /** Absolute, normalized URL (see normalizeUrl). */
  readonly url: string;
  /** Normalized Accept media type. */
  readonly accept: string;
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
  return `${parts.url} ${parts.method} ${parts.scopeId} ${parts.accept}`;
}

/** Parses a key made by formatRequestKey; undefined if it is not one (never throws: peers send keys). */
export function parseRequestKey(key: string): RequestKeyParts | undefined {
  const a = key.indexOf(' ');
  const b = a < 0 ? -1 : key.indexOf(' ', a + 1);
  const c = b < 0 ? -1 : key.indexOf(' ', b + 1);
  if (c < 0) return undefined;
  const url = key.slice(0, a);
  const method = key.slice(a + 1, b);
  const scopeId = key.slice(b + 1, c);
  const accept = key.slice(c + 1);
  if (!(scopeId === ANONYMOUS_SCOPE || /^[0-9a-f]{32}$/.test(scopeId))) return undefined;
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  if (accept === '' || accept.length > 512) return undefined;
  let normalized: string;
  try {
    normalized = normalizeUrl(url);
  } catch {
    return undefined;
  }
  if (normalized !== url || !/^https?:$/.test(new URL(url).protocol)) return undefined;
  return { scopeId, method, url, accept };
}
