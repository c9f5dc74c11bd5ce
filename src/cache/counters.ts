import type { FleetStats, ScopeRateLimit } from './ports.js';

/**
 * CacheCounters: every counter of one cache instance, moved only here. Each answer is counted once, by where
 * it came from (`answered`); `apiCallsSaved` grows exactly when an answer cost GitHub nothing — a fresh hit,
 * a peer's entry, a joined flight, a stale fallback, a 304, or an entry served to a peer from memory.
 */

/** Where an answer came from. */
export type ResponseSource = 'memory' | 'disk' | 'peer' | 'origin' | 'revalidated' | 'coalesced' | 'stale';

/** Counters and gauges of one cache instance. */
export interface CacheStats {
  /** Reads answered with a fresh entry (memory, disk or peer). */
  hits: number;
  /** Reads that found no fresh entry. */
  misses: number;
  /** Reads answered by a peer. */
  peerHits: number;
  /** Reads that found an entry past its TTL (kept for revalidation and stale answers). */
  expirations: number;
  /** Entries evicted to stay within maxEntries / maxBytes. */
  evictions: number;
  /** Of `evictions`, those forced by maxBytes while fewer than maxEntries entries were held (raise maxBytes to keep them). */
  evictedForBytes: number;
  /** Requests sent to GitHub. */
  apiCallsMade: number;
  /** GitHub calls avoided: fresh hits, peer hits, coalesced callers, stale answers, and 304s (free of rate limit). */
  apiCallsSaved: number;
  /** Entries held. */
  size: number;
  /** hits / (hits + misses), 0 when nothing was read. */
  hitRate: number;
  /** Values served past their TTL with getStale or as stale answers. */
  staleServed: number;
  /** Failed SQLite reads or writes (the memory tier kept working). */
  persistenceErrors: number;
  /** 'sqlite' or 'memory'. */
  persistence: 'sqlite' | 'memory';
  /** Bytes of bodies on disk, when persistent. */
  diskBytes?: number | undefined;
  /** Callers that joined another caller's upstream request for the same key. */
  coalesced: number;
  /** Conditional requests GitHub answered 304 Not Modified (free of rate limit). */
  notModified: number;
  /** Requests refused because the scope was rate-limited (by GitHub, or by the cache honouring GitHub). */
  rateLimited: number;
  /** Upstream 5xx, resets and timeouts. */
  upstreamErrors: number;
  /** Entries dropped because their token lost access or the resource is gone (401/403/404/410 on revalidation). */
  purged: number;
  /** Entries dropped by writes (POST, PATCH, PUT, DELETE) to their resource or collection. */
  invalidations: number;
  /** Writes passed through to GitHub. */
  writes: number;
  /** What GitHub last said per token scope (keys are one-way scope ids, never tokens). */
  rateLimits: Record<string, ScopeRateLimit>;
  /** The P2P host: peer id, listen addresses, peers and counters; absent when P2P is disabled. */
  p2p?: FleetStats | undefined;
}

/** The counted fields of CacheStats (gauges are read from the tiers, the origin and the fleet). */
export type CounterName = 'hits' | 'misses' | 'peerHits' | 'expirations' | 'evictions' | 'evictedForBytes' | 'apiCallsMade' | 'apiCallsSaved'
  | 'staleServed' | 'persistenceErrors' | 'coalesced' | 'notModified' | 'rateLimited' | 'upstreamErrors' | 'purged'
  | 'invalidations' | 'writes';

export class CacheCounters {
  hits = 0;
  misses = 0;
  peerHits = 0;
  expirations = 0;
  evictions = 0;
  evictedForBytes = 0;
  apiCallsMade = 0;
  apiCallsSaved = 0;
  staleServed = 0;
  persistenceErrors = 0;
  coalesced = 0;
  notModified = 0;
  rateLimited = 0;
  upstreamErrors = 0;
  purged = 0;
  invalidations = 0;
  writes = 0;

  /** Counts one answer by its source; the one place apiCallsSaved grows for HTTP answers. */
  answered(source: ResponseSource | 'owner'): void {
    switch (source) {
      case 'memory':
      case 'disk':
        this.hits++;
        break;
      case 'peer':
        this.peerHits++;
        break;
      case 'coalesced':
        this.coalesced++;
        break;
      case 'stale':
        this.staleServed++;
        break;
      case 'revalidated':
        this.notModified++;
        break;
      case 'owner': // an entry this node held, served to a peer
        break;
      case 'origin':
        return; // paid for: nothing saved
    }
    this.apiCallsSaved++;
  }

  /** A read that found no fresh entry; `expired` when it found one past its TTL. */
  missed(expired: boolean): void {
    this.misses++;
    if (expired) this.expirations++;
  }

  readonly #settlers: Array<() => void> = [];

  /** Work to do before every snapshot: the SQLite tier commits its pending writes, so the evictions they cause are counted. */
  beforeSnapshot(settle: () => void): void {
    this.#settlers.push(settle);
  }

  snapshot(): Record<CounterName, number> {
    for (const settle of this.#settlers) settle();
    const { hits, misses, peerHits, expirations, evictions, evictedForBytes, apiCallsMade, apiCallsSaved, staleServed,
      persistenceErrors, coalesced, notModified, rateLimited, upstreamErrors, purged, invalidations, writes } = this;
    return { hits, misses, peerHits, expirations, evictions, evictedForBytes, apiCallsMade, apiCallsSaved, staleServed,
      persistenceErrors, coalesced, notModified, rateLimited, upstreamErrors, purged, invalidations, writes };
  }
}
