/**
 * The disk tier: an EntryStore in one SQLite database, `<dir>/cache.sqlite`.
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
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { sha256Hex, type CacheEntry } from '../cache/entry.js';
import { CacheConfigError, CacheError } from '../errors.js';
import type { Logger } from '../log.js';
import type { EntryStore } from '../cache/entry-store.js';

/** A store operation failed (or the store is closed). `operation` names the method; `sqliteCode` the SQLite result code, if any. */
export class StoreError extends CacheError {
  /** The EntryStore method that failed: `get`, `set`, `refresh`, `delete`, … */
  readonly operation: string;
  /** SQLite's extended result code (`SQLITE_FULL`, `SQLITE_READONLY`, `SQLITE_BUSY`, …), when SQLite reported the failure. */
  readonly sqliteCode: string | undefined;
  constructor(operation: string, message: string, options?: { cause?: unknown; sqliteCode?: string | undefined }) {
    super('ERR_STORE', message, options);
    this.operation = operation;
    this.sqliteCode = options?.sqliteCode;
  }
}

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

/** The schema this code reads and writes, kept in PRAGMA user_version. */
const SCHEMA_VERSION = 1;
const DATABASE_FILE = 'cache.sqlite';
const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/** Recency updates written per transaction by the background flush (the rest follow on the next turns). */
const TOUCH_BATCH = 250;
/** How long reads are remembered in memory before their recency is written, so a read costs no write. */
const TOUCH_FLUSH_MS = 1000;

