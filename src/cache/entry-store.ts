import type { CacheEntry } from './entry.js';

/** What a store tells the tier above it about work it did on its own schedule (batched writes commit later). */
export interface EntryStoreEvents {
  /**
   * Entries evicted to stay within the bounds, once the writes that caused it committed. `forBytes` of them were
   * evicted (or, too large to ever fit, not kept) because of `maxBytes` alone: the store held fewer than
   * `maxEntries` entries at the time.
   */
  evicted(keys: readonly string[], forBytes: number): void;
  /** Acknowledged writes that could not be committed (a full disk, a lock held too long): the store does not have them. */
  writeFailed(keys: readonly string[], error: unknown): void;
}

/** How the caller vouches for an entry it hands to `set`. */
export interface SetOptions {
  /**
   * The caller computed `entry.digest` from `entry.body` itself, in this process (or checked a peer's digest
   * against the body it received), so the store need not hash the body again. Without it the store hashes the
   * body and refuses a wrong digest.
   */
  readonly digestVerified?: boolean;
}

/**
 * The persistent tier. Synchronous on purpose: better-sqlite3 answers a point read in microseconds, and a
 * synchronous store cannot interleave with itself. Keys are opaque strings (the cache namespaces them).
 * Implementations never lose an entry they acknowledged, except by eviction, explicit deletion, or the
 * durability window they document (a write may be committed a moment after `set` returns).
 */
export interface EntryStore {
  /** The entry, fresh or expired, or undefined; an entry whose write is still pending is found too. Marks it recently used. */
  get(key: string): CacheEntry | undefined;
  /** Marks a key recently used without reading it (a hit in a tier above). Cheap: recency is written in batches. */
  touch(key: string): void;
  /**
   * Stores or replaces the entry, then evicts least recently used entries past the bounds. Returns how many
   * entries this call evicted (a store that commits later returns 0 and tells `listen`'s `evicted` instead).
   */
  set(key: string, entry: CacheEntry, options?: SetOptions): number;
  /** Updates freshness after a 304 revalidation without rewriting the body. Returns false if the key is absent. */
  refresh(key: string, storedAt: number, expiresAt: number): boolean;
  /** Removes one entry. Returns whether it existed. */
  delete(key: string): boolean;
  /**
   * Removes these entries at once (one transaction for a database). Returns the keys that existed. Optional: the
   * tiers delete key by key without it.
   */
  deleteKeys?(keys: Iterable<string>): string[];
  /** Removes every entry whose key starts with `prefix` (any characters, no wildcards). Returns how many. */
  deleteByPrefix(prefix: string): number;
  /** Every key starting with `prefix`, pending writes included (a scoped invalidation picks among them). */
  keysWithPrefix(prefix: string): string[];
  /** Removes every entry. */
  clear(): void;
  /** Number of entries, pending writes included. */
  count(): number;
  /** Total bytes of stored bodies (each distinct body counted once), pending writes included. */
  bytes(): number;
  /** Commits pending writes now (a store that commits at once has none). */
  flush?(): void;
  /** Subscribes the tier above to evictions and failed background writes (one listener). */
  listen?(events: EntryStoreEvents): void;
  /** Commits what is pending, then closes the file handle. Idempotent. */
  close(): void;
}
