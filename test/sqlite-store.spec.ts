import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import { CacheConfigError } from '../src/errors.js';
import { SqliteStore, StoreError, type SqliteStoreOptions } from '../src/store/sqlite-store.js';

import { RecordingLogger } from '../support/recording-logger.js';
import { waitFor } from '../support/wait.js';

/** An entry's body as UTF-8 text (undefined when there is no entry). */
function text(body: Uint8Array | undefined): string | undefined {
  return body === undefined ? undefined : Buffer.from(body).toString('utf8');
}

/** A clock the specs move by hand, so "least recently used" never depends on how fast the machine is. */
class Clock {
  ms = Date.UTC(2026, 0, 1);
  readonly now = (): number => this.ms;
  tick(ms = 1000): void {
    this.ms += ms;
  }
}

function entry(body: string, extra: Partial<Omit<CacheEntry, 'body' | 'digest'>> = {}): CacheEntry {
  return { body: Buffer.from(body), digest: sha256Hex(body), storedAt: 1_000, expiresAt: 61_000, status: 200, headers: {}, ...extra };
}

/** Reads the database behind the store's back, through its own read-only connection, and checks the bookkeeping. */
function inspect(dir: string): { entries: number; bodies: number; bodyBytes: number } {
  const db = new Database(path.join(dir, 'cache.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    const entries = count('SELECT count(*) AS n FROM entries');
    const bodies = count('SELECT count(*) AS n FROM bodies');
    const bodyBytes = count('SELECT coalesce(sum(size), 0) AS n FROM bodies');
    const stats = db.prepare('SELECT entries, bytes FROM stats').get() as { entries: number; bytes: number };
    // The invariants the triggers keep: no orphan body, exact reference counts, exact counters.
    expect(count('SELECT count(*) AS n FROM bodies WHERE digest NOT IN (SELECT digest FROM entries)'), 'orphan bodies').to.equal(0);
    expect(count('SELECT count(*) AS n FROM entries WHERE digest NOT IN (SELECT digest FROM bodies)'), 'entries without body').to.equal(0);
    expect(
      count('SELECT count(*) AS n FROM bodies b WHERE refs <> (SELECT count(*) FROM entries e WHERE e.digest = b.digest)'),
      'wrong refcounts',
    ).to.equal(0);
    expect(stats).to.deep.equal({ entries, bytes: bodyBytes });
    return { entries, bodies, bodyBytes };
  } finally {
    db.close();
  }
}

/** The file a "moved it aside" warning names. */
const movedAside = (warning: string | undefined) => /moved it to (\S+) /.exec(warning ?? '')?.[1];

describe('SqliteStore', () => {
  let dir: string;
  let logger: RecordingLogger;
  let clock: Clock;
  const opened: SqliteStore[] = [];

  // Most specs here pin what one write does, committed before `set` returns (`groupCommit: false`); the
  // 'group commit' specs below open the default store, which commits each turn's writes together.
  function open(options: Partial<SqliteStoreOptions> = {}): SqliteStore {
    const store = SqliteStore.open({ dir, maxEntries: 1000, maxBytes: 1_000_000, logger, now: clock.now, groupCommit: false, ...options });
    opened.push(store);
    return store;
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-store-spec-'));
    logger = new RecordingLogger();
    clock = new Clock();
  });

  afterEach(() => {
    for (const store of opened.splice(0)) store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('storing', () => {
    it('keeps the database readable by its owner only (mode 0600), even under a permissive umask', () => {
      const previous = process.umask(0o022);
      try {
        const s2 = open();
        s2.set('k', entry('body'));
        for (const f of fs.readdirSync(dir).filter((name) => name.startsWith('cache.sqlite'))) {
          expect(fs.statSync(path.join(dir, f)).mode & 0o777, f).to.equal(0o600);
        }
        s2.close();
      } finally {
        process.umask(previous);
      }
    });

    it('round-trips every CacheEntry field', () => {
      const store = open();
      const full = entry('{"name":"répo ✓","items":[1,2,3]}', {
        storedAt: 1_767_225_600_123,
        expiresAt: 1_767_225_660_123,
        status: 404,
        headers: { 'content-type': 'application/json; charset=utf-8', link: '<https://x/?page=2>; rel="next"', 'x-note': 'ünïcødé' },
        etag: 'W/"abc123"',
        lastModified: 'Thu, 01 Jan 2026 00:00:00 GMT',
      });
      const minimal = entry('');
      store.set('full', full);
      store.set('minimal', minimal);

      expect(store.get('full')).to.deep.equal(full);
      const back = store.get('minimal');
      expect(back).to.deep.equal(minimal);
      // Absent optional fields stay absent rather than coming back as explicit undefined.
      expect(back).to.not.have.property('etag');
      expect(back).to.not.have.property('lastModified');
      expect(store.get('absent')).to.equal(undefined);
    });

    it('survives close and reopen, and a second store on the same dir sees the data', () => {
      const first = open();
      const e = entry('persisted', { etag: '"e1"' });
      first.set('k', e);
      const second = open();
      expect(second.get('k')).to.deep.equal(e);
      first.close();
      second.close();

      const reopened = open();
      expect(reopened.get('k')).to.deep.equal(e);
      expect(reopened.count()).to.equal(1);
      expect(reopened.bytes()).to.equal(Buffer.byteLength('persisted'));
    });

    it('creates the directory when missing', () => {
      const nested = path.join(dir, 'a', 'b');
      const store = SqliteStore.open({ dir: nested, maxEntries: 10, maxBytes: 1000, logger });
      opened.push(store);
      store.set('k', entry('v'));
      expect(fs.statSync(nested).isDirectory()).to.equal(true);
      expect(fs.existsSync(path.join(nested, 'cache.sqlite'))).to.equal(true);
    });

    it('keeps identical bodies once', () => {
      const store = open();
      const body = JSON.stringify({ same: 'body', n: 42 });
      store.set('a', entry(body, { etag: '"1"' }));
      store.set('b', entry(body, { etag: '"2"' }));
      store.set('c', entry(body, { status: 201 }));
      store.set('d', entry('other'));

      expect(inspect(dir)).to.deep.equal({ entries: 4, bodies: 2, bodyBytes: Buffer.byteLength(body) + 5 });
      expect(store.count()).to.equal(4);
      expect(store.bytes()).to.equal(Buffer.byteLength(body) + 5);
      expect(store.get('b')?.etag).to.equal('"2"');
    });

    it('frees a body when its last entry goes, whether deleted or replaced', () => {
      const store = open();
      store.set('a', entry('shared'));
      store.set('b', entry('shared'));
      expect(store.delete('a')).to.equal(true);
      expect(inspect(dir).bodies).to.equal(1);
      expect(text(store.get('b')?.body)).to.equal('shared');

      store.set('b', entry('replacement'));
      expect(inspect(dir)).to.deep.equal({ entries: 1, bodies: 1, bodyBytes: Buffer.byteLength('replacement') });
      expect(store.delete('b')).to.equal(true);
      expect(store.delete('b')).to.equal(false);
      expect(inspect(dir)).to.deep.equal({ entries: 0, bodies: 0, bodyBytes: 0 });
      expect(store.bytes()).to.equal(0);
    });

    it('refuses an entry whose digest is not the sha256 of its body, storing nothing', () => {
      const store = open();
      store.set('victim', entry('real body'));
      const forged: CacheEntry = { ...entry('forged body'), digest: sha256Hex('real body') };
      expect(() => store.set('k', forged)).to.throw(StoreError, /not the sha256 of its body/);
      expect(store.get('k')).to.equal(undefined);
      expect(text(store.get('victim')?.body)).to.equal('real body');
    });

    it('refresh updates freshness only', () => {
      const store = open();
      const original = entry('body', { etag: '"v1"', lastModified: 'yesterday', status: 200, headers: { a: 'b' } });
      store.set('k', original);
      const bytes = store.bytes();

      expect(store.refresh('k', 5_000, 65_000)).to.equal(true);
      expect(store.get('k')).to.deep.equal({ ...original, storedAt: 5_000, expiresAt: 65_000 });
      expect(store.bytes()).to.equal(bytes);
      expect(store.count()).to.equal(1);
      expect(store.refresh('absent', 5_000, 65_000)).to.equal(false);
      expect(store.get('absent')).to.equal(undefined);
    });

    it('completes 1000 sets and gets', () => {
      const store = open({ maxEntries: 2000, maxBytes: 10_000_000 });
      for (let i = 0; i < 1000; i++) store.set(`key-${i}`, entry(`{"i":${i % 100}}`));
      for (let i = 0; i < 1000; i++) expect(text(store.get(`key-${i}`)?.body)).to.equal(`{"i":${i % 100}}`);
      expect(store.count()).to.equal(1000);
      expect(inspect(dir).bodies).to.equal(100);
    });
  });

  describe('keys', () => {
    // Keys that trip up LIKE patterns, SQL quoting, UTF-8 encoding, and byte-range edge cases.
    const keys = [
      'a%b', 'a%c', 'ab', 'a_b', 'axb', 'a\\b', 'a\\\\', "a'b", 'a"b', 'a\0b',
      'ключ/1', 'ключ/2', 'клю', '😀/1', '😀/2', '\uD800x', '\uFFFDx', '\uFFFF', '\uFFFF\uFFFF', '',
    ];

    it('never lets two different keys share an entry', () => {
      const store = open();
      for (const key of keys) store.set(key, entry(`value of ${JSON.stringify(key)}`));
      expect(store.count()).to.equal(keys.length);
      // A lone surrogate and U+FFFD look alike once converted to UTF-8; they are still different keys.
      for (const key of keys) expect(text(store.get(key)?.body)).to.equal(`value of ${JSON.stringify(key)}`);
    });

    it('deleteByPrefix treats every character literally, unicode included', () => {
      const store = open();
      for (const key of keys) store.set(key, entry(key));
      const remaining = () => keys.filter((key) => store.get(key) !== undefined);

      expect(store.deleteByPrefix('a%')).to.equal(2);
      expect(store.deleteByPrefix('a_')).to.equal(1);
      expect(remaining()).to.include.members(['ab', 'axb']);
      expect(store.deleteByPrefix('a\\')).to.equal(2);
      expect(store.deleteByPrefix("a'")).to.equal(1);
      expect(store.deleteByPrefix('a"')).to.equal(1);
      expect(store.deleteByPrefix('a\0')).to.equal(1);
      expect(store.deleteByPrefix('ключ/')).to.equal(2);
      expect(remaining()).to.include('клю');
      expect(store.deleteByPrefix('😀')).to.equal(2);
      expect(store.deleteByPrefix('\uD800')).to.equal(1);
      expect(remaining()).to.include('\uFFFDx');
      // No string is greater than every string starting with U+FFFF: the open-ended range.
      expect(store.deleteByPrefix('\uFFFF')).to.equal(2);
      expect(store.deleteByPrefix('nothing-here')).to.equal(0);
      expect(remaining()).to.deep.equal(['ab', 'axb', 'клю', '\uFFFDx', '']);

      // The empty prefix is a prefix of every key, the empty key included.
      expect(store.deleteByPrefix('')).to.equal(5);
      expect(store.count()).to.equal(0);
      expect(inspect(dir)).to.deep.equal({ entries: 0, bodies: 0, bodyBytes: 0 });
    });

    it('deleteByPrefix removes a key equal to the prefix', () => {
      const store = open();
      store.set('scope:GET /repos/o/r', entry('1'));
      store.set('scope:GET /repos/o/r/issues', entry('2'));
      store.set('scope:GET /repos/o/q', entry('3'));
      expect(store.deleteByPrefix('scope:GET /repos/o/r')).to.equal(2);
      expect(text(store.get('scope:GET /repos/o/q')?.body)).to.equal('3');
    });

    it('clear removes every entry and body, and the store stays usable', () => {
      const store = open();
      for (let i = 0; i < 10; i++) store.set(`k${i}`, entry(`v${i % 3}`));
      store.clear();
      expect(store.count()).to.equal(0);
      expect(store.bytes()).to.equal(0);
      expect(inspect(dir)).to.deep.equal({ entries: 0, bodies: 0, bodyBytes: 0 });
      store.set('again', entry('v'));
      expect(text(store.get('again')?.body)).to.equal('v');
    });
  });

  describe('eviction', () => {
    it('evicts the least recently used entry past maxEntries; the recently read key survives', () => {
      const store = open({ maxEntries: 3 });
      for (const key of ['a', 'b', 'c']) {
        expect(store.set(key, entry(key))).to.equal(0);
        clock.tick();
      }
      expect(store.get('a')).to.not.equal(undefined);
      clock.tick();

      expect(store.set('d', entry('d'))).to.equal(1);
      expect(store.get('b')).to.equal(undefined);
      for (const key of ['a', 'c', 'd']) expect(store.get(key), key).to.not.equal(undefined);
      expect(store.count()).to.equal(3);
    });

    it('evicts by bytes of distinct bodies; the recently read key survives', () => {
      const store = open({ maxBytes: 30 });
      for (const key of ['a', 'b', 'c']) {
        store.set(key, entry(key.repeat(10)));
        clock.tick();
      }
      // Sharing a body costs no bytes, so this evicts nothing.
      expect(store.set('a2', entry('a'.repeat(10)))).to.equal(0);
      clock.tick();
      store.get('a');
      store.get('a2');
      clock.tick();

      expect(store.set('d', entry('d'.repeat(10)))).to.equal(1);
      expect(store.get('b')).to.equal(undefined);
      expect(store.bytes()).to.equal(30);
      for (const key of ['a', 'a2', 'c', 'd']) expect(store.get(key), key).to.not.equal(undefined);
      inspect(dir);
    });

    it('honours up to 32 reads not yet written per eviction; past that, evicts the oldest row as written', () => {
      // Reads are written in the background; an eviction stamps the pending reads of the candidates it meets
      // instead of writing all of them first (100k pending reads cost hundreds of milliseconds). After 32 it
      // stops looking, so a flood of reads bounds its work at the cost of exactness.
      const store = open({ maxEntries: 40 });
      for (let i = 0; i < 40; i++) {
        store.set(`k${i}`, entry(`v${i}`));
        clock.tick();
      }
      for (let i = 0; i < 35; i++) store.get(`k${i}`);
      clock.tick();
      expect(store.set('new', entry('new'))).to.equal(1);
      // k0..k31 got their reads written; k32 (read, but past the 32) went, where exact LRU would drop k35.
      expect(store.get('k32')).to.equal(undefined);
      for (const key of ['k0', 'k31', 'k33', 'k35', 'k39', 'new']) expect(store.get(key), key).to.not.equal(undefined);

      const small = open({ maxEntries: 40, dir: path.join(dir, 'second') });
      for (let i = 0; i < 40; i++) {
        small.set(`k${i}`, entry(`v${i}`));
        clock.tick();
      }
      for (let i = 0; i < 32; i++) small.get(`k${i}`);
      clock.tick();
      small.set('new', entry('new'));
      // 32 pending reads or fewer: exact, the least recently used (k32, never read) went.
      expect(small.get('k32')).to.equal(undefined);
      expect(small.count()).to.equal(40);
    });

    it('replacing a key does not evict another', () => {
      const store = open({ maxEntries: 3 });
      for (const key of ['a', 'b', 'c']) {
        store.set(key, entry(key));
        clock.tick();
      }
      expect(store.set('a', entry('a, new version'))).to.equal(0);
      expect(store.count()).to.equal(3);
      expect(text(store.get('a')?.body)).to.equal('a, new version');
      for (const key of ['b', 'c']) expect(store.get(key), key).to.not.equal(undefined);
    });

    it('does not keep a body larger than maxBytes, and drops the version it replaces', () => {
      const store = open({ maxBytes: 30 });
      store.set('small', entry('x'));
      store.set('big', entry('old'));
      expect(store.set('big', entry('y'.repeat(31)))).to.equal(1);
      expect(store.get('big')).to.equal(undefined);
      expect(text(store.get('small')?.body)).to.equal('x');
      expect(store.bytes()).to.equal(1);
    });

    it('remembers reads across close and reopen', () => {
      const first = open({ maxEntries: 3 });
      for (const key of ['a', 'b', 'c']) {
        first.set(key, entry(key));
        clock.tick();
      }
      first.get('a');
      first.close();
      clock.tick();

      const second = open({ maxEntries: 3 });
      expect(second.set('d', entry('d'))).to.equal(1);
      expect(second.get('a')).to.not.equal(undefined);
      expect(second.get('b')).to.equal(undefined);
    });

    it('shows a read in one store to another store on the same dir within about a second', async () => {
      const reader = open({ maxEntries: 3 });
      const writer = open({ maxEntries: 3 });
      for (const key of ['a', 'b', 'c']) {
        writer.set(key, entry(key));
        clock.tick();
      }
      reader.get('a');
      // Reads are written back in batches; wait for the batch instead of asserting on its timing.
      await new Promise((resolve) => setTimeout(resolve, 1300));
      expect(writer.set('d', entry('d'))).to.equal(1);
      expect(writer.get('a')).to.not.equal(undefined);
      expect(writer.get('b')).to.equal(undefined);
    });
  });

  describe('group commit (the default)', () => {
    function openGrouped(options: Partial<SqliteStoreOptions> = {}): SqliteStore {
      return open({ groupCommit: true, ...options });
    }
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

    it('commits the writes of one turn of the event loop together when the turn ends, not one by one', async () => {
      const store = openGrouped();
      for (let i = 0; i < 50; i++) store.set(`k${i}`, entry(`v${i % 7}`));
      // Another connection sees none of them yet: nothing was committed one write at a time.
      expect(inspect(dir).entries).to.equal(0);
      expect(store.pendingWrites).to.equal(50);
      // Committed when the turn ends, in slices of a few milliseconds on the turns right after (a slow machine
      // may need more than one).
      await waitFor(() => store.pendingWrites === 0, 'the group commit', 8_000, 1);
      expect(inspect(dir)).to.deep.equal({ entries: 50, bodies: 7, bodyBytes: 14 });
    });

    it('reads, refreshes and deletes a write still pending, through the store', () => {
      const store = openGrouped();
      const e = entry('pending', { etag: '"p"' });
      store.set('a', e);
      store.set('b', entry('other'));
      expect(store.get('a')).to.deep.equal(e);
      expect(store.refresh('a', 5_000, 65_000)).to.equal(true);
      expect(store.get('a')).to.deep.equal({ ...e, storedAt: 5_000, expiresAt: 65_000 });
      expect(store.delete('b')).to.equal(true);
      expect(store.get('b')).to.equal(undefined);
      expect(store.count()).to.equal(1);
      expect(inspect(dir).entries).to.equal(1);
      expect(store.get('a')).to.deep.equal({ ...e, storedAt: 5_000, expiresAt: 65_000 });
    });

    it('counts and prefix-deletes pending writes as committed ones, each once', () => {
      const store = openGrouped();
      store.set('p:1', entry('1'));
      store.set('p:2', entry('2'));
      store.set('q:1', entry('1'));
      expect(store.count()).to.equal(3);
      store.set('p:3', entry('3'));
      expect(store.deleteByPrefix('p:')).to.equal(3);
      store.set('p:4', entry('4'));
      store.clear();
      expect(store.count()).to.equal(0);
      expect(inspect(dir).entries).to.equal(0);
    });

    it('tells the listener which keys a commit evicted, and how many for maxBytes alone', async () => {
      const store = openGrouped({ maxEntries: 4, maxBytes: 30 });
      const told: Array<{ keys: readonly string[]; forBytes: number }> = [];
      store.listen({ evicted: (keys, forBytes) => told.push({ keys, forBytes }), writeFailed: () => expect.fail('no write fails') });
      for (const key of ['a', 'b', 'c']) store.set(key, entry(key.repeat(10)));
      clock.tick();
      store.get('a');
      expect(store.set('d', entry('d'.repeat(10)))).to.equal(0);
      expect(told).to.deep.equal([]);
      await turn();
      // Three bodies of 10 bytes fit; a fourth, within maxEntries, pushes out the least recently used (b: a was read).
      expect(told).to.deep.equal([{ keys: ['b'], forBytes: 1 }]);
      store.set('e', entry('e'));
      await turn();
      expect(told[1]).to.deep.equal({ keys: ['c'], forBytes: 1 });
      store.set('f', entry('f'));
      store.set('g', entry('g'));
      await turn();
      // Five entries: past maxEntries, so this eviction is not for bytes.
      expect(told[2]).to.deep.equal({ keys: ['a'], forBytes: 0 });
      expect(store.get('b')).to.equal(undefined);
      expect(store.count()).to.equal(4);
    });

    it('a full cache evicts in batches down to a low-water mark: within maxEntries after every commit, each eviction told once', async () => {
      // maxEntries 5,000: headroom min(64, 5) = 5, so a pass that has to evict goes down to 4,995 entries.
      const store = openGrouped({ maxEntries: 5000, maxBytes: 10_000_000 });
      const told: Array<{ keys: readonly string[]; forBytes: number }> = [];
      store.listen({ evicted: (keys, forBytes) => told.push({ keys, forBytes }), writeFailed: () => expect.fail('no write fails') });
      for (let i = 0; i < 5000; i++) store.set(`k${i}`, entry(`v${i % 50}`));
      store.flush();
      expect(told).to.deep.equal([]);
      expect(store.count()).to.equal(5000);
      clock.tick();
      store.set('n0', entry('n0'));
      store.flush();
      // One pass took the six least recently used: one for the bound, five for the headroom.
      expect(told).to.deep.equal([{ keys: ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'], forBytes: 0 }]);
      expect(store.count()).to.equal(4995);
      // The next five misses fit without evicting; the sixth evicts a batch again.
      for (let i = 1; i <= 5; i++) {
        clock.tick();
        store.set(`n${i}`, entry(`n${i}`));
        store.flush();
        expect(store.count()).to.equal(4995 + i);
      }
      expect(told).to.have.length(1);
      clock.tick();
      store.set('n6', entry('n6'));
      store.flush();
      expect(told[1]).to.deep.equal({ keys: ['k6', 'k7', 'k8', 'k9', 'k10', 'k11'], forBytes: 0 });
      expect(store.count()).to.equal(4995);
      for (const key of ['k0', 'k11']) expect(store.get(key), key).to.equal(undefined);
      for (const key of ['k12', 'k4999', 'n0', 'n6']) expect(store.get(key), key).to.not.equal(undefined);
      expect(inspect(dir).entries).to.equal(4995);
    });

    it('the headroom of a batch never evicts an entry read since its last write: it stamps it, and stops after 32', () => {
      const fill = (store: SqliteStore) => {
        for (let i = 0; i < 5000; i++) store.set(`k${i}`, entry(`v${i % 50}`));
        store.flush();
        clock.tick();
      };
      const told: string[][] = [];
      const store = openGrouped({ maxEntries: 5000, maxBytes: 10_000_000 });
      store.listen({ evicted: (keys) => told.push([...keys]), writeFailed: () => expect.fail('no write fails') });
      fill(store);
      // k1..k5 read (their recency not yet written): the headroom passes over them to the next oldest.
      for (let i = 1; i <= 5; i++) store.get(`k${i}`);
      clock.tick();
      store.set('new', entry('new'));
      store.flush();
      expect(told).to.deep.equal([['k0', 'k6', 'k7', 'k8', 'k9', 'k10']]);
      for (let i = 1; i <= 5; i++) expect(store.get(`k${i}`), `k${i}`).to.not.equal(undefined);

      const second = openGrouped({ maxEntries: 5000, maxBytes: 10_000_000, dir: path.join(dir, 'second') });
      const toldSecond: string[][] = [];
      second.listen({ evicted: (keys) => toldSecond.push([...keys]), writeFailed: () => expect.fail('no write fails') });
      fill(second);
      // 40 read: the bound takes k0; the headroom stamps 32 of them and stops, evicting none.
      for (let i = 1; i <= 40; i++) second.get(`k${i}`);
      clock.tick();
      second.set('new', entry('new'));
      second.flush();
      expect(toldSecond).to.deep.equal([['k0']]);
      expect(second.count()).to.equal(5000);
    });

    it('a batch for maxBytes alone goes down to 99.9% of maxBytes, every victim counted for bytes', async () => {
      // 5,000 distinct bodies of 10 bytes fill maxBytes exactly, far below maxEntries (headroom 10).
      const store = openGrouped({ maxEntries: 10_000, maxBytes: 50_000 });
      const told: Array<{ keys: readonly string[]; forBytes: number }> = [];
      store.listen({ evicted: (keys, forBytes) => told.push({ keys, forBytes }), writeFailed: () => expect.fail('no write fails') });
      for (let i = 0; i < 5000; i++) store.set(`k${i}`, entry(String(i).padStart(10, '0')));
      store.flush();
      expect(store.bytes()).to.equal(50_000);
      clock.tick();
      store.set('new', entry('new-body-1'));
      store.flush();
      // 50,010 bytes: one body for the bound, five more down to 49,950 (maxBytes less a thousandth).
      expect(told).to.deep.equal([{ keys: ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'], forBytes: 6 }]);
      expect(store.bytes()).to.equal(49_950);
      expect(inspect(dir)).to.deep.equal({ entries: 4995, bodies: 4995, bodyBytes: 49_950 });
    });

    it('damage found by a batch eviction moves the file aside intact and keeps the write that found it', () => {
      const first = open({ maxEntries: 2000 });
      for (let i = 0; i < 2000; i++) first.set(`k${i}`, entry(`v${i}`));
      first.close();
      const file = path.join(dir, 'cache.sqlite');
      // Wreck the last_used index, which only an eviction reads: open's probes still pass.
      const probe = new Database(file);
      probe.pragma('wal_checkpoint(TRUNCATE)');
      const { rootpage } = probe.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'entries_by_last_used'").get() as { rootpage: number };
      const pageSize = Number(probe.pragma('page_size', { simple: true }));
      probe.close();
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (rootpage - 1) * pageSize);
      fs.closeSync(fd);
      const damaged = fs.readFileSync(file);

      const store = open({ maxEntries: 2000 });
      expect(text(store.get('k1999')?.body)).to.equal('v1999');
      expect(logger.warnings).to.deep.equal([]);
      // Past maxEntries: the eviction meets the damage; the file is moved aside byte for byte, the write lands in a fresh database.
      expect(store.set('new', entry('new'))).to.equal(0);
      const moved = movedAside(logger.warnings[0]);
      expect(moved).to.match(/cache\.sqlite\.corrupt-/);
      expect(fs.readFileSync(moved!)).to.deep.equal(damaged);
      expect(text(store.get('new')?.body)).to.equal('new');
      expect(store.count()).to.equal(1);
      expect(inspect(dir).entries).to.equal(1);
    });

    it('deleteKeys removes committed and pending keys in one transaction, and returns those that existed', () => {
      const store = openGrouped();
      store.set('a', entry('a'));
      store.set('b', entry('b'));
      store.flush();
      store.set('c', entry('c'));
      expect(store.pendingWrites).to.equal(1);
      expect(store.deleteKeys(['a', 'c', 'absent']).sort()).to.deep.equal(['a', 'c']);
      expect(store.pendingWrites).to.equal(0);
      expect(store.count()).to.equal(1);
      expect(store.get('b')).to.not.equal(undefined);
      expect(inspect(dir)).to.deep.equal({ entries: 1, bodies: 1, bodyBytes: 1 });
    });

    it('takes the caller\'s word for the digest with digestVerified, and checks it otherwise', () => {
      const store = openGrouped();
      const forged: CacheEntry = { ...entry('forged body'), digest: sha256Hex('real body') };
      expect(() => store.set('k', forged)).to.throw(StoreError, /not the sha256 of its body/);
      expect(store.get('k')).to.equal(undefined);
      const honest = entry('honest body');
      store.set('k', honest, { digestVerified: true });
      expect(store.get('k')).to.deep.equal(honest);
    });

    it('a failed commit drops the pending writes and tells the listener their keys', async () => {
      const store = openGrouped({ busyTimeoutMs: 0 });
      const failed: string[] = [];
      store.listen({ evicted: () => {}, writeFailed: (keys) => failed.push(...keys) });
      const other = new Database(path.join(dir, 'cache.sqlite'));
      try {
        other.exec('BEGIN IMMEDIATE');
        store.set('x', entry('x'));
        store.set('y', entry('y'));
        await turn();
        expect(failed).to.deep.equal(['x', 'y']);
        expect(store.get('x')).to.equal(undefined);
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
      store.set('z', entry('z'));
      expect(store.count()).to.equal(1);
    });

    it('keeps the WAL bounded under a steady stream of commits: a checkpoint holds the commits so the WAL starts over', async function () {
      this.timeout(60_000);
      // A small reset threshold (64 frames) so a few seconds of writes cross it many times over.
      const store = openGrouped({ maxEntries: 1_000_000, maxBytes: 1_000_000_000, walResetFrames: 64 });
      const filler = 'x'.repeat(4000);
      let written = 0;
      // One distinct 4 KB body per turn, as a cache filling from GitHub commits them, for 4 s.
      const until = Date.now() + 4000;
      while (Date.now() < until) {
        store.set(`k${written}`, entry(`${written}:${filler}`));
        written++;
        await turn();
      }
      expect(store.count()).to.equal(written);
      // The frames in the WAL now (since it last started over), as another connection's checkpoint reports them.
      // Each write put several pages in it (a 4 KB body overflows a 4 KiB page; indexes, counters): a WAL that
      // never started over holds them all, about 9 per write; one that starts over, those of the last seconds.
      const other = new Database(path.join(dir, 'cache.sqlite'));
      try {
        const { log } = (other.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>)[0]!;
        expect(log, `${log} frames in the WAL after ${written} writes`).to.be.lessThan(written * 2);
      } finally {
        other.close();
      }
    });

    it('runs no checkpoint on the event loop while its helper thread starts: the first commits after opening only grow the WAL', async function () {
      this.timeout(30_000);
      // Each write commits at once; 400 distinct 4 KB bodies put well over SQLite's 1,000-page automatic checkpoint
      // into the WAL, all in this one turn, before the helper thread (started by the first commit) can be up.
      const store = open({ maxEntries: 1_000_000, maxBytes: 1_000_000_000 });
      const file = path.join(dir, 'cache.sqlite');
      const before = fs.statSync(file).size;
      const filler = 'x'.repeat(4000);
      for (let i = 0; i < 400; i++) store.set(`k${i}`, entry(`${i}:${filler}`));
      // A checkpoint copies the WAL's pages into the database file: on the event loop, that was a commit's 20 ms.
      expect(fs.statSync(file).size, 'the database file grew: a commit checkpointed on the event loop').to.equal(before);
      // Once the thread is up, it checkpoints what was committed while it started.
      await waitFor(() => fs.statSync(file).size > before + 400 * 4000, 'the helper thread checkpointing the first commits', 20_000);
      expect(store.count()).to.equal(400);
    });

    it('runs no checkpoint on the event loop at its first commit when it opens a WAL another connection left large', () => {
      const file = path.join(dir, 'cache.sqlite');
      open().close();
      // Another connection (a process that died, or another one on this cacheDir) leaves some 1,500 pages in the WAL.
      const other = new Database(file);
      try {
        other.pragma('wal_autocheckpoint = 0');
        other.exec('CREATE TABLE scratch (b BLOB)');
        const insert = other.prepare('INSERT INTO scratch (b) VALUES (?)');
        other.transaction(() => { for (let i = 0; i < 500; i++) insert.run(Buffer.alloc(12_000, i)); })();
        const store = open();
        const before = fs.statSync(file).size;
        store.set('k', entry('v'));
        expect(fs.statSync(file).size, 'the database file grew: the first commit checkpointed on the event loop').to.equal(before);
        expect(text(store.get('k')?.body)).to.equal('v');
      } finally {
        other.close();
      }
    });

    describe('durability', () => {
      const storeUrl = new URL('../src/store/sqlite-store.js', import.meta.url).href;

      /** Runs a child process that writes `n` entries with group commit, then does `then` (JavaScript source). */
      function child(n: number, then: string): { exited: Promise<NodeJS.Signals | number | null>; ready: Promise<void>; kill(): void } {
        const code = `
          import { createHash } from 'node:crypto';
          const { SqliteStore } = await import(${JSON.stringify(storeUrl)});
          const logger = { debug() {}, warn() {}, error() {} };
          const store = SqliteStore.open({ dir: ${JSON.stringify(dir)}, maxEntries: 100000, maxBytes: 100000000, logger });
          for (let i = 0; i < ${n}; i++) {
            const body = Buffer.from('body ' + i);
            store.set('k' + i, { body, digest: createHash('sha256').update(body).digest('hex'), storedAt: 1, expiresAt: 2, status: 200, headers: {} });
          }
          // Never outlive a failed spec.
          setTimeout(() => process.exit(3), 20000).unref();
          ${then}
        `;
        const proc = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
        const ready = new Promise<void>((resolve) => proc.stdout.on('data', (chunk: Buffer) => chunk.includes('ready') && resolve()));
        const exited = new Promise<NodeJS.Signals | number | null>((resolve) => proc.once('exit', (codeOut, signal) => resolve(signal ?? codeOut)));
        return { exited, ready, kill: () => proc.kill('SIGKILL') };
      }

      function keysOnDisk(): number {
        const store = open();
        let found = 0;
        for (let i = 0; i < 200; i++) if (text(store.get(`k${i}`)?.body) === `body ${i}`) found++;
        expect(store.count()).to.equal(found);
        return found;
      }

      it('an acknowledged write survives SIGKILL once committed (no write pending)', async () => {
        // A turn's writes are committed when it ends, in slices of a few milliseconds on consecutive turns.
        const waitForCommit = `
          const wait = () => store.pendingWrites === 0 ? (process.stdout.write('ready\\n'), setInterval(() => {}, 1000)) : setTimeout(wait, 1);
          setImmediate(wait);`;
        const c = child(200, waitForCommit);
        await Promise.race([c.ready, c.exited]);
        c.kill();
        expect(await c.exited).to.equal('SIGKILL');
        expect(keysOnDisk()).to.equal(200);
      });

      it('the window: killed before its turn ends, the writes of that turn are lost (and nothing else breaks)', async () => {
        const c = child(200, "process.kill(process.pid, 'SIGKILL');");
        expect(await c.exited).to.equal('SIGKILL');
        expect(keysOnDisk()).to.equal(0);
      });

      it('a normal exit in the same turn (process.exit) still commits', async () => {
        const c = child(200, 'process.exit(0);');
        expect(await c.exited).to.equal(0);
        expect(keysOnDisk()).to.equal(200);
      });
    });
  });

  describe('sharing a directory', () => {
    it('two stores on the same dir writing interleaved both succeed', () => {
      const one = open();
      const two = open();
      for (let i = 0; i < 200; i++) {
        one.set(`one-${i}`, entry(`body-${i % 20}`));
        two.set(`two-${i}`, entry(`body-${i % 30}`));
        (i % 2 === 0 ? one : two).set(`both-${i % 50}`, entry(`both-${i}`));
      }
      expect(one.count()).to.equal(450);
      expect(two.count()).to.equal(450);
      expect(text(one.get('two-199')?.body)).to.equal('body-19');
      expect(text(two.get('one-199')?.body)).to.equal('body-19');
      expect(one.bytes()).to.equal(two.bytes());
      expect(inspect(dir).entries).to.equal(450);
    });

    it('two threads writing at the same time both succeed', async () => {
      const storeUrl = new URL('../src/store/sqlite-store.js', import.meta.url).href;
      const entryUrl = new URL('../src/cache/entry.js', import.meta.url).href;
      // Each worker has its own connection and really runs in parallel, so the busy timeout is exercised.
      const code = `
        const { workerData, parentPort } = require('node:worker_threads');
        (async () => {
          const { SqliteStore } = await import(workerData.storeUrl);
          const { sha256Hex } = await import(workerData.entryUrl);
          const logger = { debug() {}, warn() {}, error() {} };
          const store = SqliteStore.open({ dir: workerData.dir, maxEntries: 100000, maxBytes: 100000000, logger });
          const mk = (text) => ({ body: Buffer.from(text), digest: sha256Hex(text), storedAt: 1, expiresAt: 2, status: 200, headers: {} });
          for (let i = 0; i < 300; i++) {
            store.set('w' + workerData.id + '-' + i, mk('body-' + (i % 40)));
            store.set('shared-' + (i % 60), mk('from ' + workerData.id + ' #' + i));
            store.get('shared-' + ((i * 7) % 60));
          }
          store.close();
          parentPort.postMessage('done');
        })().catch((err) => parentPort.postMessage('failed: ' + (err && err.stack || err)));
      `;
      const run = (id: number) =>
        new Promise<unknown>((resolve, reject) => {
          const worker = new Worker(code, { eval: true, workerData: { id, dir, storeUrl, entryUrl } });
          worker.once('message', resolve);
          worker.once('error', reject);
        });
      const results = await Promise.all([run(1), run(2)]);
      expect(results).to.deep.equal(['done', 'done']);

      const store = open();
      expect(store.count()).to.equal(660);
      expect(inspect(dir).entries).to.equal(660);
    });

    /** Another connection, on a thread of its own, holds the write lock of a new database for `ms`. */
    async function holdWriteLock(ms: number): Promise<{ released: Promise<void> }> {
      const code = `
        const { workerData, parentPort } = require('node:worker_threads');
        const Database = require(workerData.driver);
        const db = new Database(workerData.file);
        db.exec('BEGIN IMMEDIATE');
        parentPort.postMessage('locked');
        setTimeout(() => { db.exec('ROLLBACK'); db.close(); parentPort.postMessage('released'); }, workerData.ms);
      `;
      const driver = createRequire(import.meta.url).resolve('better-sqlite3');
      const worker = new Worker(code, { eval: true, workerData: { driver, file: path.join(dir, 'cache.sqlite'), ms } });
      const messages: string[] = [];
      const next = (wanted: string) =>
        new Promise<void>((resolve, reject) => {
          if (messages.includes(wanted)) return resolve();
          worker.on('message', (m: string) => m === wanted && resolve());
          worker.once('error', reject);
        });
      worker.on('message', (m: string) => messages.push(m));
      await next('locked');
      return { released: next('released').then(() => worker.terminate()).then(() => undefined) };
    }

    // Two processes opening a new database at once: the one that read its header first and then asked to turn
    // it to WAL got SQLITE_BUSY at once (SQLite calls no busy handler for a read that wants to become a write),
    // and the cache could not start. Now the open waits, as writes do, up to busyTimeoutMs.
    it('opening waits for another connection creating the same database, up to busyTimeoutMs', async () => {
      const { released } = await holdWriteLock(300);
      const store = open({ busyTimeoutMs: 20000 });
      store.set('k', entry('v'));
      expect(text(store.get('k')?.body)).to.equal('v');
      await released;
    });

    it('opening fails with CacheConfigError naming SQLITE_BUSY only once busyTimeoutMs has passed', async () => {
      const { released } = await holdWriteLock(1500);
      const started = Date.now();
      let failure: unknown;
      try {
        open({ busyTimeoutMs: 200 });
      } catch (err) {
        failure = err;
      }
      expect(Date.now() - started).to.be.at.least(200);
      expect(failure).to.be.instanceOf(CacheConfigError);
      expect((failure as Error).message).to.include('SQLITE_BUSY');
      await released;
    });

    it('a write blocked by another connection throws StoreError; reads keep working', () => {
      const store = open({ busyTimeoutMs: 50 });
      store.set('k', entry('v'));
      const other = new Database(path.join(dir, 'cache.sqlite'));
      try {
        other.exec('BEGIN IMMEDIATE');
        let failure: unknown;
        try {
          store.set('k2', entry('v2'));
        } catch (err) {
          failure = err;
        }
        expect(failure).to.be.instanceOf(StoreError);
        expect(failure).to.include({ code: 'ERR_STORE', operation: 'set' });
        expect((failure as StoreError).sqliteCode).to.match(/^SQLITE_BUSY/);
        expect((failure as Error).message).to.include(store.file);
        expect(text(store.get('k')?.body)).to.equal('v');
        expect(store.count()).to.equal(1);
        other.exec('ROLLBACK');
      } finally {
        other.close();
      }
      store.set('k2', entry('v2'));
      expect(text(store.get('k2')?.body)).to.equal('v2');
    });
  });

  describe('damaged or unusable files', () => {
    const movedFile = (warning: string | undefined) => /moved it to (\S+) /.exec(warning ?? '')?.[1];

    it('moves a corrupt file aside, logs a warning naming it, and works on a fresh database', () => {
      const file = path.join(dir, 'cache.sqlite');
      const garbage = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919 + 13) % 256));
      fs.writeFileSync(file, garbage);
      fs.writeFileSync(`${file}-wal`, 'not a wal either');

      const store = open();
      expect(logger.warnings).to.have.length(1);
      const moved = movedFile(logger.warnings[0]);
      expect(moved).to.match(/cache\.sqlite\.corrupt-/);
      expect(fs.readFileSync(moved!)).to.deep.equal(garbage);
      // The old WAL is gone (SQLite discards an invalid one when the failed connection closes; a surviving one is
      // moved along), so it can never be replayed into the fresh database.
      const wal = `${file}-wal`;
      expect(fs.existsSync(wal) ? fs.readFileSync(wal, 'utf8') : '').to.not.equal('not a wal either');

      store.set('k', entry('v'));
      expect(text(store.get('k')?.body)).to.equal('v');
    });

    it('treats a truncated header as corrupt', () => {
      fs.writeFileSync(path.join(dir, 'cache.sqlite'), 'SQLite format 3\0\x10');
      const store = open();
      expect(movedFile(logger.warnings[0])).to.match(/cache\.sqlite\.corrupt-/);
      store.set('k', entry('v'));
      expect(store.count()).to.equal(1);
    });

    it('recovers from damage first found by a query after open', () => {
      const first = open();
      first.set('k', entry('v'));
      first.close();
      const file = path.join(dir, 'cache.sqlite');
      // Wreck only the entries table: open's probes (header, schema, stats, key index) still pass.
      const probe = new Database(file, { readonly: true });
      const { rootpage } = probe.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'entries'").get() as { rootpage: number };
      const pageSize = Number(probe.pragma('page_size', { simple: true }));
      probe.close();
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (rootpage - 1) * pageSize);
      fs.closeSync(fd);

      const store = open();
      expect(logger.warnings).to.deep.equal([]);
      expect(store.get('k')).to.equal(undefined);
      expect(movedFile(logger.warnings[0])).to.match(/cache\.sqlite\.corrupt-/);
      store.set('k', entry('fresh'));
      expect(text(store.get('k')?.body)).to.equal('fresh');
    });

    // Specs run as root, for whom chmod 0o500 does not stop writes; a regular file in the way fails for root too.
    it('throws CacheConfigError naming the directory when it cannot be created (a file is in the way)', () => {
      const blocker = path.join(dir, 'not-a-dir');
      fs.writeFileSync(blocker, 'x');
      for (const target of [blocker, path.join(blocker, 'sub')]) {
        let failure: unknown;
        try {
          open({ dir: target });
        } catch (err) {
          failure = err;
        }
        expect(failure).to.be.instanceOf(CacheConfigError);
        expect(failure).to.include({ option: 'cacheDir', code: 'ERR_CACHE_CONFIG' });
        expect((failure as Error).message).to.include(target).and.match(/EEXIST|ENOTDIR/);
      }
    });

    it('throws CacheConfigError when the database file cannot be opened', () => {
      fs.mkdirSync(path.join(dir, 'cache.sqlite'));
      expect(() => open()).to.throw(CacheConfigError, /cache\.sqlite/);
      expect(logger.warnings).to.deep.equal([]);
    });

    it('rejects bounds that are not positive integers', () => {
      expect(() => open({ maxEntries: 0 })).to.throw(CacheConfigError, /maxEntries/);
      expect(() => open({ maxBytes: Number.NaN })).to.throw(CacheConfigError, /maxBytes/);
    });
  });

  describe('closing', () => {
    it('close is idempotent and every method then throws StoreError', () => {
      const store = open();
      store.set('k', entry('v'));
      store.close();
      store.close();
      const calls: Array<[string, () => unknown]> = [
        ['get', () => store.get('k')],
        ['set', () => store.set('k', entry('v'))],
        ['refresh', () => store.refresh('k', 1, 2)],
        ['delete', () => store.delete('k')],
        ['deleteByPrefix', () => store.deleteByPrefix('k')],
        ['clear', () => store.clear()],
        ['count', () => store.count()],
        ['bytes', () => store.bytes()],
      ];
      for (const [operation, call] of calls) {
        expect(call, operation).to.throw(StoreError, /is closed/);
        try {
          call();
        } catch (err) {
          expect(err).to.include({ code: 'ERR_STORE', operation });
        }
      }
      expect(text(open().get('k')?.body)).to.equal('v');
    });
  });
});