// Bodies live in a rowid table (not WITHOUT ROWID): large values belong in overflow pages, not in index pages.
// The triggers keep `refs` and the one-row `stats` table exact whatever statement changes `entries`, so no code
// path (eviction, prefix deletion, another process) can leak a body or skew the counters.
const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS bodies (
  digest TEXT PRIMARY KEY NOT NULL,
  body   TEXT NOT NULL,
  size   INTEGER NOT NULL,
  refs   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
  key           BLOB PRIMARY KEY NOT NULL,
  digest        TEXT NOT NULL,
  status        INTEGER NOT NULL,
  headers       TEXT NOT NULL,
  etag          TEXT,
  last_modified TEXT,
  stored_at     INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  last_used     INTEGER NOT NULL,
  size          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_last_used ON entries (last_used);
CREATE TABLE IF NOT EXISTS stats (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  entries INTEGER NOT NULL,
  bytes   INTEGER NOT NULL
);
INSERT OR IGNORE INTO stats (id, entries, bytes) VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS entries_after_insert AFTER INSERT ON entries BEGIN
  UPDATE bodies SET refs = refs + 1 WHERE digest = NEW.digest;
  UPDATE stats SET entries = entries + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS entries_after_delete AFTER DELETE ON entries BEGIN
  UPDATE bodies SET refs = refs - 1 WHERE digest = OLD.digest;
  DELETE FROM bodies WHERE digest = OLD.digest AND refs <= 0;
  UPDATE stats SET entries = entries - 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS entries_after_digest_change AFTER UPDATE OF digest ON entries
WHEN OLD.digest IS NOT NEW.digest BEGIN
  UPDATE bodies SET refs = refs + 1 WHERE digest = NEW.digest;
  UPDATE bodies SET refs = refs - 1 WHERE digest = OLD.digest;
  DELETE FROM bodies WHERE digest = OLD.digest AND refs <= 0;
END;
CREATE TRIGGER IF NOT EXISTS bodies_after_insert AFTER INSERT ON bodies BEGIN
  UPDATE stats SET bytes = bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS bodies_after_delete AFTER DELETE ON bodies BEGIN
  UPDATE stats SET bytes = bytes - OLD.size WHERE id = 1;
END;
`;

interface EntryRow {
  digest: string;
  body: string;
  status: number;
  headers: string;
  etag: string | null;
  last_modified: string | null;
  stored_at: number;
  expires_at: number;
}

interface StatsRow {
  entries: number;
  bytes: number;
}

/** Which file a connection opened, so recovery never moves aside a fresh database another process already made. */
interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

/** One open database with its statements, prepared once. Replaced wholesale when a corrupt file is recovered. */
interface Connection {
  readonly db: Database.Database;
  readonly identity: FileIdentity | undefined;
  /** Runs `fn` in a BEGIN IMMEDIATE transaction (use `.immediate(fn)`); made once, not per call. */
  readonly transaction: Database.Transaction<(fn: () => unknown) => unknown>;
  readonly selectEntry: Database.Statement<[Buffer], EntryRow>;
  readonly selectStats: Database.Statement<[], StatsRow>;
  readonly insertBody: Database.Statement<[string, string, number]>;
  readonly upsertEntry: Database.Statement<
    [Buffer, string, number, string, string | null, string | null, number, number, number, number]
  >;
  readonly touch: Database.Statement<[number, Buffer, number]>;
  readonly refresh: Database.Statement<[number, number, Buffer]>;
  readonly deleteKey: Database.Statement<[Buffer]>;
  readonly deleteRange: Database.Statement<[Buffer, Buffer]>;
  readonly deleteFrom: Database.Statement<[Buffer]>;
  readonly deleteAllEntries: Database.Statement<[]>;
  readonly deleteAllBodies: Database.Statement<[]>;
  readonly resetStats: Database.Statement<[]>;
  readonly evictOldest: Database.Statement<[Buffer]>;
}

export class SqliteStore implements EntryStore {
  /** The database file this store uses. */
  readonly file: string;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly busyTimeoutMs: number;
  /** undefined after close, or after a failed recovery (the next call tries to reopen). */
  private conn: Connection | undefined;
  private closed = false;
  /** Reads not yet written to `last_used`: key → when it was read. Written before any eviction decision. */
  private readonly pendingTouches = new Map<string, number>();
  private touchTimer: NodeJS.Timeout | undefined;
  private touchFailureLogged = false;

  private constructor(options: SqliteStoreOptions, file: string, conn: Connection) {
    this.file = file;
    this.maxEntries = options.maxEntries;
    this.maxBytes = options.maxBytes;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    this.conn = conn;
  }

  /**
   * Opens (creating when missing) `<dir>/cache.sqlite`. Throws CacheConfigError for invalid bounds, or with
   * option `cacheDir` when the directory or database cannot be created or written; the caller decides whether
   * to run without persistence. A corrupt database is moved aside and replaced, with a warning.
   */
  static open(options: SqliteStoreOptions): SqliteStore {
    validateOptions(options);
    const dir = options.dir;
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (!fs.statSync(dir).isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
      fs.accessSync(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
    } catch (err) {
      throw unwritableDir(dir, err);
    }
    const file = path.join(dir, DATABASE_FILE);
    let attempt = tryOpenConnection(file, busyTimeoutMs);
    if (!attempt.ok && isCorruption(attempt.error)) {
      let moved: string | undefined;
      try {
        moved = moveAside(file, attempt.identity);
      } catch (err) {
        throw unwritableDir(dir, err, `the database ${file} is corrupt and could not be moved aside`);
      }
      warnRecovered(options.logger, file, attempt.error, moved);
      attempt = tryOpenConnection(file, busyTimeoutMs);
    }
    if (!attempt.ok) throw unwritableDir(dir, attempt.error, `cannot open the SQLite database ${file}`);
    return new SqliteStore(options, file, attempt.conn);
  }

  get(key: string): CacheEntry | undefined {
    const k = encodeKey(key);
    return this.run('get', (c) => {
      const row = c.selectEntry.get(k);
      if (row === undefined) return undefined;
      this.noteRead(key);
      return rowToEntry(row);
    });
  }

  set(key: string, entry: CacheEntry): number {
    this.connection('set');
    const actual = sha256Hex(entry.body);
    if (actual !== entry.digest) {
      // Bodies are shared by digest: a wrong digest would hand this body to every other key claiming that digest.
      throw new StoreError(
        'set',
        `Cannot store key ${describeKey(key)}: its digest ${JSON.stringify(entry.digest)} is not the sha256 of its body ` +
          `(${actual}). Build entries with sha256Hex(body).`,
      );
    }
    const k = encodeKey(key);
    const size = Buffer.byteLength(entry.body, 'utf8');
    const headers = JSON.stringify(entry.headers);
    const now = this.now();
    return this.run('set', (c) =>
      immediate(c, (): number => {
        this.flushTouches(c);
        if (size > this.maxBytes) {
          // It could never fit: storing it would flush the whole cache first. Dropping it (and the version it
          // replaces, which is no longer current) keeps the bound and never serves outdated data.
          c.deleteKey.run(k);
          this.logger.debug(`not storing key ${describeKey(key)}: its body (${size} bytes) exceeds maxBytes (${this.maxBytes})`);
          return 1;
        }
        c.insertBody.run(entry.digest, entry.body, size);
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
        let evicted = 0;
        // The key just written is never a candidate: it is the most recently used, and since its body fits,
        // evicting every other entry always brings the store within bounds.
        for (;;) {
          const stats = readStats(c);
          if (stats.entries <= this.maxEntries && stats.bytes <= this.maxBytes) break;
          if (c.evictOldest.run(k).changes === 0) break;
          evicted++;
        }
        return evicted;
      }),
    );
  }

  refresh(key: string, storedAt: number, expiresAt: number): boolean {
    const k = encodeKey(key);
    return this.run('refresh', (c) => c.refresh.run(storedAt, expiresAt, k).changes > 0);
  }

  delete(key: string): boolean {
    const k = encodeKey(key);
    const existed = this.run('delete', (c) => c.deleteKey.run(k).changes > 0);
    this.pendingTouches.delete(key);
    return existed;
  }

  deleteByPrefix(prefix: string): number {
    const lower = encodeKey(prefix);
    const upper = prefixUpperBound(lower);
    // A byte range over the UTF-16 code units: exact for any prefix, wildcard characters included, and it
    // uses the primary key index. `changes` counts only entries, not the bodies the triggers remove.
    return this.run('deleteByPrefix', (c) =>
      upper === undefined ? c.deleteFrom.run(lower).changes : c.deleteRange.run(lower, upper).changes,
    );
  }

  clear(): void {
    this.run('clear', (c) =>
      immediate(c, () => {
        c.deleteAllEntries.run();
        // The triggers already emptied both; these make `clear` a full reset even if they ever drifted.
        c.deleteAllBodies.run();
        c.resetStats.run();
      }),
    );
    this.pendingTouches.clear();
  }

  count(): number {
    return this.run('count', (c) => readStats(c).entries);
  }

  bytes(): number {
    return this.run('bytes', (c) => readStats(c).bytes);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.touchTimer !== undefined) clearTimeout(this.touchTimer);
    this.touchTimer = undefined;
    const c = this.conn;
    this.conn = undefined;
    if (c === undefined) return;
    try {
      if (this.pendingTouches.size > 0) immediate(c, () => this.flushTouches(c));
    } catch (err) {
      // Losing some recency is harmless; closing must not fail.
      this.logger.debug(`could not record recent reads in ${this.file} before closing: ${describeError(err)}`);
    }
    this.pendingTouches.clear();
    try {
      c.db.close();
    } catch (err) {
      this.logger.debug(`closing ${this.file} failed: ${describeError(err)}`);
    }
  }

  /** The open connection, reopening after a failed recovery; throws StoreError when closed or unavailable. */
  private connection(operation: string): Connection {
    if (this.closed) {
      throw new StoreError(
        operation,
        `Cannot ${operation}: the SQLite store ${this.file} is closed. Open a new one with SqliteStore.open().`,
      );
    }
    if (this.conn !== undefined) return this.conn;
    const attempt = tryOpenConnection(this.file, this.busyTimeoutMs);
    if (!attempt.ok) throw storeFailure(operation, this.file, attempt.error, 'the database could not be reopened');
    this.conn = attempt.conn;
    return this.conn;
  }

  /**
   * Runs one operation. Corruption found now (not at open) is recovered like at open, then the operation runs
   * once more on the fresh database; any other failure becomes a StoreError and leaves the store usable.
   */
  private run<T>(operation: string, body: (c: Connection) => T): T {
    const c = this.connection(operation);
    try {
      return body(c);
    } catch (err) {
      if (!isCorruption(err)) throw storeFailure(operation, this.file, err);
      const fresh = this.recover(operation, c, err);
      try {
        return body(fresh);
      } catch (again) {
        throw storeFailure(operation, this.file, again);
      }
    }
  }

  private recover(operation: string, c: Connection, cause: unknown): Connection {
    this.conn = undefined;
    this.pendingTouches.clear();
    try {
      c.db.close();
    } catch {
      // A corrupt database may refuse a clean close (checkpoint); the file is being replaced anyway.
    }
    let moved: string | undefined;
    try {
      moved = moveAside(this.file, c.identity);
    } catch (err) {
      throw storeFailure(operation, this.file, err, `the database is corrupt (${describeError(cause)}) and could not be moved aside`);
    }
    warnRecovered(this.logger, this.file, cause, moved);
    return this.connection(operation);
  }

  /** Marks `key` recently used, as a read would, without reading it (the memory tier answered the read). */
  touch(key: string): void {
    if (this.closed) return;
    this.noteRead(key);
  }

  /** Remembers a read; written in batches (before evictions, every TOUCH_FLUSH_MS, at close) so reads stay writes-free. */
  private noteRead(key: string): void {
    this.pendingTouches.set(key, this.now());
    if (this.touchTimer !== undefined) return;
    this.touchTimer = setTimeout(() => this.flushTouchesSoon(), TOUCH_FLUSH_MS);
    // Recency alone must never keep a process alive.
    this.touchTimer.unref();
  }

  private flushTouchesSoon(): void {
    this.touchTimer = undefined;
    if (this.closed || this.pendingTouches.size === 0) return;
    try {
      // Not run(): recovery from a timer would warn with no caller to see the operation fail; the next call does it.
      const c = this.connection('get');
      // A bounded batch per turn of the event loop, so thousands of hits never stall it for long.
      immediate(c, () => this.flushTouches(c, TOUCH_BATCH));
      this.touchFailureLogged = false;
      if (this.pendingTouches.size > 0 && this.touchTimer === undefined) {
        this.touchTimer = setTimeout(() => this.flushTouchesSoon(), 0);
        this.touchTimer.unref();
      }
    } catch (err) {
      // Keep the reads for the next attempt (before the next set, or the next timer).
      if (!this.touchFailureLogged) {
        this.touchFailureLogged = true;
        this.logger.warn(`could not record recent reads in ${this.file} (retrying later): ${describeError(err)}`);
      }
    }
  }

  /** Must run inside a write transaction. Only moves `last_used` forward, so a stale read never ages a newer write. */
  private flushTouches(c: Connection, limit = Number.POSITIVE_INFINITY): void {
    let written = 0;
    for (const [key, at] of this.pendingTouches) {
      if (written++ >= limit) break;
      c.touch.run(at, encodeKey(key), at);
      this.pendingTouches.delete(key);
    }
  }
}

type OpenAttempt =
  | { readonly ok: true; readonly conn: Connection }
  | { readonly ok: false; readonly error: unknown; readonly identity: FileIdentity | undefined };

function tryOpenConnection(file: string, busyTimeoutMs: number): OpenAttempt {
  let db: Database.Database;
  try {
    db = new Database(file);
  } catch (error) {
    return { ok: false, error, identity: undefined };
  }
  // SQLite opened (or created) the file above; remember which one before anything else can replace it.
  const identity = fileIdentity(file);
  try {
    db.pragma(`busy_timeout = ${Math.floor(busyTimeoutMs)}`);
    // The first statements read the header: a file that is not a database fails here with SQLITE_NOTADB.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    ensureSchema(db, file);
    restrictToOwner(file);
    const conn = prepareConnection(db, identity);
    // Touch the tables once so damage in them is found now, not by the first caller.
    readStats(conn);
    conn.selectEntry.get(Buffer.alloc(0));
    return { ok: true, conn };
  } catch (error) {
    try {
      db.close();
    } catch {
      // Already failing; the original error is the one worth reporting.
    }
    return { ok: false, error, identity };
  }
}

/**
 * The database holds response bodies as each token saw them: only the owner may read it, whatever the umask
 * or the mode of an existing directory. (SQLite creates -wal and -shm with the database's mode.)
 */
function restrictToOwner(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      fs.chmodSync(f, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

function ensureSchema(db: Database.Database, file: string): void {
  const version = () => Number(db.pragma('user_version', { simple: true }));
  const found = version();
  if (found === SCHEMA_VERSION) return;
  if (found > SCHEMA_VERSION) {
    // Not corruption: a newer release owns this file (perhaps another process right now). Never move it aside.
    throw new CacheConfigError(
      'cacheDir',
      `${file} has schema version ${found}, newer than the ${SCHEMA_VERSION} this version of github-p2p-cache understands. ` +
        'Upgrade github-p2p-cache, or use a different cacheDir for this version.',
    );
  }
  db.transaction(() => {
    // Checked again under the write lock: another process may have created the schema meanwhile.
    if (version() === SCHEMA_VERSION) return;
    db.exec(SCHEMA_SQL);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

function prepareConnection(db: Database.Database, identity: FileIdentity | undefined): Connection {
  return {
    db,
    identity,
    transaction: db.transaction((fn: () => unknown) => fn()),
    selectEntry: db.prepare<[Buffer], EntryRow>(
      `SELECT e.digest, b.body, e.status, e.headers, e.etag, e.last_modified, e.stored_at, e.expires_at
         FROM entries e JOIN bodies b ON b.digest = e.digest
        WHERE e.key = ?`,
    ),
    selectStats: db.prepare<[], StatsRow>('SELECT entries, bytes FROM stats WHERE id = 1'),
    insertBody: db.prepare<[string, string, number]>(
      'INSERT INTO bodies (digest, body, size, refs) VALUES (?, ?, ?, 0) ON CONFLICT (digest) DO NOTHING',
    ),
    // An upsert, not INSERT OR REPLACE: REPLACE deletes without firing the delete trigger, which would leak a reference.
    upsertEntry: db.prepare(
      `INSERT INTO entries (key, digest, status, headers, etag, last_modified, stored_at, expires_at, last_used, size)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET
         digest = excluded.digest, status = excluded.status, headers = excluded.headers, etag = excluded.etag,
         last_modified = excluded.last_modified, stored_at = excluded.stored_at, expires_at = excluded.expires_at,
         last_used = excluded.last_used, size = excluded.size`,
    ),
    touch: db.prepare<[number, Buffer, number]>('UPDATE entries SET last_used = ? WHERE key = ? AND last_used < ?'),
    refresh: db.prepare<[number, number, Buffer]>('UPDATE entries SET stored_at = ?, expires_at = ? WHERE key = ?'),
    deleteKey: db.prepare<[Buffer]>('DELETE FROM entries WHERE key = ?'),
    deleteRange: db.prepare<[Buffer, Buffer]>('DELETE FROM entries WHERE key >= ? AND key < ?'),
    deleteFrom: db.prepare<[Buffer]>('DELETE FROM entries WHERE key >= ?'),
    deleteAllEntries: db.prepare<[]>('DELETE FROM entries'),
    deleteAllBodies: db.prepare<[]>('DELETE FROM bodies'),
    resetStats: db.prepare<[]>('UPDATE stats SET entries = 0, bytes = 0 WHERE id = 1'),
    // Ties in last_used go to the older insertion (rowid), both served by the last_used index.
    evictOldest: db.prepare<[Buffer]>(
      `DELETE FROM entries WHERE rowid = (
         SELECT rowid FROM entries WHERE key <> ? ORDER BY last_used, rowid LIMIT 1)`,
    ),
  };
}

/**
 * Runs `fn` as one BEGIN IMMEDIATE transaction. IMMEDIATE takes the write lock up front (waiting busy_timeout
 * for it); a deferred transaction that reads first could fail at once with SQLITE_BUSY_SNAPSHOT when another
 * process wrote in between.
 */
function immediate<T>(c: Connection, fn: () => T): T {
  return c.transaction.immediate(fn) as T;
}

function readStats(c: Connection): StatsRow {
  const row = c.selectStats.get();
  if (row === undefined) {
    throw Object.assign(new Error('the stats row of the cache database is missing'), { code: 'SQLITE_CORRUPT' });
  }
  return row;
}

function rowToEntry(row: EntryRow): CacheEntry {
  const entry: { -readonly [K in keyof CacheEntry]: CacheEntry[K] } = {
    body: row.body,
    digest: row.digest,
    storedAt: row.stored_at,
    expiresAt: row.expires_at,
    status: row.status,
    headers: JSON.parse(row.headers) as Record<string, string>,
  };
  // Absent stays absent (no `etag: undefined` key), so an entry reads back exactly as it was written.
  if (row.etag !== null) entry.etag = row.etag;
  if (row.last_modified !== null) entry.lastModified = row.last_modified;
  return entry;
}

/** The key's UTF-16 code units, little-endian: lossless for every JS string, and a prefix of code units is a prefix of bytes. */
function encodeKey(key: string): Buffer {
  return Buffer.from(key, 'utf16le');
}

/** The smallest byte string greater than every string starting with `prefix`, or undefined when none exists. */
function prefixUpperBound(prefix: Buffer): Buffer | undefined {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return undefined;
  const upper = Buffer.from(prefix.subarray(0, end));
  upper[end - 1] = (upper[end - 1] ?? 0) + 1;
  return upper;
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

function isCorruption(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'SQLITE_NOTADB' || (code !== undefined && code.startsWith('SQLITE_CORRUPT'));
}

function fileIdentity(file: string): FileIdentity | undefined {
  try {
    const st = fs.statSync(file);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/**
 * Renames `file` (and its -wal, -shm, -journal) to `file.corrupt-<timestamp>`, keeping the damaged data for a
 * post-mortem. Returns the new name, or undefined when `file` is no longer the one we opened: another process
 * already moved it and made a fresh one, which must not be thrown away.
 */
function moveAside(file: string, identity: FileIdentity | undefined): string | undefined {
  const current = fileIdentity(file);
  if (current === undefined) return undefined;
  if (identity !== undefined && (current.dev !== identity.dev || current.ino !== identity.ino)) return undefined;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let target = `${file}.corrupt-${stamp}`;
  for (let n = 1; fs.existsSync(target); n++) target = `${file}.corrupt-${stamp}-${n}`;
  fs.renameSync(file, target);
  for (const suffix of ['-wal', '-shm', '-journal']) {
    try {
      fs.renameSync(file + suffix, target + suffix);
    } catch (err) {
      // A leftover WAL would be replayed into the fresh database, so only "there is none" is fine here.
      if (errorCode(err) !== 'ENOENT') throw err;
    }
  }
  return target;
}

function warnRecovered(logger: Logger, file: string, cause: unknown, moved: string | undefined): void {
  logger.warn(
    moved === undefined
      ? `The SQLite cache database ${file} was unreadable (${describeError(cause)}); another process already replaced it, using the new one.`
      : `The SQLite cache database ${file} was unreadable (${describeError(cause)}); moved it to ${moved} and started a fresh database. Cached entries were lost; nothing else is affected.`,
  );
}

function unwritableDir(dir: string, err: unknown, what = `cannot create or write the cache directory ${dir}`): CacheError {
  if (err instanceof CacheError) return err;
  const code = errorCode(err);
  const advice =
    code === 'ENOSPC' || code === 'SQLITE_FULL'
      ? 'Free disk space there, choose another cacheDir (option cacheDir or CACHE_DIR)'
      : 'Choose a writable cacheDir (option cacheDir or CACHE_DIR)';
  return new CacheConfigError(
    'cacheDir',
    `${what}: ${describeError(err)}. ${advice}, or set persistence to 'off' to run without the disk tier.`,
    { cause: err },
  );
}

const FAILURE_HINTS: ReadonlyArray<readonly [string, string]> = [
  ['SQLITE_FULL', 'The disk holding the cache directory is full: free space or lower maxBytes.'],
  ['SQLITE_READONLY', 'The database file or its directory is read-only now: make it writable or choose another cacheDir.'],
  ['SQLITE_BUSY', 'Another connection held the database lock longer than the busy timeout: try again.'],
  ['SQLITE_IOERR', 'The operating system reported an I/O error on the cache directory (disk failing, or removed?).'],
  ['SQLITE_CANTOPEN', 'The database file cannot be opened: was the cache directory removed or made unreadable?'],
];

function storeFailure(operation: string, file: string, err: unknown, context?: string): CacheError {
  if (err instanceof CacheError) return err;
  const code = errorCode(err);
  const hint = FAILURE_HINTS.find(([prefix]) => code?.startsWith(prefix))?.[1];
  const message =
    `SQLite store ${operation} failed on ${file}${context === undefined ? '' : ` (${context})`}: ${describeError(err)}.` +
    (hint === undefined ? '' : ` ${hint}`) +
    (operation === 'get' || operation === 'count' || operation === 'bytes' ? '' : ' Nothing was changed; reads still work.');
  return new StoreError(operation, message, { cause: err, sqliteCode: code?.startsWith('SQLITE_') ? code : undefined });
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function describeError(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code === undefined || message.includes(code) ? message : `${code}: ${message}`;
}

/** Keys hold scope ids, never tokens; shortened so an error message stays readable. */
function describeKey(key: string): string {
  return JSON.stringify(key.length > 120 ? `${key.slice(0, 120)}…` : key);
}
