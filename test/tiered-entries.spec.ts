import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { LRUCache } from 'lru-cache';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import type { EntryStore } from '../src/cache/entry-store.js';
import { TieredEntries, type TieredEntriesCounters } from '../src/cache/tiered-entries.js';
import { SqliteStore } from '../src/store/sqlite-store.js';
import { RecordingLogger } from '../support/recording-logger.js';
import { makeTempDir } from '../support/temp-dir.js';

/** An entry's body as UTF-8 text (undefined when there is no entry). */
function text(body: Uint8Array | undefined): string | undefined {
  return body === undefined ? undefined : Buffer.from(body).toString('utf8');
}

function entry(body: string, extra: Partial<Omit<CacheEntry, 'body' | 'digest'>> = {}): CacheEntry {
  return { body: Buffer.from(body), digest: sha256Hex(body), storedAt: 1_000, expiresAt: 61_000, status: 200, headers: {}, ...extra };
}

type StoreMethod = keyof EntryStore;

/** A store whose every listed method throws, as a full disk or a removed directory would; records each call. */
class ThrowingStore implements EntryStore {
  readonly calls: StoreMethod[] = [];
  readonly #failing: ReadonlySet<StoreMethod>;
  constructor(failing: readonly StoreMethod[]) {
    this.#failing = new Set(failing);
  }
  #call<T>(method: StoreMethod, value: T): T {
    this.calls.push(method);
    if (this.#failing.has(method)) throw new Error(`store ${method} failed (disk full)`);
    return value;
  }
  get(): CacheEntry | undefined {
    return this.#call('get', undefined);
  }
  touch(): void {
    this.#call('touch', undefined);
  }
  set(): number {
    return this.#call('set', 0);
  }
  refresh(): boolean {
    return this.#call('refresh', false);
  }
  delete(): boolean {
    return this.#call('delete', false);
  }
  deleteByPrefix(): number {
    return this.#call('deleteByPrefix', 0);
  }
  keysWithPrefix(): string[] {
    return this.#call('keysWithPrefix', []);
  }
  clear(): void {
    this.#call('clear', undefined);
  }
  count(): number {
    return this.#call('count', 0);
  }
  bytes(): number {
    return this.#call('bytes', 0);
  }
  close(): void {
    this.#call('close', undefined);
  }
}

const ALL_METHODS: readonly StoreMethod[] = [
  'get', 'touch', 'set', 'refresh', 'delete', 'deleteByPrefix', 'keysWithPrefix', 'clear', 'count', 'bytes', 'close',
];

/** Counts lru-cache `get` calls (the memory tier's lookups) until restored. */
function countingLruGets(): { count: number; restore(): void } {
  const proto = LRUCache.prototype as unknown as { get: (...args: unknown[]) => unknown };
  const original = proto.get;
  const counter = {
    count: 0,
    restore: () => {
      proto.get = original;
    },
  };
  proto.get = function (this: unknown, ...args: unknown[]) {
    counter.count++;
    return original.apply(this, args);
  };
  return counter;
}

