import { sha256Hex, viewAsBuffer, type CacheEntry } from './entry.js';
import type { OriginResponse } from './ports.js';
import { sharedHeaderValue } from './header-values.js';

/**
 * HTTP cache policy: which answers may be stored, for how long, and with which headers. Pure functions of a
 * response and the clock: the same response always gives the same entry. Only a 200 without `no-store` is
 * stored; freshness is the caller's TTL, else the response's `max-age`, else the configured default; headers
 * that describe one exchange (rate-limit counters, request ids) are never stored or replayed.
 */

/** Statuses that mean a token lost access or the resource is gone: a held entry must not answer again. */
export const PURGE_STATUSES: ReadonlySet<number> = new Set([401, 403, 404, 410]);

/**
 * Response headers about one exchange, not the resource: a cached answer carries the scope's current
 * rate-limit headers instead. (x-github-request-id is kept: it names the answer the entry came from.)
 */
const UNSTORED_RESPONSE_HEADERS = /^(x-ratelimit-|retry-after$)/;

/** Whether a successful origin answer may be stored: a 200 without `no-store`, of at most `maxEntryBytes`. */
export function isStorable(response: OriginResponse, maxEntryBytes: number): boolean {
  return response.status === 200 && response.body.byteLength <= maxEntryBytes && !/no-store/i.test(response.headers['cache-control'] ?? '');
}

/** Seconds an answer stays fresh: 0 under `no-cache`; else the caller's TTL, else `max-age` (of the response, else of the held entry), else the default. */
export function freshnessSeconds(explicit: number | undefined, headers: Readonly<Record<string, string>>, defaultTtl: number,
  fallbackHeaders?: Readonly<Record<string, string>>): number {
  const cc = headers['cache-control'] ?? fallbackHeaders?.['cache-control'] ?? '';
  // `no-cache` (GitHub sends it on search answers): stored, but revalidated before every reuse (RFC 9111 §5.2.2.4).
  if (/(?:^|,)\s*no-cache\s*(?:,|$)/i.test(cc)) return 0;
  if (explicit !== undefined) return explicit;
  const match = /(?:^|,)\s*max-age=(\d+)/i.exec(cc);
  return match ? Number(match[1]) : defaultTtl;
}

/**
 * Header names by length, then as strings: the order a CBOR map's keys take on the fleet's wire (canonical CBOR,
 * for the lowercase ASCII names HTTP has). HTTP gives no meaning to the order of different names.
 */
function wireOrder(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The entry of a text answer, fresh from `now`. Its headers are stored in wire order: an owner sends an entry
 * once per asker, and with GitHub's 20-odd headers in the order it sends them, each answer sorted them again.
 */
export function entryOf(response: OriginResponse, now: number, ttlSeconds: number): CacheEntry {
  const headers: Record<string, string> = {};
  const names = Object.keys(response.headers).filter((name) => !UNSTORED_RESPONSE_HEADERS.test(name)).sort(wireOrder);
  // Values GitHub repeats on every answer are one string for all the entries that hold them (header-values.ts).
  for (const name of names) headers[name] = sharedHeaderValue(name, response.headers[name]!);
  return {
    body: response.body,
    digest: sha256Hex(response.body),
    storedAt: now,
    expiresAt: now + ttlSeconds * 1000,
    status: response.status,
    headers,
    etag: response.headers.etag,
    lastModified: response.headers['last-modified'],
  };
}

/**
 * The `data` of a body, as Octokit builds it: parsed JSON for a JSON media type (or none; the text when it does
 * not parse); text for `text/*`, a declared charset, or another textual type, decoded by the declared charset
 * (UTF-8 when none); a Buffer of the bytes otherwise. Empty is undefined. The bytes themselves never change.
 */
export function parseBody(body: Uint8Array, contentType: string | undefined): unknown {
  if (body.byteLength === 0) return undefined;
  const type = contentType ?? '';
  if (type === '' || /[/+]json\b/i.test(type)) {
    const text = decodeText(body, type);
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  if (/^text\/|;\s*charset=|^application\/(javascript|xml|x-www-form-urlencoded)|\+xml\b/i.test(type)) return decodeText(body, type);
  return viewAsBuffer(body);
}

/** Decodes bytes by the content type's charset (UTF-8 when none or unknown); invalid sequences become U+FFFD in the text only. */
export function decodeText(body: Uint8Array, contentType: string | undefined): string {
  const charset = /;\s*charset="?([^";\s]+)"?/i.exec(contentType ?? '')?.[1]?.toLowerCase() ?? 'utf-8';
  if (charset === 'utf-8' || charset === 'utf8') return viewAsBuffer(body).toString('utf8');
  try {
    return new TextDecoder(charset).decode(body);
  } catch {
    return viewAsBuffer(body).toString('utf8');
  }
}
