/**
 * After a write the database holds at most `maxEntries` entries and `maxBytes` bytes of distinct bodies, the
 * least recently used entries evicted first and the entry just written never (one too large to fit is not kept).
 * Reads not yet written to `last_used` still count: a candidate with a pending read is stamped, not evicted.
 */
import type { Connection } from './connection.js';
import { readStats } from './schema.js';

export interface Bounds {
  /** Most entries kept; a positive integer. */
  readonly maxEntries: number;
  /** Most bytes of distinct bodies kept; a positive integer. */
  readonly maxBytes: number;
}

/** What one eviction pass removed. */
export interface Evicted {
  /** The evicted keys, as stored (UTF-16LE code units). */
  readonly keys: Buffer[];
  /** How many of them went while the entry count was within maxEntries: evicted for maxBytes alone. */
  forBytes: number;
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
 * Most candidates one eviction stamps with their pending read before it evicts the oldest regardless: after a
 * flood of reads (100k hits) nearly every candidate has one, and stamping them all would stall the event loop.
 * Past this many the victim is the least recently used of the oldest rows as written, not of every read.
 */
const MAX_STAMPED_PER_EVICTION = 32;

/**
 * Evicts least recently used entries, never `kept`, until the database is within `bounds`, adding them to `into`.
 * `pendingRead(key)` takes the time of a read of `key` not yet written to `last_used` (or undefined): such a
 * candidate gets its stamp and the search goes on (up to MAX_STAMPED_PER_EVICTION), so only the reads that
 * matter are written before evicting. Must run inside a write transaction.
 */
export function evictPastBounds(
  c: Connection,
  kept: Buffer,
  bounds: Bounds,
  pendingRead: (key: Buffer) => number | undefined,
  into: Evicted,
): void {
  // `kept` is never a candidate: it is the most recently used, and since its body fits, evicting every other
  // entry always brings the store within bounds.
  let stamped = 0;
  for (;;) {
    const stats = readStats(c);
    if (stats.entries <= bounds.maxEntries && stats.bytes <= bounds.maxBytes) return;
    const oldest = c.selectOldest.get(kept);
    if (oldest === undefined) return;
    const readAt = pendingRead(oldest.key);
    if (readAt !== undefined && stamped < MAX_STAMPED_PER_EVICTION) {
      c.touch.run(readAt, oldest.key, readAt);
      stamped++;
      continue;
    }
    stamped = 0;
    c.deleteRowid.run(oldest.rowid);
    into.keys.push(oldest.key);
    if (stats.entries <= bounds.maxEntries) into.forBytes++;
  }
}
