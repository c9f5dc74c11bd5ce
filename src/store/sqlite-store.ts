/**
 * The disk tier: an EntryStore in one SQLite database, `<dir>/cache.sqlite`, that loses an acknowledged entry
 * only by eviction or explicit deletion.
 *
 * It composes the modules beside it: schema.ts (the on-disk format), connection.ts (opening, recovery from a
 * corrupt file), recency.ts (reads written back in batches), eviction.ts (the bounds) and store-errors.ts (what
 * a failure tells the user to do).
 * Size: the EntryStore methods and the group commit share the pending writes; they read as one unit.
 *
 * Guarantees:
 * - Group commit (the default): `set` is acknowledged at once and the entry is readable through this store
 *   from then on; it is committed together with the other writes of the same turn of the event loop when the
 *   turn ends (setImmediate), one transaction per slice of at most SLICE_ROWS entries or about SLICE_MS (a
 *   larger burst continues on the next turns, back to back), sooner when MAX_PENDING writes are waiting, and
 *   at `flush`, `count`, `bytes`, `deleteByPrefix`, `close`, process exit, and a `get` of a key whose write is
 *   pending (so the read sees what the bounds keep). `pendingWrites` is 0 once everything is committed.
 * - Durability of an acknowledged `set` (WAL, synchronous = NORMAL):
 *   - once committed (normally by the end of the turn that wrote it), it survives a crash of the process
 *     (SIGKILL, abort, an uncaught exception): the commit is in the WAL file, which the next open replays;
 *   - before that, a process killed (SIGKILL, abort, a signal without a handler) loses it: the window is the
 *     rest of the current turn plus the commit itself, normally well under a millisecond, longer only for a
 *     burst of writes; a normal exit (`process.exit`, the end of the program) commits it in an 'exit' hook;
 *   - an OS crash or power loss may lose transactions committed since the last WAL checkpoint synced
 *     (synchronous = NORMAL does not fsync each commit); the database is never corrupted by it;
 *   - `groupCommit: false` commits each `set` before it returns (one transaction per write), for the same
 *     guarantees without the window.
 *   Past that an entry is only lost by eviction or explicit deletion.
 * - WAL checkpoints run on a helper thread (checkpointer.ts), so no commit stalls the event loop for one. Once
 *   the WAL holds 16 MiB a checkpoint has not copied, the next one holds the group commits (at most 100 ms) so it
 *   copies every frame and the WAL starts over: the WAL stays bounded under a steady stream of writes.
 * - Each body is hashed once: `set` hashes it to check the digest unless the caller says it computed the
 *   digest itself (`digestVerified`, as the cache's tiers do: every entry they hold was hashed in this process
 *   from the very bytes, by the origin or key/value path or by the check of a peer's entry on arrival).
 * - Identical bodies are stored once (table `bodies`, keyed by sha256 digest, reference-counted by triggers);
 *   the last entry using a body takes the body with it.
 * - Bounds: once a write is committed, at most `maxEntries` entries and `maxBytes` bytes of distinct bodies,
 *   evicting the least recently used entries first (after a flood of reads not yet written, among the oldest
 *   rows as written: see MAX_STAMPED_PER_EVICTION in eviction.ts). A write that has to evict goes on to a
 *   low-water mark (at most 64 entries, a thousandth of each bound, fewer; none below maxEntries 1000: see
 *   `headroom` in eviction.ts), so a full cache evicts in batches. `count()` and `bytes()` read one row kept
 *   exact by triggers, so they are cheap and right even when another process writes the same database.
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
import { performance } from 'node:perf_hooks';
import { sha256Hex, viewAsBuffer, type CacheEntry } from '../cache/entry.js';
import type { EntryStore, EntryStoreEvents, SetOptions } from '../cache/entry-store.js';
import { CacheConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { Checkpointer } from './checkpointer.js';
import { immediate, openDatabase, RecoveringConnection, type Connection, type OpenedDatabase } from './connection.js';
import { dropIfNeverFits, evictPastBounds, type Bounds, type Evicted } from './eviction.js';
import { RecencyBatch, SLICE_MS, SLICE_ROWS } from './recency.js';
import { decodeKey, encodeKey, prefixUpperBound, readStats, rowToEntry } from './schema.js';
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
  /**
   * Commit the writes of one turn of the event loop together (default true), or each `set` before it returns
   * (false). See the durability notes above.
   */
  readonly groupCommit?: boolean;
  /** Frames a checkpoint finds in the WAL from which the next checkpoint holds commits so the WAL starts over (checkpointer.ts). Default 4096. */
  readonly walResetFrames?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/** Writes waiting for their commit before `set` commits them itself. */
