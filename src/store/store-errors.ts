/**
 * Every failure the SQLite store reports is a typed error whose message names the file, says what went wrong
 * and what the user can do about it: `CacheConfigError('cacheDir', …)` while opening, `StoreError` afterwards.
 */
import { CacheConfigError, CacheError } from '../errors.js';

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

/** What to do about a failing operation, by the prefix of SQLite's result code. */
const FAILURE_HINTS: ReadonlyArray<readonly [string, string]> = [
  ['SQLITE_FULL', 'The disk holding the cache directory is full: free space or lower maxBytes.'],
  ['SQLITE_READONLY', 'The database file or its directory is read-only now: make it writable or choose another cacheDir.'],
  ['SQLITE_BUSY', 'Another connection held the database lock longer than the busy timeout: try again.'],
  ['SQLITE_IOERR', 'The operating system reported an I/O error on the cache directory (disk failing, or removed?).'],
  ['SQLITE_CANTOPEN', 'The database file cannot be opened: was the cache directory removed or made unreadable?'],
];

/** Operations that change nothing, so their failure message need not reassure that nothing was changed. */
const READ_OPERATIONS: ReadonlySet<string> = new Set(['get', 'count', 'bytes']);

/** The cache directory or its database cannot be used at open; the caller may run without the disk tier. */
export function unwritableDir(dir: string, err: unknown, what = `cannot create or write the cache directory ${dir}`): CacheError {
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

/** An operation on an open store failed; the store stays usable. `context` says what the store was doing. */
export function storeFailure(operation: string, file: string, err: unknown, context?: string): CacheError {
  if (err instanceof CacheError) return err;
  const code = errorCode(err);
  const hint = FAILURE_HINTS.find(([prefix]) => code?.startsWith(prefix))?.[1];
  const message =
    `SQLite store ${operation} failed on ${file}${context === undefined ? '' : ` (${context})`}: ${describeError(err)}.` +
    (hint === undefined ? '' : ` ${hint}`) +
    (READ_OPERATIONS.has(operation) ? '' : ' Nothing was changed; reads still work.');
  return new StoreError(operation, message, { cause: err, sqliteCode: code?.startsWith('SQLITE_') ? code : undefined });
}

export function storeClosed(operation: string, file: string): StoreError {
  return new StoreError(operation, `Cannot ${operation}: the SQLite store ${file} is closed. Open a new one with SqliteStore.open().`);
}

/** Bodies are shared by digest, so an entry whose digest does not match its body is refused outright. */
export function digestMismatch(key: string, claimed: string, actual: string): StoreError {
  return new StoreError(
    'set',
    `Cannot store key ${describeKey(key)}: its digest ${JSON.stringify(claimed)} is not the sha256 of its body ` +
      `(${actual}). Build entries with sha256Hex(body).`,
  );
}

/** A stored body no longer matches its digest (the file was altered on disk): the entry was dropped. */
export function alteredBody(file: string, key: string): StoreError {
  return new StoreError(
    'get',
    `The body of key ${describeKey(key)} in ${file} does not match its sha256 (the file was altered on disk): ` +
      'the entry was dropped and is fetched again. Check the disk and whatever else writes to this file.',
  );
}

/** The `code` of a Node.js or SQLite error (`ENOENT`, `SQLITE_BUSY`, …), if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

export function describeError(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code === undefined || message.includes(code) ? message : `${code}: ${message}`;
}

/** Keys hold scope ids, never tokens; shortened so an error message stays readable. */
export function describeKey(key: string): string {
  return JSON.stringify(key.length > 120 ? `${key.slice(0, 120)}…` : key);
}
