import { hash } from 'node:crypto';

/**
 * One stored entry: a key/value pair put with `put`, or a GitHub response. The same shape lives in every
 * tier (memory, SQLite, the wire to a peer), so moving an entry between tiers never changes it.
 */
export interface CacheEntry {
  /** The value as JSON text (key/value API) or the response body as text (GitHub responses). */
  readonly body: string;
  /** sha256 of `body` (UTF-8), lowercase hex. Identical bodies share storage on disk; peers' entries are checked against it. */
  readonly digest: string;
  /** When the entry was stored or last revalidated, ms since the epoch. */
  readonly storedAt: number;
  /** When it stops being fresh, ms since the epoch. Expired entries are kept for revalidation and stale answers. */
  readonly expiresAt: number;
  /** HTTP status of a GitHub response; 200 for key/value entries. */
  readonly status: number;
  /** Response headers kept with a GitHub response (lowercase names); empty for key/value entries. */
  readonly headers: Readonly<Record<string, string>>;
  /** The response's ETag, used for If-None-Match. */
  readonly etag?: string | undefined;
  /** The response's Last-Modified, used for If-Modified-Since. */
  readonly lastModified?: string | undefined;
}

/** Key/value entries (`put`/`get`) live under this prefix in the tiers, GitHub answers under HTTP_PREFIX: they never collide. */
export const KV_PREFIX = 'k:';
export const HTTP_PREFIX = 'h:';

export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

export function isFresh(entry: CacheEntry, now: number): boolean {
  return now < entry.expiresAt;
}
