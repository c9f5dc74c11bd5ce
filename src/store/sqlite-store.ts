/**
 * The disk tier: an EntryStore in one SQLite database, `<dir>/cache.sqlite`, that loses an acknowledged entry
 * only by eviction or explicit deletion.
 *
 * It composes the modules beside it: schema.ts (the on-disk format), connection.ts (opening, recovery from a
 * corrupt file), recency.ts (reads written back in batches), eviction.ts (the bounds) and store-errors.ts (what
 * a failure tells the user to do).
 *
 * Guarantees:
 * - Every acknowledged `set` is durable across a restart of this process (WAL, synchronous = NORMAL: an OS
 *   crash may lose the last transactions, a process crash loses nothing) and is only lost by eviction or
 *   explicit deletion.
 * - Identical bodies are stored once (table `bodies`, keyed by sha256 digest, reference-counted by triggers);
 *   the last entry using a body takes the body with it.
 * - Bounds: after `set`, at most `maxEntries` entries and `maxBytes` bytes of distinct bodies, evicting the
 *   least recently used entries first. `count()` and `bytes()` read one row kept exact by triggers, so they
 *   are cheap and right even when another process writes the same database.
 * - Keys are opaque: stored as the exact UTF-16 code units of the JS string (a BLOB), so any string, even one
 *   with lone surrogates, is its own key, and prefix deletion is an exact byte-range query.
 * - Several processes (or several stores in one process) may share one `dir`: WAL lets readers run beside the
 *   writer, write transactions start IMMEDIATE and wait up to `busyTimeoutMs` for the lock.
 * - A corrupt or foreign file is moved aside to `cache.sqlite.corrupt-<timestamp>` (with any -wal/-shm SQLite
 *   left when the failed connection closed), a warning names it, and a fresh database takes its place: at open,
 *   or on the first query that hits the damage.
 * - A directory that cannot be written makes `open` throw `CacheConfigError('cacheDir', …)`; a write failing
 *   later (full disk, read-only file, lock held too long) throws `StoreError` and the store keeps serving reads.
 * - Bodies are never logged.
 */
