/**
 * undici's SqliteCacheStore requires `node:sqlite`, which a Node before 22.13 does not load without a flag. For
 * the benchmarks that run it (store, miss) this plays `node:sqlite`'s DatabaseSync with better-sqlite3 when the
 * builtin is missing, so they run on every Node the package supports. Guarantee: with the builtin present nothing
 * is changed; without it, only `require('node:sqlite')` is answered, by a DatabaseSync over better-sqlite3.
 */
import Module, { createRequire } from 'node:module';

/** Makes `node:sqlite` loadable; returns what undici's store runs on, for the benchmark's table. */
export function shimNodeSqlite(): string {
  const require = createRequire(import.meta.url);
  const builtin = (process as unknown as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  if (builtin?.('node:sqlite') !== undefined) return 'node:sqlite';
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  class DatabaseSync {
    readonly #db: import('better-sqlite3').Database;
    constructor(location: string) {
      this.#db = new Database(location);
    }
    exec(sql: string): void {
      this.#db.exec(sql);
    }
    prepare(sql: string): unknown {
      return this.#db.prepare(sql);
    }
    close(): void {
      this.#db.close();
    }
  }
  const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const original = loader._load;
  loader._load = function (request: string, ...rest: unknown[]) {
    if (request === 'node:sqlite') return { DatabaseSync };
    return original.call(this, request, ...rest);
  };
  return 'its code over better-sqlite3 (no node:sqlite in this Node)';
}
