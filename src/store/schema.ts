/**
 * The on-disk format, schema version 1 (PRAGMA user_version): created when missing, never rewritten once
 * present, and refused (never touched) when a newer release wrote it; its triggers keep body reference counts
 * and the one-row `stats` table exact whatever statement changes `entries`.
 */
import type Database from 'better-sqlite3';
import type { CacheEntry } from '../cache/entry.js';
import { shareHeaderValues } from '../cache/header-values.js';
import { CacheConfigError } from '../errors.js';

/** The schema this code reads and writes, kept in PRAGMA user_version. */
export const SCHEMA_VERSION = 1;

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

export interface EntryRow {
  digest: string;
  /** A BLOB since bodies became bytes; TEXT in rows written before (read back as its UTF-8 bytes, which is what it was). */
  body: Buffer | string;
  status: number;
  headers: string;
  etag: string | null;
  last_modified: string | null;
  stored_at: number;
  expires_at: number;
}

export interface StatsRow {
  entries: number;
  bytes: number;
}

/** Every statement the store runs, prepared once per connection. */
export interface Statements {
  readonly selectEntry: Database.Statement<[Buffer], EntryRow>;
  readonly selectStats: Database.Statement<[], StatsRow>;
  readonly insertBody: Database.Statement<[string, Buffer, number]>;
  readonly upsertEntry: Database.Statement<
    [Buffer, string, number, string, string | null, string | null, number, number, number, number]
  >;
  readonly touch: Database.Statement<[number, Buffer, number]>;
  readonly refresh: Database.Statement<[number, number, Buffer]>;
  readonly deleteKey: Database.Statement<[Buffer]>;
  readonly deleteRange: Database.Statement<[Buffer, Buffer]>;
  readonly deleteFrom: Database.Statement<[Buffer]>;
  readonly selectKeysRange: Database.Statement<[Buffer, Buffer], { key: Buffer }>;
  readonly selectKeysFrom: Database.Statement<[Buffer], { key: Buffer }>;
  readonly deleteAllEntries: Database.Statement<[]>;
  readonly deleteAllBodies: Database.Statement<[]>;
  readonly resetStats: Database.Statement<[]>;
  readonly selectOldest: Database.Statement<[Buffer, number], { rowid: number; key: Buffer }>;
  readonly deleteRowid: Database.Statement<[number]>;
}

/**
 * Brings `db` to SCHEMA_VERSION, creating the tables when the file is new. Throws CacheConfigError (not a
 * corruption error, so the file is never moved aside) when a newer release owns the file.
 */
export function ensureSchema(db: Database.Database, file: string): void {
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

export function prepareStatements(db: Database.Database): Statements {
  return {
    selectEntry: db.prepare<[Buffer], EntryRow>(
      `SELECT e.digest, b.body, e.status, e.headers, e.etag, e.last_modified, e.stored_at, e.expires_at
         FROM entries e JOIN bodies b ON b.digest = e.digest
        WHERE e.key = ?`,
    ),
    selectStats: db.prepare<[], StatsRow>('SELECT entries, bytes FROM stats WHERE id = 1'),
    insertBody: db.prepare<[string, Buffer, number]>(
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
    selectKeysRange: db.prepare<[Buffer, Buffer], { key: Buffer }>('SELECT key FROM entries WHERE key >= ? AND key < ?'),
    selectKeysFrom: db.prepare<[Buffer], { key: Buffer }>('SELECT key FROM entries WHERE key >= ?'),
    deleteAllEntries: db.prepare<[]>('DELETE FROM entries'),
    deleteAllBodies: db.prepare<[]>('DELETE FROM bodies'),
    resetStats: db.prepare<[]>('UPDATE stats SET entries = 0, bytes = 0 WHERE id = 1'),
    // Ties in last_used go to the older insertion (rowid), both served by the last_used index.
    // The `n` oldest, for an eviction batch.
    selectOldest: db.prepare<[Buffer, number], { rowid: number; key: Buffer }>(
      'SELECT rowid, key FROM entries WHERE key <> ? ORDER BY last_used, rowid LIMIT ?',
    ),
    deleteRowid: db.prepare<[number]>('DELETE FROM entries WHERE rowid = ?'),
  };
}

/** The exact counters; a missing row is damage, reported with a corruption code so the store recovers. */
export function readStats(statements: Pick<Statements, 'selectStats'>): StatsRow {
  const row = statements.selectStats.get();
  if (row === undefined) {
    throw Object.assign(new Error('the stats row of the cache database is missing'), { code: 'SQLITE_CORRUPT' });
  }
  return row;
}

export function rowToEntry(row: EntryRow): CacheEntry {
  const entry: { -readonly [K in keyof CacheEntry]: CacheEntry[K] } = {
    body: typeof row.body === 'string' ? Buffer.from(row.body, 'utf8') : row.body,
    digest: row.digest,
    storedAt: row.stored_at,
    expiresAt: row.expires_at,
    status: row.status,
    headers: shareHeaderValues(JSON.parse(row.headers) as Record<string, string>),
  };
  // Absent stays absent (no `etag: undefined` key), so an entry reads back exactly as it was written.
  if (row.etag !== null) entry.etag = row.etag;
  if (row.last_modified !== null) entry.lastModified = row.last_modified;
  return entry;
}

/** The key's UTF-16 code units, little-endian: lossless for every JS string, and a prefix of code units is a prefix of bytes. */
export function encodeKey(key: string): Buffer {
  return Buffer.from(key, 'utf16le');
}

/** The key `encodeKey` encoded. */
export function decodeKey(encoded: Buffer): string {
  return encoded.toString('utf16le');
}

/** The smallest byte string greater than every string starting with `prefix`, or undefined when none exists. */
export function prefixUpperBound(prefix: Buffer): Buffer | undefined {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return undefined;
  const upper = Buffer.from(prefix.subarray(0, end));
  upper[end - 1] = (upper[end - 1] ?? 0) + 1;
  return upper;
}
