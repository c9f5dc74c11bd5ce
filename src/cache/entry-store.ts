import type { CacheEntry } from './entry.js';

/**
 * The persistent tier. Synchronous on purpose: better-sqlite3 answers a point read in microseconds, and a
 * synchronous store cannot interleave with itself. Keys are opaque strings (the cache namespaces them).
 * Implementations never lose an entry they acknowledged, except by eviction or explicit deletion.
 */
export interface EntryStore {
  /** The entry, fresh or expired, or undefined. Marks it recently used. */
  get(key: string): CacheEntry | undefined;
  /** Marks a key recently used without reading it (a hit in a tier above). Cheap: recency is written in batches. */
  touch(key: string): void;
  /** Stores or replaces the entry, then evicts least recently used entries past the bounds. Returns how many were evicted. */
  set(key: string, entry: CacheEntry): number;
  /** Updates freshness after a 304 revalidation without rewriting the body. Returns false if the key is absent. */
  refresh(key: string, storedAt: number, expiresAt: number): boolean;
  /** Removes one entry. Returns whether it existed. */
  delete(key: string): boolean;
  /** Removes every entry whose key starts with `prefix` (any characters, no wildcards). Returns how many. */
  deleteByPrefix(prefix: string): number;
  /** Removes every entry. */
  clear(): void;
  /** Number of entries. */
  count(): number;
  /** Total bytes of stored bodies (each distinct body counted once). */
  bytes(): number;
  /** Closes the file handle. Idempotent. */
  close(): void;
}
