/**
 * After a write the database holds at most `maxEntries` entries and `maxBytes` bytes of distinct bodies, the
 * least recently used entries evicted first and the entry just written never (one too large to fit is not kept).
 * Reads not yet written to `last_used` still count: a candidate with a pending read is stamped, not evicted.
 * A pass that has to evict goes a little below the bounds (see `headroom`), so a full cache evicts once per
 * batch of writes, not once per write; the bounds themselves hold exactly after every write.
 */
import type { Connection } from './connection.js';
import { readStats, type StatsRow } from './schema.js';

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
 * The headroom of a pass (below) stamps at most this many in all, and stops there rather than evict a read entry.
 */
const MAX_STAMPED_PER_EVICTION = 32;

/**
 * Most entries a pass evicts beyond what the bounds require. Evicting one entry costs a transaction's worth of
 * work on its row, three indexes, its body and the counters; a full cache taking one miss per turn paid it, and
 * a statement round, on every miss (bench/store.ts: 3.25x undici's unbounded store). In a batch of 64 a victim
 * costs about a fifth of a lone one (about 35 µs against 160 on the bench machine), and a batch takes about
 * 2 ms, well below the 10 ms stall budget. (One DELETE ... WHERE rowid IN (...) for the batch measured no
 * cheaper than its rows deleted one by one with a prepared statement, so the rows go one by one.)
 */
export const EVICTION_BATCH = 64;

/**
 * The hysteresis of a pass that has to evict: once within the bounds it goes on, down to
 * `maxEntries - headroom` entries (when maxEntries was crossed) and `maxBytes - floor(maxBytes / 1000)` bytes
 * (when maxBytes was), evicting at most `headroom` entries more than the bounds require, where
 * headroom = min(EVICTION_BATCH, floor(maxEntries / 1000)). A full cache so keeps at least 99.9% of maxEntries
 * (64 fewer at most) and evicts about once per `headroom` misses; a small cache (maxEntries under 1000) evicts
 * exactly what the bounds require.
 */
export function headroom(bounds: Bounds): number {
  return Math.min(EVICTION_BATCH, Math.floor(bounds.maxEntries / 1000));
}

/**
 * Evicts least recently used entries, never `kept`, until the database is within `bounds`, then down to the
 * low-water marks (see `headroom`), adding them to `into`. `pendingRead(key)` takes the time of a read of `key`
 * not yet written to `last_used` (or undefined): such a candidate gets its stamp and the search goes on (up to
 * MAX_STAMPED_PER_EVICTION per victim), so only the reads that matter are written before evicting. Must run
 * inside a write transaction.
 */
export function evictPastBounds(
  c: Connection,
  kept: Buffer,
  bounds: Bounds,
  pendingRead: (key: Buffer) => number | undefined,
  into: Evicted,
): void {
  let stats = readStats(c);
  // The common case, even in a full cache: one row read, nothing to evict.
  if (stats.entries <= bounds.maxEntries && stats.bytes <= bounds.maxBytes) return;
  const extra = headroom(bounds);
  // Only a bound that was crossed gets its low-water mark.
  const lowEntries = stats.entries > bounds.maxEntries ? bounds.maxEntries - extra : stats.entries;
  const lowBytes = stats.bytes > bounds.maxBytes && extra > 0 ? bounds.maxBytes - Math.floor(bounds.maxBytes / 1000) : bounds.maxBytes;
  // Victims for maxEntries (down to its low-water mark); every later one is for maxBytes alone.
  let forEntries = Math.max(0, stats.entries - lowEntries);
  // Victims taken once within the bounds (at most `extra`), and the stamps that cost.
  let beyond = 0;
  let headroomStamps = 0;
  let stamped = 0;
  // `kept` is never a candidate: it is the most recently used, and since its body fits, evicting every other
  // entry always brings the store within bounds.
  for (;;) {
    const within = stats.entries <= bounds.maxEntries && stats.bytes <= bounds.maxBytes;
    if (within && (beyond >= extra || headroomStamps >= MAX_STAMPED_PER_EVICTION)) return;
    // What the bounds require first (a round never stamps for the headroom's sake), then the headroom.
    const want = within
      ? victimsWanted(stats, lowEntries, lowBytes, extra - beyond)
      : victimsWanted(stats, Math.min(stats.entries, bounds.maxEntries), bounds.maxBytes, EVICTION_BATCH);
    if (want === 0) return;
    const candidates = c.selectOldest.all(kept, want);
    // None left but `kept`.
    if (candidates.length === 0) return;
    let victims = 0;
    for (const oldest of candidates) {
      const readAt = pendingRead(oldest.key);
      if (readAt !== undefined && (within || stamped < MAX_STAMPED_PER_EVICTION)) {
        // Its stamp moves it out of the oldest; the next round looks past it.
        c.touch.run(readAt, oldest.key, readAt);
        if (!within) stamped++;
        else if (++headroomStamps >= MAX_STAMPED_PER_EVICTION) break;
        continue;
      }
      stamped = 0;
      c.deleteRowid.run(oldest.rowid);
      victims++;
      into.keys.push(oldest.key);
      if (forEntries === 0) into.forBytes++;
      else forEntries--;
    }
    if (within) beyond += victims;
    if (victims > 0) stats = readStats(c);
  }
}

/** How many victims the next round takes: enough for the entry target, and an estimate for the byte target (by the mean body size). */
function victimsWanted(stats: StatsRow, entryTarget: number, byteTarget: number, most: number): number {
  const forEntries = Math.max(0, stats.entries - entryTarget);
  const overBytes = stats.bytes - byteTarget;
  const forBytes = overBytes > 0 ? Math.max(1, Math.ceil(overBytes / Math.max(1, stats.bytes / Math.max(1, stats.entries)))) : 0;
  return Math.min(most, EVICTION_BATCH, Math.max(forEntries, forBytes));
}
