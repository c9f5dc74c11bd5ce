import { LRUCache } from 'lru-cache';
import type { CacheEntry } from './entry.js';
import type { EntryStore, EntryStoreEvents } from './entry-store.js';
import type { Logger } from '../log.js';

/**
 * The local tiers of the cache: a memory LRU (lru-cache) in front of an optional persistent store.
 * Guarantees: a write reaches memory even when the store fails (the failure is counted, never thrown);
 * a read checks memory, then the store, and promotes what the store had; overwriting a key never evicts another.
 * Keys are opaque strings: two different keys never share an entry.
 *
 * One budget: `maxEntries` and `maxBytes` bound the cache, not each tier. With a store, the store holds every
 * entry and decides what the cache keeps; memory holds a subset of it (the most recently used, within the same
 * bounds, counting a per-entry overhead), and an entry the store evicts leaves memory too. So `size()` is the
 * number of keys that answer: the store's count, plus the entries only memory has because their write to the
 * store failed. Without a store, memory is the cache.
 *
 * An eviction the store makes for `maxBytes` alone (below `maxEntries`) is counted in `evictedForBytes` and
 * warned about once, naming the option to raise.
 */

export type LocalTier = 'memory' | 'disk';

/** What an entry costs in memory besides its body (headers, key, bookkeeping), for the byte bound. */
const ENTRY_OVERHEAD_BYTES = 512;

export interface MemoryItem {
  readonly entry: CacheEntry;
  /** The parsed, frozen body, computed on first use; kept for the `maxParsedValues` items read most recently. */
  parsed?: { value: unknown } | undefined;
  /** The answer headers last built for this entry (stored headers and the rate limit they were built with), reused while the rate limit is unchanged. */
  answerHeaders?: { version: number; rateLimit: Readonly<Record<string, string>>; template: Readonly<Record<string, string>> };
  /** A front end's own form of the answer (the proxy's, ready for the wire), kept with the rate-limit version it was built at. */
  wire?: { version: number; key: string | undefined; answer: unknown };
}

export interface TieredEntriesCounters {
  evictions: number;
  persistenceErrors: number;
  /** Evictions forced by maxBytes while the store held fewer than maxEntries entries. */
  evictedForBytes?: number;
  /** Registers work to do before the counters are read (commit the store's pending writes, whose evictions count). */
  beforeSnapshot?(settle: () => void): void;
}


export class TieredEntries {
  readonly #memory: LRUCache<string, MemoryItem>;
  #store: EntryStore | undefined;
  readonly #logger: Logger;
  readonly #counters: TieredEntriesCounters;
  #warnedPersistence = false;
  #warnedBytes = false;
  readonly #maxBytes: number | undefined;
  /** Keys memory holds whose write to the store failed: they answer, though the store does not count them. */
  readonly #memoryOnly = new Set<string>();
  /**
   * The key the last read found in neither tier, until this turn's microtasks run or the tiers change: a miss is
   * read twice in one synchronous run (the fresh check, then the load's own look for an entry to revalidate),
   * and the second read would ask SQLite again for what it just said it lacks, and look in memory again (a peer
   * hit's key is new to this node: in the flow of one, a second lookup of a fresh key in a large LRU cost ~1.3 µs).
   */
  #absent: string | undefined;
  readonly #forgetAbsent = (): void => { this.#absent = undefined; };

