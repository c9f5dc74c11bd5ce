/**
 * After a write the database holds at most `maxEntries` entries and `maxBytes` bytes of distinct bodies, the
 * least recently used entries evicted first and the entry just written never (one too large to fit is not kept).
 */
import type { Connection } from './connection.js';
import { readStats } from './schema.js';

export interface Bounds {
  /** Most entries kept; a positive integer. */
  readonly maxEntries: number;
  /** Most bytes of distinct bodies (UTF-8) kept; a positive integer. */
  readonly maxBytes: number;
}

/**
 * A body larger than `maxBytes` could never fit: storing it would flush the whole cache first. Dropping it (and
 * the version of `key` it replaces, which is no longer current) keeps the bound and never serves outdated data.
 * Returns whether the body was too large (and `key` dropped). Must run inside a write transaction.
 */
export function dropIfNeverFits(c: Connection, key: Buffer, size: number, bounds: Bounds): boolean {
  if (size <= bounds.maxBytes) return false;
  c.deleteKey.run(key);
  return true;
}

/**
 * Evicts least recently used entries, never `kept`, until the database is within `bounds`; returns how many went.
 * Must run inside a write transaction, after pending recency was written so the order is current.
 */
export function evictPastBounds(c: Connection, kept: Buffer, bounds: Bounds): number {
  let evicted = 0;
  // `kept` is never a candidate: it is the most recently used, and since its body fits, evicting every other
  // entry always brings the store within bounds.
  for (;;) {
    const stats = readStats(c);
    if (stats.entries <= bounds.maxEntries && stats.bytes <= bounds.maxBytes) break;
    if (c.evictOldest.run(kept).changes === 0) break;
    evicted++;
  }
  return evicted;
}