describe('TieredEntries', () => {
  let logger: RecordingLogger;
  let counters: TieredEntriesCounters;
  let temp: { dir: string; cleanup: () => void };
  const toClose: Array<{ close(): void }> = [];

  function openStore(bounds: { maxEntries?: number; maxBytes?: number } = {}): SqliteStore {
    const store = SqliteStore.open({ dir: temp.dir, maxEntries: 1000, maxBytes: 1_000_000, logger, ...bounds });
    toClose.push(store);
    return store;
  }

  function tiers(store: EntryStore | undefined, maxEntries = 100, maxParsedValues?: number): TieredEntries {
    const made = new TieredEntries({ maxEntries, store, logger, counters, maxParsedValues });
    toClose.push(made);
    return made;
  }

  beforeEach(() => {
    logger = new RecordingLogger();
    counters = { evictions: 0, persistenceErrors: 0 };
    temp = makeTempDir('tiered-entries-spec-');
  });

  afterEach(() => {
    for (const closable of toClose.splice(0).reverse()) closable.close();
    temp.cleanup();
  });

  describe('memory only', () => {
    it('reads back what was written, from memory', () => {
      const t = tiers(undefined);
      const e = entry('{"a":1}', { etag: '"v1"' });
      t.write('k', e);
      expect(t.persistent).to.equal(false);
      const found = t.read('k');
      expect(found?.tier).to.equal('memory');
      expect(found?.entry).to.deep.equal(e);
      expect(t.read('absent')).to.equal(undefined);
    });

    it('keeps at most maxEntries, evicting the least recently used and counting it', () => {
      const t = tiers(undefined, 2);
      t.write('a', entry('a'));
      t.write('b', entry('b'));
      t.read('a');
      t.write('c', entry('c'));
      expect(t.read('b')).to.equal(undefined);
      expect(text(t.read('a')?.entry.body)).to.equal('a');
      expect(text(t.read('c')?.entry.body)).to.equal('c');
      expect(counters.evictions).to.equal(1);
      expect(t.size()).to.equal(2);
    });

    it('overwriting a key evicts no other', () => {
      const t = tiers(undefined, 2);
      t.write('a', entry('a'));
      t.write('b', entry('b'));
      t.write('a', entry('a, again'));
      expect(text(t.read('a')?.entry.body)).to.equal('a, again');
      expect(text(t.read('b')?.entry.body)).to.equal('b');
      expect(counters.evictions).to.equal(0);
    });

    it('parses a memory item once and hands back the same value', () => {
      const t = tiers(undefined);
      t.write('k', entry('{"n":1}'));
      let parses = 0;
      const parse = (body: Uint8Array): unknown => {
        parses++;
        return JSON.parse(Buffer.from(body).toString('utf8'));
      };
      const first = t.parsed(t.read('k')!.item, parse);
      const second = t.parsed(t.read('k')!.item, parse);
      expect(first).to.deep.equal({ n: 1 });
      expect(second).to.equal(first);
      expect(parses).to.equal(1);
    });

    it('keeps the parsed value of the maxParsedValues items read most recently only; the others parse again', () => {
      const t = tiers(undefined, 100, 2);
      for (const k of ['a', 'b', 'c']) t.write(k, entry(`{"k":"${k}"}`));
      const parses: string[] = [];
      const parse = (body: Uint8Array): unknown => {
        const value = JSON.parse(Buffer.from(body).toString('utf8')) as { k: string };
        parses.push(value.k);
        return value;
      };
      const read = (k: string) => t.parsed(t.read(k)!.item, parse);
      read('a');
      read('b');
      read('a'); // a is the most recently read now: c pushes b out, not a
      read('c');
      expect(t.read('b')!.item.parsed, 'b dropped its parsed value').to.equal(undefined);
      expect(t.read('a')!.item.parsed, 'a kept it').to.not.equal(undefined);
      expect(read('b')).to.deep.equal({ k: 'b' });
      expect(parses).to.deep.equal(['a', 'b', 'c', 'b']);
      expect(t.read('b')!.entry.body.byteLength, 'the bytes stay').to.be.greaterThan(0);
    });

    it('keeps no parsed value with maxParsedValues 0', () => {
      const t = tiers(undefined, 100, 0);
      t.write('k', entry('{"n":1}'));
      let parses = 0;
      const parse = (body: Uint8Array): unknown => {
        parses++;
        return JSON.parse(Buffer.from(body).toString('utf8'));
      };
      t.parsed(t.read('k')!.item, parse);
      t.parsed(t.read('k')!.item, parse);
      expect(parses).to.equal(2);
      expect(t.read('k')!.item.parsed).to.equal(undefined);
    });
    it('looks in memory once for a key it lacks when read twice in one run (a peer hit\'s two looks), again after the turn or a write', async () => {
      const t = tiers(undefined);
      const memoryGets = countingLruGets();
      try {
        expect(t.read('absent')).to.equal(undefined);
        expect(t.read('absent')).to.equal(undefined);
        expect(memoryGets.count).to.equal(1);
        // A write in the same run is seen at once.
        t.write('absent', entry('now here'));
        expect(text(t.read('absent')?.entry.body)).to.equal('now here');
        expect(memoryGets.count).to.equal(2);
        expect(t.read('other')).to.equal(undefined);
        await Promise.resolve();
        expect(t.read('other')).to.equal(undefined);
        expect(memoryGets.count).to.equal(4);
      } finally {
        memoryGets.restore();
      }
    });
  });

  describe('over a SQLite store', () => {
    it('a write reaches both tiers: a fresh memory tier over the same store reads it from disk', () => {
      const store = openStore();
      const e = entry('persisted', { status: 201, headers: { 'x-a': 'b' }, lastModified: 'yesterday' });
      tiers(store).write('k', e);
      expect(store.get('k')).to.deep.equal(e);

      const cold = tiers(store);
      expect(cold.persistent).to.equal(true);
      const found = cold.read('k');
      expect(found?.tier).to.equal('disk');
      expect(found?.entry).to.deep.equal(e);
    });

    it('a read promotes what the store had into memory', () => {
      const store = openStore();
      store.set('k', entry('from disk'));
      const t = tiers(store);
      expect(t.memorySize).to.equal(0);
      expect(t.read('k')?.tier).to.equal('disk');
      expect(t.memorySize).to.equal(1);
      // Served from memory now, even once the store no longer has it.
      store.delete('k');
      expect(t.read('k')?.tier).to.equal('memory');
    });

    it('asks the store once for a key it lacks when read twice in one run (a miss\'s two looks), again after the turn or a write', async () => {
      const store = new ThrowingStore([]);
      const t = tiers(store);
      expect(t.read('absent')).to.equal(undefined);
      expect(t.read('absent')).to.equal(undefined);
      expect(store.calls.filter((c) => c === 'get')).to.have.length(1);
      await Promise.resolve();
      expect(t.read('absent')).to.equal(undefined);
      expect(store.calls.filter((c) => c === 'get')).to.have.length(2);
      // Another key, and the same key after any change of the tiers, are asked for again.
      expect(t.read('other')).to.equal(undefined);
      expect(t.read('absent')).to.equal(undefined);
      t.delete('unrelated');
      expect(t.read('other')).to.equal(undefined);
      expect(store.calls.filter((c) => c === 'get')).to.have.length(5);
    });

    it('sees a write by another store on the same file made between two turns, after a read found nothing', async () => {
      const store = openStore();
      const t = tiers(store);
      expect(t.read('k')).to.equal(undefined);
      const other = openStore();
      other.set('k', entry('written elsewhere'));
      other.flush();
      await new Promise((resolve) => setImmediate(resolve));
      expect(text(t.read('k')?.entry.body)).to.equal('written elsewhere');
    });

    it('counts the store\'s evictions, not memory\'s (leaving memory is not leaving the cache)', () => {
      const store = openStore({ maxEntries: 3 });
      const t = tiers(store, 2);
      for (const key of ['a', 'b', 'c']) t.write(key, entry(key));
      // Memory dropped `a`, but the store still has it.
      expect(counters.evictions).to.equal(0);
      expect(t.read('a')?.tier).to.equal('disk');
      t.write('d', entry('d'));
      // Counted when the write commits (at the end of the turn, or when asked to count, as here).
      expect(store.count()).to.equal(3);
      expect(counters.evictions).to.equal(1);
    });

    it('refresh updates freshness in both tiers and keeps the body', () => {
      const store = openStore();
      const t = tiers(store);
      t.write('k', entry('body', { etag: '"e"' }));
      const refreshed = t.refresh('k', 5_000, 65_000);
      expect(refreshed).to.deep.equal(entry('body', { etag: '"e"', storedAt: 5_000, expiresAt: 65_000 }));
      expect(t.read('k')?.entry).to.deep.equal(refreshed);
      expect(store.get('k')).to.deep.equal(refreshed);
      expect(t.refresh('absent', 5_000, 65_000)).to.equal(undefined);
    });

    it('delete reports whether either tier held the key', () => {
      const store = openStore();
      const t = tiers(store);
      t.write('both', entry('1'));
      store.set('disk-only', entry('2'));
      expect(t.delete('both')).to.equal(true);
      expect(t.delete('disk-only')).to.equal(true);
      expect(t.delete('both')).to.equal(false);
      expect(t.delete('never')).to.equal(false);
      expect(t.read('both')).to.equal(undefined);
      expect(t.read('disk-only')).to.equal(undefined);
      expect(store.count()).to.equal(0);
    });

    it('deleteByPrefix counts each key once, whichever tiers held it', () => {
      const store = openStore();
      const t = tiers(store);
      t.write('p/in-both-1', entry('1'));
      t.write('p/in-both-2', entry('2'));
      store.set('p/disk-only', entry('3'));
      t.write('q/other', entry('4'));

      expect(t.deleteByPrefix('p/')).to.equal(3);
      for (const key of ['p/in-both-1', 'p/in-both-2', 'p/disk-only']) expect(t.read(key), key).to.equal(undefined);
      expect(text(t.read('q/other')?.entry.body)).to.equal('4');
      expect(store.count()).to.equal(1);
      expect(t.deleteByPrefix('p/')).to.equal(0);
    });

    it('deleteByPrefixWhere deletes the matching keys of both tiers in one store call, each counted once', () => {
      const store = openStore();
      const calls: string[] = [];
      // The real store, its method calls recorded.
      const spied = new Proxy(store, {
        get(target, prop) {
          const value: unknown = Reflect.get(target, prop, target);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.push(String(prop));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const t = tiers(spied, 3);
      for (const key of ['p:a:1', 'p:b:2', 'p:a:3', 'p:a:4', 'p:b:5', 'q:a:6']) t.write(key, entry(key));
      // Memory holds the last three; p:a:1 and p:a:3 are only on disk.
      expect(t.memorySize).to.equal(3);
      calls.length = 0;
      expect(t.deleteByPrefixWhere('p:', (key) => key.includes(':a:'))).to.equal(3);
      expect(calls.filter((name) => name === 'delete' || name === 'deleteKeys')).to.deep.equal(['deleteKeys']);
      for (const key of ['p:a:1', 'p:a:3', 'p:a:4']) expect(t.read(key), key).to.equal(undefined);
      for (const key of ['p:b:2', 'p:b:5', 'q:a:6']) expect(t.read(key), key).to.not.equal(undefined);
      expect(t.size()).to.equal(3);
    });

    it('size is the store\'s count, which holds entries memory does not', () => {
      const store = openStore();
      const t = tiers(store);
      t.write('a', entry('a'));
      for (const key of ['b', 'c', 'd']) store.set(key, entry(key));
      expect(t.memorySize).to.equal(1);
      expect(t.size()).to.equal(4);
      expect(t.diskBytes()).to.equal(4);
    });

    it('clear empties both tiers', () => {
      const store = openStore();
      const t = tiers(store);
      t.write('a', entry('a'));
      store.set('b', entry('b'));
      t.clear();
      expect(t.memorySize).to.equal(0);
      expect(store.count()).to.equal(0);
      expect(t.size()).to.equal(0);
    });

    it('close closes the store, and a second close is harmless', () => {
      const store = openStore();
      const t = tiers(store);
      t.write('k', entry('v'));
      t.close();
      expect(() => store.count()).to.throw(/is closed/);
      expect(t.persistent).to.equal(false);
      expect(() => t.close()).to.not.throw();
      expect(logger.warnings).to.deep.equal([]);
    });
  });

  describe('one budget across the tiers', () => {
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    const answering = (t: TieredEntries, keys: readonly string[]) => keys.filter((key) => t.read(key) !== undefined);

    it('a key the store evicts for maxBytes stops answering from memory too; size, answers and a restart agree', async () => {
      const store = openStore({ maxEntries: 100, maxBytes: 30 });
      counters = { evictions: 0, persistenceErrors: 0, evictedForBytes: 0 };
      const t = tiers(store);
      const keys = ['a', 'b', 'c', 'd', 'e'];
      for (const key of keys) {
        t.write(key, entry(key.repeat(10)));
        await turn();
      }
      // Memory alone could hold all five; the budget (30 bytes of bodies) keeps three.
      expect(answering(t, keys)).to.deep.equal(['c', 'd', 'e']);
      expect(t.size()).to.equal(3);
      expect(t.diskBytes()).to.equal(30);
      expect(counters.evictions).to.equal(2);
      expect(counters.evictedForBytes).to.equal(2);
      // Logged once, naming the option to raise, though it happened twice.
      expect(logger.warnings).to.have.length(1);
      expect(logger.warnings[0]).to.match(/evicted 1 entry to stay within maxBytes.*Raise maxBytes/);
      const restarted = tiers(store);
      expect(answering(restarted, keys)).to.deep.equal(['c', 'd', 'e']);
    });

    it('size counts the keys only memory holds because their write to the store failed', async () => {
      const store = SqliteStore.open({ dir: temp.dir, maxEntries: 1000, maxBytes: 1_000_000, logger, busyTimeoutMs: 0 });
      toClose.push(store);
      store.set('a', entry('a'));
      store.set('b', entry('b'));
      expect(store.count()).to.equal(2);
      const t = tiers(store);
      const other = new Database(path.join(temp.dir, 'cache.sqlite'));
      try {
        other.exec('BEGIN IMMEDIATE');
        for (const key of ['x', 'y', 'z']) t.write(key, entry(key));
        await turn();
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
      expect(counters.persistenceErrors).to.equal(3);
      // Two keys on disk only, three in memory only: five answer.
      expect(t.size()).to.equal(5);
      expect(answering(t, ['a', 'b', 'x', 'y', 'z'])).to.deep.equal(['a', 'b', 'x', 'y', 'z']);
      expect(t.size()).to.equal(5);
      // Refreshed in memory only (the store does not have it), it still answers and still counts.
      expect(t.refresh('y', 5_000, 65_000)?.expiresAt).to.equal(65_000);
      expect(t.size()).to.equal(5);
      t.delete('x');
      expect(t.size()).to.equal(4);
      // Written again, now to the store: counted once, by the store.
      t.write('z', entry('z again'));
      expect(t.size()).to.equal(4);
    });

    it('a write still pending in the store answers once memory evicted it', () => {
      const store = openStore();
      const t = tiers(store, 1);
      t.write('a', entry('first'));
      t.write('b', entry('second'));
      expect(t.memorySize).to.equal(1);
      const found = t.read('a');
      expect(found?.tier).to.equal('disk');
      expect(text(found?.entry.body)).to.equal('first');
    });
  });

  describe('when the store fails', () => {
    it('a write still reaches memory; each failure is counted and the first one warned about', () => {
      const store = new ThrowingStore(['set']);
      const t = tiers(store);
      t.write('a', entry('a'));
      t.write('b', entry('b'));
      expect(text(t.read('a')?.entry.body)).to.equal('a');
      expect(t.read('b')?.tier).to.equal('memory');
      expect(store.calls.filter((call) => call === 'set')).to.have.length(2);
      expect(counters.persistenceErrors).to.equal(2);
      expect(logger.warnings).to.have.length(1);
      expect(logger.warnings[0]).to.match(/memory tier keeps working/);
    });

    it('a failing store read is a miss, counted, not an error', () => {
      const t = tiers(new ThrowingStore(['get']));
      expect(t.read('k')).to.equal(undefined);
      expect(counters.persistenceErrors).to.equal(1);
    });

    it('refresh, delete, deleteByPrefix and clear still act on memory, counting each store failure', () => {
      const store = new ThrowingStore(['set', 'refresh', 'delete', 'deleteByPrefix', 'clear']);
      const t = tiers(store);
      t.write('k', entry('v'));
      expect(t.refresh('k', 5_000, 65_000)?.expiresAt).to.equal(65_000);
      expect(t.read('k')?.entry.expiresAt).to.equal(65_000);
      expect(t.delete('k')).to.equal(true);
      expect(t.read('k')).to.equal(undefined);

      t.write('p/1', entry('1'));
      t.write('p/2', entry('2'));
      // Counted once per key memory held, though the store's per-key and prefix deletes all failed.
      expect(t.deleteByPrefix('p/')).to.equal(2);
      expect(t.memorySize).to.equal(0);

      t.write('c', entry('c'));
      t.clear();
      expect(t.memorySize).to.equal(0);
      // set ×4, refresh, delete, delete ×2 (one per memory key under p/), deleteByPrefix, clear.
      expect(counters.persistenceErrors).to.equal(10);
      expect(logger.warnings).to.have.length(1);
    });

    it('size falls back to memory and diskBytes to undefined when the store cannot count', () => {
      const t = tiers(new ThrowingStore(['set', 'count', 'bytes']));
      t.write('a', entry('a'));
      t.write('b', entry('b'));
      expect(t.size()).to.equal(2);
      expect(t.diskBytes()).to.equal(undefined);
    });

    it('a memory hit marks the key recently used in the store', () => {
      const store = new ThrowingStore([]);
      const t = tiers(store);
      t.write('k', entry('v'));
      t.read('k');
      expect(store.calls).to.deep.equal(['set', 'touch']);
    });

    it('close calls the store\'s close once, and a failing close only warns', () => {
      const store = new ThrowingStore(ALL_METHODS);
      const t = tiers(store);
      expect(() => t.close()).to.not.throw();
      expect(() => t.close()).to.not.throw();
      expect(store.calls).to.deep.equal(['close']);
      expect(logger.warnings).to.have.length(1);
      expect(logger.warnings[0]).to.match(/closing the SQLite store failed/);
    });
  });
});