import { sha256Hex, viewAsBuffer, type CacheEntry } from '../cache/entry.js';
import type { EntryStore } from '../cache/entry-store.js';
import { CacheConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { immediate, openDatabase, RecoveringConnection, type OpenedDatabase } from './connection.js';
import { dropIfNeverFits, evictPastBounds, type Bounds } from './eviction.js';
import { RecencyBatch } from './recency.js';
import { encodeKey, prefixUpperBound, readStats, rowToEntry } from './schema.js';
import { alteredBody, describeKey, digestMismatch } from './store-errors.js';

export { StoreError } from './store-errors.js';

export interface SqliteStoreOptions {
  /** The cache directory; created (mode 0o700) when missing. The database is `<dir>/cache.sqlite`. */
  readonly dir: string;
  /** Most entries kept; a positive integer. */
  readonly maxEntries: number;
  /** Most bytes of distinct bodies (UTF-8) kept; a positive integer. */
  readonly maxBytes: number;
  readonly logger: Logger;
  /** The clock for recency (ms since the epoch). Defaults to Date.now. */
  readonly now?: () => number;
  /** How long a write waits for another connection's lock before failing with SQLITE_BUSY. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

export class SqliteStore implements EntryStore {
  readonly #bounds: Bounds;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** The last recency stamp handed out: stamps strictly increase, so two uses in one millisecond keep their order. */
  #lastStamp = 0;
  readonly #db: RecoveringConnection;
  /** Reads not yet written to `last_used`; written before any eviction decision. */
  readonly #recency: RecencyBatch;

  private constructor(options: SqliteStoreOptions, opened: OpenedDatabase, busyTimeoutMs: number) {
    this.#bounds = { maxEntries: options.maxEntries, maxBytes: options.maxBytes };
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#db = new RecoveringConnection(opened, {
      busyTimeoutMs,
      logger: options.logger,
      // The pending reads were of the corrupt file's entries, which are gone.
      onReplaced: () => this.#recency.clear(),
    });
    this.#recency = new RecencyBatch({
      file: opened.file,
      logger: options.logger,
      now: () => this.#stamp(),
      connect: () => this.#db.current('get'),
    });
  }

  /**
   * Opens (creating when missing) `<dir>/cache.sqlite`. Throws CacheConfigError for invalid bounds, or with
   * option `cacheDir` when the directory or database cannot be created or written; the caller decides whether
   * to run without persistence. A corrupt database is moved aside and replaced, with a warning.
   */
  static open(options: SqliteStoreOptions): SqliteStore {
    validateOptions(options);
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    const opened = openDatabase(options.dir, { busyTimeoutMs, logger: options.logger });
    return new SqliteStore(options, opened, busyTimeoutMs);
  }

  /**
   * A recency stamp: the clock, or one more than the last stamp when the clock has not moved. With equal stamps
   * eviction among ties was arbitrary, and memory and SQLite could evict different keys.
   */
  #stamp(): number {
    const now = this.#now();
    this.#lastStamp = now > this.#lastStamp ? now : this.#lastStamp + 1;
    return this.#lastStamp;
  }

  /** The database file this store uses. */
  get file(): string {
    return this.#db.file;
  }

  get(key: string): CacheEntry | undefined {
    const k = encodeKey(key);
    return this.#db.run('get', (c) => {
      const row = c.selectEntry.get(k);
      if (row === undefined) return undefined;
      const entry = rowToEntry(row);
      // A body altered on disk is never served: the check costs one hash per read from disk (memory hits skip it).
      if (sha256Hex(entry.body) !== entry.digest) {
        c.deleteKey.run(k);
        throw alteredBody(this.#db.file, key);
      }
      this.#recency.note(key);
      return entry;
    });
  }

  set(key: string, entry: CacheEntry): number {
    this.#db.current('set');
    const actual = sha256Hex(entry.body);
    // Bodies are shared by digest: a wrong digest would hand this body to every other key claiming that digest.
    if (actual !== entry.digest) throw digestMismatch(key, entry.digest, actual);
    const k = encodeKey(key);
    const size = entry.body.byteLength;
    const headers = JSON.stringify(entry.headers);
    const now = this.#stamp();
    return this.#db.run('set', (c) =>
      immediate(c, (): number => {
        this.#recency.write(c);
        if (dropIfNeverFits(c, k, size, this.#bounds)) {
          this.#logger.debug(`not storing key ${describeKey(key)}: its body (${size} bytes) exceeds maxBytes (${this.#bounds.maxBytes})`);
          return 1;
        }
        c.insertBody.run(entry.digest, viewAsBuffer(entry.body), size);
        c.upsertEntry.run(
          k,
          entry.digest,
          entry.status,
          headers,
          entry.etag ?? null,
          entry.lastModified ?? null,
          entry.storedAt,
          entry.expiresAt,
          now,
          size,
        );
        return evictPastBounds(c, k, this.#bounds);
      }),
    );
  }

  refresh(key: string, storedAt: number, expiresAt: number): boolean {
    const k = encodeKey(key);
    return this.#db.run('refresh', (c) => c.refresh.run(storedAt, expiresAt, k).changes > 0);
  }

  delete(key: string): boolean {
    const k = encodeKey(key);
    const existed = this.#db.run('delete', (c) => c.deleteKey.run(k).changes > 0);
    this.#recency.forget(key);
    return existed;
  }

  deleteByPrefix(prefix: string): number {
    const lower = encodeKey(prefix);
    const upper = prefixUpperBound(lower);
    // A byte range over the UTF-16 code units: exact for any prefix, wildcard characters included, and it
    // uses the primary key index. `changes` counts only entries, not the bodies the triggers remove.
    return this.#db.run('deleteByPrefix', (c) =>
      upper === undefined ? c.deleteFrom.run(lower).changes : c.deleteRange.run(lower, upper).changes,
    );
  }

  clear(): void {
    this.#db.run('clear', (c) =>
      immediate(c, () => {
        c.deleteAllEntries.run();
        // The triggers already emptied both; these make `clear` a full reset even if they ever drifted.
        c.deleteAllBodies.run();
        c.resetStats.run();
      }),
    );
    this.#recency.clear();
  }

  count(): number {
    return this.#db.run('count', (c) => readStats(c).entries);
  }

  bytes(): number {
    return this.#db.run('bytes', (c) => readStats(c).bytes);
  }

  /** Marks `key` recently used, as a read would, without reading it (the memory tier answered the read). */
  touch(key: string): void {
    if (this.#db.closed) return;
    this.#recency.note(key);
  }

  /** Writes the pending recency, then closes the database. Idempotent; never throws. */
  close(): void {
    this.#db.close((c) => this.#recency.close(c));
  }
}

function validateOptions(options: SqliteStoreOptions): void {
  if (typeof options.dir !== 'string' || options.dir === '') {
    throw new CacheConfigError('cacheDir', `expected a directory path, got ${JSON.stringify(options.dir)}`);
  }
  for (const name of ['maxEntries', 'maxBytes'] as const) {
    const value = options[name];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new CacheConfigError(name, `expected a positive integer, got ${String(value)}`);
    }
  }
  const busy = options.busyTimeoutMs;
  if (busy !== undefined && !(Number.isFinite(busy) && busy >= 0)) {
    throw new CacheConfigError('busyTimeoutMs', `expected a number of milliseconds >= 0, got ${String(busy)}`);
  }
}