  constructor(options: {
    maxEntries: number;
    /** Most bytes of bodies held in memory (each entry counts its body plus a fixed overhead). Default: no byte bound. */
    maxBytes?: number | undefined;
    store?: EntryStore | undefined;
    logger: Logger;
    counters: TieredEntriesCounters;
    /** Most memory items that keep their parsed value (the most recently read). Default: no bound. */
    maxParsedValues?: number | undefined;
  }) {
    this.#store = options.store;
    const maxParsed = options.maxParsedValues;
    this.#parsedHolders = maxParsed === undefined ? undefined : maxParsed === 0 ? null : new LRUCache<MemoryItem, true>({
      max: maxParsed,
      // Only the parsed value goes: the item stays in memory with its bytes and is parsed again when read.
      dispose: (_value, item) => { item.parsed = undefined; },
    });
    this.#logger = options.logger;
    this.#counters = options.counters;
    this.#maxBytes = options.maxBytes;
    this.#memory = new LRUCache<string, MemoryItem>({
      max: options.maxEntries,
      ...(options.maxBytes !== undefined ? { maxSize: options.maxBytes, sizeCalculation: (item: MemoryItem) => item.entry.body.byteLength + ENTRY_OVERHEAD_BYTES } : {}),
      dispose: (item, key, reason) => {
        // The item is gone from memory (replaced, evicted or deleted): its parsed value is no longer kept for it.
        this.#parsedHolders?.delete(item);
        // Replaced in memory ('set') it still answers; a write that reaches the store takes it off the list.
        if (reason !== 'set') this.#memoryOnly.delete(key);
        // With a store, leaving memory is not leaving the cache: the store counts its own evictions.
        if (reason === 'evict' && this.#store === undefined) this.#counters.evictions++;
      },
    });
    const store = this.#store;
    if (store?.listen !== undefined) {
      const events: EntryStoreEvents = {
        evicted: (keys, forBytes) => this.#storeEvicted(keys, forBytes),
        writeFailed: (keys, err) => {
          for (const key of keys) {
            this.#persistenceFailed('write', err);
            if (this.#memory.has(key)) this.#memoryOnly.add(key);
          }
        },
      };
      store.listen(events);
      // A snapshot of the counters first commits what is pending, so the evictions it caused are counted.
      this.#counters.beforeSnapshot?.(() => this.#flushStore());
    }
  }

  /** The store evicted these keys: they leave the cache, so memory drops them too. */
  #storeEvicted(keys: readonly string[], forBytes: number): void {
    this.#counters.evictions += keys.length;
    for (const key of keys) this.#memory.delete(key);
    if (forBytes === 0) return;
    this.#counters.evictedForBytes = (this.#counters.evictedForBytes ?? 0) + forBytes;
    if (this.#warnedBytes) return;
    this.#warnedBytes = true;
    this.#logger.warn(
      `the cache evicted ${forBytes} entr${forBytes === 1 ? 'y' : 'ies'} to stay within maxBytes ` +
        `(${this.#maxBytes ?? 'the store\'s byte bound'} bytes of bodies) while holding fewer than maxEntries: ` +
        'evicted keys are fetched again. Raise maxBytes (option maxBytes, flag --max-bytes) to keep them; ' +
        'further evictions for bytes are counted in getStats().evictedForBytes without another warning.',
    );
  }

  #flushStore(): void {
    try {
      this.#store?.flush?.();
    } catch {
      // Counted and warned about through writeFailed.
    }
  }

  /** Whether entries are persisted. */
  get persistent(): boolean {
    return this.#store !== undefined;
  }

  /** The entry from memory or the store, with the tier it came from. */
  read(key: string): { entry: CacheEntry; tier: LocalTier; item: MemoryItem } | undefined {
    if (this.#absent === key) return undefined;
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
    if (this.#store === undefined) return this.#miss(key);
    let entry: CacheEntry | undefined;
    try {
      entry = this.#store.get(key);
    } catch (err) {
      this.#persistenceFailed('read', err);
      return undefined;
    }
    if (entry === undefined) return this.#miss(key);
    const promoted: MemoryItem = { entry };
    this.#memory.set(key, promoted);
    return { entry, tier: 'disk', item: promoted };
  }

  /** `key` is in neither tier: remembered until this turn's microtasks run or the tiers change (see #absent). */
  #miss(key: string): undefined {
    if (this.#absent === undefined) queueMicrotask(this.#forgetAbsent);
    this.#absent = key;
    return undefined;
  }

  /**
   * The parsed, deep-frozen body of a memory item: parsed once and kept while the item is among the
   * `maxParsedValues` read most recently (a parsed 4 KB JSON body costs about 4.5 KB of heap and saves a parse of
   * tens of µs on each later read; bench/memory.ts); past that bound the least recently read one drops its value.
   */
  parsed(item: MemoryItem, parse: (body: Uint8Array) => unknown): unknown {
    const held = this.keptParsed(item);
    if (held !== undefined) return held.value;
    const value = parse(item.entry.body);
    this.#keepParsed(item, { value });
    return value;
  }

  /** The parsed value the item keeps (marked as read now), or undefined: `parsed` without making a parser. */
  keptParsed(item: MemoryItem): { value: unknown } | undefined {
    const held = item.parsed;
    if (held !== undefined) this.#parsedHolders?.get(item);
    return held;
  }

  /** Items whose parsed value is kept, least recently read first out; undefined: all keep it; null: none does. */
  readonly #parsedHolders: LRUCache<MemoryItem, true> | null | undefined;

  #keepParsed(item: MemoryItem, parsed: { value: unknown }): void {
    if (this.#parsedHolders === null) return;
    item.parsed = parsed;
    this.#parsedHolders?.set(item, true);
  }

  /** Stores in memory and, if persistent, in the store. `parsed` may carry the already-parsed value. */
  write(key: string, entry: CacheEntry, parsed?: { value: unknown }): void {
    this.#absent = undefined;
    const item: MemoryItem = { entry };
    if (parsed !== undefined) this.#keepParsed(item, parsed);
    this.#memory.set(key, item);
    if (this.#store !== undefined) {
      try {
        // Every entry reaching the tiers had its digest computed from these bytes in this process: by
        // entryOf (origin answers), by the key/value API, or on arrival from a peer (a mismatch is rejected
        // there). The store need not hash the body a second time.
        const evicted = this.#store.set(key, entry, { digestVerified: true });
        this.#memoryOnly.delete(key);
        // A store that reports through `listen` counts its evictions there.
        if (this.#store.listen === undefined) this.#counters.evictions += evicted;
      } catch (err) {
        this.#persistenceFailed('write', err);
        if (this.#memory.has(key)) this.#memoryOnly.add(key);
      }
    }
  }

  /** Marks an entry fresh again after a 304, keeping its body. */
  refresh(key: string, storedAt: number, expiresAt: number): CacheEntry | undefined {
    this.#absent = undefined;
    const found = this.read(key);
    if (found === undefined) return undefined;
    const entry: CacheEntry = { ...found.entry, storedAt, expiresAt };
    const item: MemoryItem = { entry };
    if (found.item.parsed !== undefined) this.#keepParsed(item, found.item.parsed);
    this.#memory.set(key, item);
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
    this.#absent = undefined;
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
    this.#absent = undefined;
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

  /**
   * Deletes, from both tiers, every key starting with `prefix` that `matches` accepts; returns how many distinct
   * keys went. Costs a scan of the prefix's keys (memory, then the store's key index), and one store call (one
   * transaction) for the deletions when the store has `deleteKeys`.
   */
  deleteByPrefixWhere(prefix: string, matches: (key: string) => boolean): number {
    this.#absent = undefined;
    const keys = new Set<string>();
    for (const key of this.#memory.keys()) if (key.startsWith(prefix) && matches(key)) keys.add(key);
    if (this.#store !== undefined) {
      try {
        for (const key of this.#store.keysWithPrefix(prefix)) if (matches(key)) keys.add(key);
      } catch (err) {
        this.#persistenceFailed('delete', err);
      }
    }
    const store = this.#store;
    if (store?.deleteKeys === undefined) {
      let dropped = 0;
      for (const key of keys) if (this.delete(key)) dropped++;
      return dropped;
    }
    // One store call (one transaction) for all of them, not one per key; a key counts once, whichever tiers held it.
    const dropped = new Set<string>();
    for (const key of keys) if (this.#memory.delete(key)) dropped.add(key);
    try {
      for (const key of store.deleteKeys(keys)) dropped.add(key);
    } catch (err) {
      this.#persistenceFailed('delete', err);
    }
    return dropped.size;
  }

  clear(): void {
    this.#absent = undefined;
    this.#memory.clear();
    this.#memoryOnly.clear();
    if (this.#store !== undefined) {
      try {
        this.#store.clear();
      } catch (err) {
        this.#persistenceFailed('clear', err);
      }
    }
  }

  /**
   * The number of keys that answer: the store's count (pending writes committed first) plus the keys only
   * memory holds because their write to the store failed; memory's size without a store, or when the store
   * cannot count.
   */
  size(): number {
    if (this.#store !== undefined) {
      try {
        return this.#store.count() + this.#memoryOnly.size;
      } catch {
        return this.#memory.size;
      }
    }
    return this.#memory.size;
  }

  get memorySize(): number {
    return this.#memory.size;
  }

  /** Bytes of distinct bodies the store holds (pending writes committed first), when persistent. */
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
