import { LRUCache } from 'lru-cache';
import type { CacheEntry } from './entry.js';
import type { EntryStore } from './entry-store.js';
import type { Logger } from '../log.js';

/**
 * The local tiers of the cache: a memory LRU (lru-cache) in front of an optional persistent store.
 * Guarantees: a write reaches memory even when the store fails (the failure is counted, never thrown);
 * a read checks memory, then the store, and promotes what the store had; both tiers hold at most
 * `maxEntries` (memory also at most `maxBytes` of bodies), evicting the least recently used, and overwriting a key never evicts another.
 * Keys are opaque strings: two different keys never share an entry.
 */

export type LocalTier = 'memory' | 'disk';

/** What an entry costs in memory besides its body (headers, key, bookkeeping), for the byte bound. */
const ENTRY_OVERHEAD_BYTES = 512;

export interface MemoryItem {
  readonly entry: CacheEntry;
  /** The parsed, frozen body, computed on first use. */
  parsed?: { value: unknown };
}

export interface TieredEntriesCounters {
  evictions: number;
  persistenceErrors: number;
}


export class TieredEntries {
  readonly #memory: LRUCache<string, MemoryItem>;
  #store: EntryStore | undefined;
  readonly #logger: Logger;
  readonly #counters: TieredEntriesCounters;
  #warnedPersistence = false;

  constructor(options: {
    maxEntries: number;
    /** Most bytes of bodies held in memory (each entry counts its body plus a fixed overhead). Default: no byte bound. */
    maxBytes?: number | undefined;
    store?: EntryStore | undefined;
    logger: Logger;
    counters: TieredEntriesCounters;
  }) {
    this.#store = options.store;
    this.#logger = options.logger;
    this.#counters = options.counters;
    this.#memory = new LRUCache<string, MemoryItem>({
      max: options.maxEntries,
      ...(options.maxBytes !== undefined ? { maxSize: options.maxBytes, sizeCalculation: (item: MemoryItem) => item.entry.body.byteLength + ENTRY_OVERHEAD_BYTES } : {}),
      dispose: (_value, _key, reason) => {
        // With a store, leaving memory is not leaving the cache: the store counts its own evictions.
        if (reason === 'evict' && this.#store === undefined) this.#counters.evictions++;
      },
    });
  }

  /** Whether entries are persisted. */
  get persistent(): boolean {
    return this.#store !== undefined;
  }

  /** The entry from memory or the store, with the tier it came from. */
  read(key: string): { entry: CacheEntry; tier: LocalTier; item: MemoryItem } | undefined {
    const item = this.#memory.get(key);
    if (item !== undefined) {
      // The store's LRU follows memory hits (it batches the writes itself); a failing store never fails a hit.
      if (this.#store !== undefined) {
        try {
          this.#store.touch(key);
        } catch (err) {
          this.#persistenceFailed('touch', err);
        }
      }
      return { entry: item.entry, tier: 'memory', item };
    }
    if (this.#store === undefined) return undefined;
    let entry: CacheEntry | undefined;
    try {
      entry = this.#store.get(key);
    } catch (err) {
      this.#persistenceFailed('read', err);
      return undefined;
    }
    if (entry === undefined) return undefined;
    const promoted: MemoryItem = { entry };
    this.#memory.set(key, promoted);
    return { entry, tier: 'disk', item: promoted };
  }

  /** The parsed, deep-frozen JSON body of an item (parsed once per memory item). */
  static parsed(item: { entry: CacheEntry; parsed?: { value: unknown } }, parse: (body: Uint8Array) => unknown): unknown {
    if (item.parsed === undefined) item.parsed = { value: parse(item.entry.body) };
    return item.parsed.value;
  }

  /** Stores in memory and, if persistent, in the store. `parsed` may carry the already-parsed value. */
  write(key: string, entry: CacheEntry, parsed?: { value: unknown }): void {
    const item: MemoryItem = parsed === undefined ? { entry } : { entry, parsed };
    this.#memory.set(key, item);
    if (this.#store !== undefined) {
      try {
        this.#counters.evictions += this.#store.set(key, entry);
      } catch (err) {
        this.#persistenceFailed('write', err);
      }
    }
  }

  /** Marks an entry fresh again after a 304, keeping its body. */
  refresh(key: string, storedAt: number, expiresAt: number): CacheEntry | undefined {
    const found = this.read(key);
    if (found === undefined) return undefined;
    const entry: CacheEntry = { ...found.entry, storedAt, expiresAt };
    this.#memory.set(key, { entry, ...(found.item.parsed !== undefined ? { parsed: found.item.parsed } : {}) });
    if (this.#store !== undefined) {
      try {
        this.#store.refresh(key, storedAt, expiresAt);
      } catch (err) {
        this.#persistenceFailed('write', err);
      }
    }
    return entry;
  }

  delete(key: string): boolean {
    const inMemory = this.#memory.delete(key);
    let onDisk = false;
    if (this.#store !== undefined) {
      try {
        onDisk = this.#store.delete(key);
      } catch (err) {
        this.#persistenceFailed('delete', err);
      }
    }
    return inMemory || onDisk;
  }

  /** Deletes every key starting with prefix from both tiers; returns how many distinct keys went. */
  deleteByPrefix(prefix: string): number {
    const memoryKeys: string[] = [];
    for (const key of this.#memory.keys()) if (key.startsWith(prefix)) memoryKeys.push(key);
    // Memory keys are deleted one by one (in the store too), then the store drops the rest of the prefix:
    // each key is counted once, whichever tiers held it, without reading any entry.
    for (const key of memoryKeys) this.delete(key);
    let onDiskOnly = 0;
    if (this.#store !== undefined) {
      try {
        onDiskOnly = this.#store.deleteByPrefix(prefix);
      } catch (err) {
        this.#persistenceFailed('delete', err);
      }
    }
    return memoryKeys.length + onDiskOnly;
  }

  clear(): void {
    this.#memory.clear();
    if (this.#store !== undefined) {
      try {
        this.#store.clear();
      } catch (err) {
        this.#persistenceFailed('clear', err);
      }
    }
  }

  /** Entries held: the store's count when persistent (it holds every entry), else memory's. */
  size(): number {
    if (this.#store !== undefined) {
      try {
        return Math.max(this.#store.count(), this.#memory.size);
      } catch {
        return this.#memory.size;
      }
    }
    return this.#memory.size;
  }

  get memorySize(): number {
    return this.#memory.size;
  }

  diskBytes(): number | undefined {
    if (this.#store === undefined) return undefined;
    try {
      return this.#store.bytes();
    } catch {
      return undefined;
    }
  }

  /** Closes the store (which writes its pending recency). Idempotent. */
  close(): void {
    const store = this.#store;
    this.#store = undefined;
    try {
      store?.close();
    } catch (err) {
      this.#logger.warn('closing the SQLite store failed:', err);
    }
  }

  #persistenceFailed(operation: string, err: unknown): void {
    this.#counters.persistenceErrors++;
    if (!this.#warnedPersistence) {
      this.#warnedPersistence = true;
      this.#logger.warn(`SQLite ${operation} failed; the memory tier keeps working (further failures are counted in getStats().persistenceErrors):`, err);
    }
  }
}
