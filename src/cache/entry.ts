import { hash } from 'node:crypto';

/**
 * One stored entry: a key/value pair put with `put`, or a GitHub response. The same shape lives in every
 * tier (memory, SQLite, the wire to a peer), so moving an entry between tiers never changes it.
 */
export interface CacheEntry {
  /** The body as bytes, exactly as GitHub sent it (a GitHub response) or the value's JSON in UTF-8 (key/value API). */
  readonly body: Uint8Array;
  /** sha256 of `body`, lowercase hex. Identical bodies share storage on disk; peers' entries are checked against it. */
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

/** sha256 of bytes (or of a string's UTF-8), lowercase hex. */
export function sha256Hex(data: string | Uint8Array): string {
  return typeof data === 'string' ? hash('sha256', data, 'hex') : hash('sha256', viewAsBuffer(data), 'hex');
}

/** The same bytes as a Buffer, without copying. */
export function viewAsBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function isFresh(entry: CacheEntry, now: number): boolean {
  return now < entry.expiresAt;
}
