/**
 * A corrupt or foreign database file, found at open or by a later query, is moved aside to
 * `cache.sqlite.corrupt-<timestamp>` (with its -wal/-shm/-journal) under a warning naming it and replaced by a
 * fresh database, on which the failed operation runs once more; a fresh file another process already made is
 * never moved. Opening waits up to the busy timeout for other connections (another process creating the same
 * database at the same moment), as writes do.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { ensureSchema, prepareStatements, readStats, type Statements } from './schema.js';
import { describeError, errorCode, storeClosed, storeFailure, unwritableDir } from './store-errors.js';

export const DATABASE_FILE = 'cache.sqlite';

/** Which file a connection opened, so recovery never moves aside a fresh database another process already made. */
interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

/** One open database with its statements, prepared once. Replaced wholesale when a corrupt file is recovered. */
export interface Connection extends Statements {
  readonly db: Database.Database;
  readonly identity: FileIdentity | undefined;
  /** Runs `fn` in a BEGIN IMMEDIATE transaction (use `.immediate(fn)`); made once, not per call. */
  readonly transaction: Database.Transaction<(fn: () => unknown) => unknown>;
}

/** A database just opened: its file and a connection to it. */
export interface OpenedDatabase {
  readonly file: string;
  readonly conn: Connection;
}

type OpenAttempt =
  | { readonly ok: true; readonly conn: Connection }
  | { readonly ok: false; readonly error: unknown; readonly identity: FileIdentity | undefined };

export interface ConnectionOptions {
  readonly busyTimeoutMs: number;
  readonly logger: Logger;
}

/**
 * Opens (creating when missing) `<dir>/cache.sqlite`, replacing a corrupt one with a warning. Throws
 * CacheConfigError with option `cacheDir` when the directory or database cannot be created or written.
 */
export function openDatabase(dir: string, options: ConnectionOptions): OpenedDatabase {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!fs.statSync(dir).isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw unwritableDir(dir, err);
  }
  const file = path.join(dir, DATABASE_FILE);
  let attempt = tryOpenConnection(file, options.busyTimeoutMs);
  if (!attempt.ok && isCorruption(attempt.error)) {
    let moved: string | undefined;
    try {
      moved = moveAside(file, attempt.identity);
    } catch (err) {
      throw unwritableDir(dir, err, `the database ${file} is corrupt and could not be moved aside`);
    }
    warnRecovered(options.logger, file, attempt.error, moved);
    attempt = tryOpenConnection(file, options.busyTimeoutMs);
  }
  if (!attempt.ok) throw unwritableDir(dir, attempt.error, `cannot open the SQLite database ${file}`);
  return { file, conn: attempt.conn };
}

/** The connection a store works through: reopened after a failed recovery, replaced when its file turns out corrupt. */
export class RecoveringConnection {
  /** The database file. */
  readonly file: string;
  readonly #busyTimeoutMs: number;
  readonly #logger: Logger;
  /** Told when a corrupt database was replaced, so state about the old file (pending recency) is dropped. */
  readonly #onReplaced: () => void;
  /** undefined after close, or after a failed recovery (the next call tries to reopen). */
  #conn: Connection | undefined;
  #closed = false;

  constructor(opened: OpenedDatabase, options: ConnectionOptions & { onReplaced: () => void }) {
    this.file = opened.file;
    this.#conn = opened.conn;
    this.#busyTimeoutMs = options.busyTimeoutMs;
    this.#logger = options.logger;
    this.#onReplaced = options.onReplaced;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The open connection, reopening after a failed recovery; throws StoreError when closed or unavailable. */
  current(operation: string): Connection {
    if (this.#closed) throw storeClosed(operation, this.file);
    if (this.#conn !== undefined) return this.#conn;
    const attempt = tryOpenConnection(this.file, this.#busyTimeoutMs);
    if (!attempt.ok) throw storeFailure(operation, this.file, attempt.error, 'the database could not be reopened');
    this.#conn = attempt.conn;
    return this.#conn;
  }

  /**
   * Runs one operation. Corruption found now (not at open) is recovered like at open, then the operation runs
   * once more on the fresh database; any other failure becomes a StoreError and leaves the store usable.
   */
  run<T>(operation: string, body: (c: Connection) => T): T {
    const c = this.current(operation);
    try {
      return body(c);
    } catch (err) {
      if (!isCorruption(err)) throw storeFailure(operation, this.file, err);
      const fresh = this.#recover(operation, c, err);
      try {
        return body(fresh);
      } catch (again) {
        throw storeFailure(operation, this.file, again);
      }
    }
  }

  /** Closes for good. `beforeClose` gets the open connection (undefined if there is none) for a last write. Idempotent. */
  close(beforeClose: (c: Connection | undefined) => void): void {
    if (this.#closed) return;
    this.#closed = true;
    const c = this.#conn;
    this.#conn = undefined;
    beforeClose(c);
    if (c === undefined) return;
    try {
      c.db.close();
    } catch (err) {
      this.#logger.debug(`closing ${this.file} failed: ${describeError(err)}`);
    }
  }

  #recover(operation: string, c: Connection, cause: unknown): Connection {
    this.#conn = undefined;
    this.#onReplaced();
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
    warnRecovered(this.#logger, this.file, cause, moved);
    return this.current(operation);
  }
}

/**
 * Runs `fn` as one BEGIN IMMEDIATE transaction. IMMEDIATE takes the write lock up front (waiting busy_timeout
 * for it); a deferred transaction that reads first could fail at once with SQLITE_BUSY_SNAPSHOT when another
 * process wrote in between.
 */
export function immediate<T>(c: Connection, fn: () => T): T {
  return c.transaction.immediate(fn) as T;
}

function isCorruption(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'SQLITE_NOTADB' || (code !== undefined && code.startsWith('SQLITE_CORRUPT'));
}

/**
 * Opens the file, waiting up to `busyTimeoutMs` while another connection holds a lock it needs. SQLite's busy
 * handler covers most of that wait, but not all: a connection that read the header of a new database and then
 * asks to turn it to WAL (or to create the schema) while another does the same gets SQLITE_BUSY at once, since
 * SQLite calls no busy handler when a read wants to become a write. Two processes starting on one cacheDir hit
 * exactly that, so the whole open starts over after a short sleep until the timeout has passed.
 */
function tryOpenConnection(file: string, busyTimeoutMs: number): OpenAttempt {
  const deadline = performance.now() + busyTimeoutMs;
  for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
    const attempt = tryOpenConnectionOnce(file, busyTimeoutMs);
    if (attempt.ok || !errorCode(attempt.error)?.startsWith('SQLITE_BUSY')) return attempt;
    const left = deadline - performance.now();
    if (left <= 0) return attempt;
    sleepSync(Math.min(pause, left));
  }
}

/** Blocks the thread: an open is synchronous, and already waits this way inside SQLite's busy handler. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function tryOpenConnectionOnce(file: string, busyTimeoutMs: number): OpenAttempt {
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
    // When the WAL starts over (checkpointer.ts), its file is cut back to this size rather than kept at its peak.
    db.pragma('journal_size_limit = 67108864');
    ensureSchema(db, file);
    restrictToOwner(file);
    const conn: Connection = {
      db,
      identity,
      transaction: db.transaction((fn: () => unknown) => fn()),
      ...prepareStatements(db),
    };
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