const MAX_PENDING = 4096;

/** An acknowledged write not yet committed, with its recency stamp. */
interface PendingWrite {
  readonly entry: CacheEntry;
  readonly stamp: number;
}

/** Stores with writes that may be pending, committed when the process exits normally. */
const OPEN_STORES = new Set<SqliteStore>();
let exitHookInstalled = false;

function commitAllAtExit(): void {
  for (const store of OPEN_STORES) {
    try {
      store.flush();
    } catch {
      // Nothing can be reported any more; the store told its listener.
    }
  }
}

export class SqliteStore implements EntryStore {
  readonly #bounds: Bounds;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** The last recency stamp handed out: stamps strictly increase, so two uses in one millisecond keep their order. */
  #lastStamp = 0;
  readonly #db: RecoveringConnection;
  /** Reads not yet written to `last_used`; an eviction takes its candidate's pending read first. */
  readonly #recency: RecencyBatch;
  readonly #groupCommit: boolean;
  /** Acknowledged writes not yet committed, in the order written. */
  readonly #pending = new Map<string, PendingWrite>();
  #commitScheduled: NodeJS.Immediate | undefined;
  #events: EntryStoreEvents | undefined;
  /** Runs WAL checkpoints on a helper thread, so no commit pays for one. */
  readonly #checkpointer: Checkpointer;

  private constructor(options: SqliteStoreOptions, opened: OpenedDatabase, busyTimeoutMs: number) {
    this.#bounds = { maxEntries: options.maxEntries, maxBytes: options.maxBytes };
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#groupCommit = options.groupCommit ?? true;
    this.#db = new RecoveringConnection(opened, {
      busyTimeoutMs,
      logger: options.logger,
      // The pending reads were of the corrupt file's entries, which are gone; the fresh database checkpoints
      // by itself (SQLite's automatic checkpoint), the helper thread having the old file open.
      onReplaced: () => {
        this.#recency.clear();
        this.#checkpointer.stop();
      },
    });
    this.#checkpointer = new Checkpointer(opened.file, options.logger, {
      resetFrames: options.walResetFrames,
      // The commits held while a quiet checkpoint ran go now.
      onQuietEnd: () => { if (this.#pending.size > 0) this.#scheduleCommit(); },
    });
    this.#recency = new RecencyBatch({
      file: opened.file,
      logger: options.logger,
      now: () => this.#stamp(),
      connect: () => this.#db.current('get'),
      committed: (c) => this.#checkpointer.committed(c.db),
    });
    // Before the first commit: no commit of this connection checkpoints on the event loop (checkpointer.ts).
    this.#checkpointer.handOver(opened.conn.db);
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
    const store = new SqliteStore(options, opened, busyTimeoutMs);
    OPEN_STORES.add(store);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', commitAllAtExit);
    }
    return store;
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
    // A read of a write still pending commits the batch first: the read then sees exactly what the bounds keep
    // (the write, unless the same batch evicted it). The tiers only get here when memory no longer has the key.
    if (this.#pending.has(key)) this.#commitAll();
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

  /**
   * Stores `entry` under `key`. With group commit (the default) the write is acknowledged at once and committed
   * with every other write of this turn of the event loop, in one transaction, when the turn ends; reads through
   * this store see it meanwhile. Returns how many entries this call evicted: 0 with group commit (evictions are
   * told to the `listen`er when they happen), the count with `groupCommit: false`.
   */
  set(key: string, entry: CacheEntry, options?: SetOptions): number {
    this.#db.current('set');
    if (options?.digestVerified !== true) {
      const actual = sha256Hex(entry.body);
      // Bodies are shared by digest: a wrong digest would hand this body to every other key claiming that digest.
      if (actual !== entry.digest) throw digestMismatch(key, entry.digest, actual);
    }
    // Re-inserted, so the batch stays in the order of the writes (and of their stamps).
    this.#pending.delete(key);
    this.#pending.set(key, { entry, stamp: this.#stamp() });
    if (!this.#groupCommit) return this.#commit('set', Number.POSITIVE_INFINITY, 'throw');
    if (this.#pending.size >= MAX_PENDING) {
      // A burst larger than a batch: commit now rather than hold an unbounded batch.
      this.#commitAll();
      return 0;
    }
    this.#scheduleCommit();
    return 0;
  }

  /** Commits every pending write now. Throws StoreError if that fails (the writes are then dropped, and told to the listener). */
  flush(): void {
    if (this.#pending.size > 0) this.#commit('set', Number.POSITIVE_INFINITY, 'tell-and-throw');
  }

  /** Commits every pending write now; a failure is told to the listener only (the caller goes on). */
  #commitAll(): void {
    if (this.#pending.size > 0) this.#commit('set', Number.POSITIVE_INFINITY, 'tell');
  }

  /** Writes acknowledged but not yet committed (0 once the commit slices caught up). */
  get pendingWrites(): number {
    return this.#pending.size;
  }

  /** Subscribes to evictions and failed background commits. One listener; a new one replaces the old. */
  listen(events: EntryStoreEvents): void {
    this.#events = events;
  }

  #scheduleCommit(): void {
    if (this.#commitScheduled !== undefined) return;
    // Not unref'd: an acknowledged write keeps the process alive until it is committed.
    this.#commitScheduled = setImmediate(() => {
      this.#commitScheduled = undefined;
      // A quiet checkpoint runs (the WAL is to start over): its end schedules this commit again.
      if (this.#db.closed || this.#pending.size === 0 || this.#checkpointer.holdingCommits) return;
      // A failure is told to the listener: nobody is waiting on a background commit.
      this.#commit('set', performance.now() + SLICE_MS, 'tell', SLICE_ROWS);
      if (this.#pending.size > 0) this.#scheduleCommit();
    });
  }

  /**
   * Writes pending entries, oldest first, in one IMMEDIATE transaction until `deadline` or `maxRows` (at least one entry),
   * evicting past the bounds after each as a lone `set` would. Returns how many entries were evicted. On failure
   * every pending write is dropped and, as `failure` says, thrown to the caller (a lone `set` without group
   * commit, whose caller counts it), told to the listener, or both (an explicit `flush`).
   */
  #commit(operation: string, deadline: number, failure: 'throw' | 'tell' | 'tell-and-throw', maxRows = Number.POSITIVE_INFINITY): number {
    let batch: Array<[string, PendingWrite]> = [];
    let evicted: Evicted = { keys: [], forBytes: 0 };
    try {
      this.#db.run(operation, (c) => {
        immediate(c, () => {
          // `run` may call this again on a fresh database after recovering a corrupt one: start from scratch.
          batch = [];
          evicted = { keys: [], forBytes: 0 };
          for (const item of this.#pending) {
            if (batch.length > 0 && (batch.length >= maxRows || ((batch.length & 7) === 0 && performance.now() > deadline))) break;
            batch.push(item);
            this.#writeOne(c, item[0], item[1], evicted);
          }
        });
        this.#checkpointer.committed(c.db);
      });
    } catch (err) {
      const keys = [...this.#pending.keys()];
      this.#pending.clear();
      if (failure !== 'throw') this.#events?.writeFailed(keys, err);
      if (failure !== 'tell') throw err;
      return 0;
    }
    for (const [key, write] of batch) if (this.#pending.get(key) === write) this.#pending.delete(key);
    if (evicted.keys.length === 0) return 0;
    const keys = evicted.keys.map((k) => decodeKey(k));
    for (const key of keys) this.#recency.forget(key);
    this.#events?.evicted(keys, evicted.forBytes);
    return keys.length;
  }

  #writeOne(c: Connection, key: string, write: PendingWrite, evicted: Evicted): void {
    const { entry, stamp } = write;
    const k = encodeKey(key);
    const size = entry.body.byteLength;
    if (dropIfNeverFits(c, k, size, this.#bounds)) {
      this.#logger.debug(`not storing key ${describeKey(key)}: its body (${size} bytes) exceeds maxBytes (${this.#bounds.maxBytes})`);
      evicted.keys.push(k);
      evicted.forBytes++;
      return;
    }
    c.insertBody.run(entry.digest, viewAsBuffer(entry.body), size);
    c.upsertEntry.run(
      k,
      entry.digest,
      entry.status,
      JSON.stringify(entry.headers),
      entry.etag ?? null,
      entry.lastModified ?? null,
      entry.storedAt,
      entry.expiresAt,
      stamp,
      size,
    );
    evictPastBounds(c, k, this.#bounds, (candidate) => this.#recency.take(decodeKey(candidate)), evicted);
  }

  refresh(key: string, storedAt: number, expiresAt: number): boolean {
    const pending = this.#pending.get(key);
    if (pending !== undefined) {
      this.#db.current('refresh');
      // Replaced in place: the batch keeps its order and the write its stamp.
      this.#pending.set(key, { entry: { ...pending.entry, storedAt, expiresAt }, stamp: pending.stamp });
      return true;
    }
    const k = encodeKey(key);
    return this.#db.run('refresh', (c) => c.refresh.run(storedAt, expiresAt, k).changes > 0);
  }

  delete(key: string): boolean {
    const k = encodeKey(key);
    const wasPending = this.#pending.delete(key);
    const existed = this.#db.run('delete', (c) => c.deleteKey.run(k).changes > 0);
    this.#recency.forget(key);
    return existed || wasPending;
  }

  /**
   * Removes these entries in one transaction (one commit, not one per key). Returns the keys that existed,
   * pending writes included.
   */
  deleteKeys(keys: Iterable<string>): string[] {
    const list = [...keys];
    const pending = new Set<string>();
    for (const key of list) if (this.#pending.delete(key)) pending.add(key);
    const onDisk = this.#db.run('delete', (c) =>
      immediate(c, () => list.filter((key) => c.deleteKey.run(encodeKey(key)).changes > 0)),
    );
    for (const key of list) this.#recency.forget(key);
    if (pending.size === 0) return onDisk;
    for (const key of onDisk) pending.delete(key);
    return [...onDisk, ...pending];
  }

  deleteByPrefix(prefix: string): number {
    // Committed first, so each key is counted once whether or not its write was pending.
    this.#commitAll();
    const lower = encodeKey(prefix);
    const upper = prefixUpperBound(lower);
    // A byte range over the UTF-16 code units: exact for any prefix, wildcard characters included, and it
    // uses the primary key index. `changes` counts only entries, not the bodies the triggers remove.
    return this.#db.run('deleteByPrefix', (c) =>
      upper === undefined ? c.deleteFrom.run(lower).changes : c.deleteRange.run(lower, upper).changes,
    );
  }

  keysWithPrefix(prefix: string): string[] {
    this.#commitAll();
    const lower = encodeKey(prefix);
    const upper = prefixUpperBound(lower);
    return this.#db.run('keysWithPrefix', (c) =>
      (upper === undefined ? c.selectKeysFrom.all(lower) : c.selectKeysRange.all(lower, upper)).map((row) => decodeKey(row.key)),
    );
  }

  clear(): void {
    this.#pending.clear();
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
    this.#commitAll();
    return this.#db.run('count', (c) => readStats(c).entries);
  }

  bytes(): number {
    this.#commitAll();
    return this.#db.run('bytes', (c) => readStats(c).bytes);
  }

  /** Marks `key` recently used, as a read would, without reading it (the memory tier answered the read). */
  touch(key: string): void {
    if (this.#db.closed) return;
    this.#recency.note(key);
  }

  /** Commits pending writes and recency, then closes the database. Idempotent; never throws. */
  close(): void {
    if (this.#db.closed) return;
    // A failure is told to the listener; closing must not fail.
    this.#commitAll();
    if (this.#commitScheduled !== undefined) clearImmediate(this.#commitScheduled);
    this.#commitScheduled = undefined;
    OPEN_STORES.delete(this);
    this.#db.close((c) => this.#recency.close(c));
    this.#checkpointer.stop();
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
