import { expect } from 'chai';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { CacheClosedError, CacheConfigError, CacheValueError } from '../src/errors.js';
import { FakeClock } from '../support/clock.js';
import { CapturingSink } from '../support/recording-logger.js';
import { makeTempDir } from '../support/temp-dir.js';

describe('GitHubAPICache (key/value core)', () => {
  let clock: FakeClock;
  let cache: GitHubAPICache;
  const open = (extra: Parameters<typeof GitHubAPICache.create>[0] = {}) =>
    GitHubAPICache.create({ persistence: 'off', now: clock.now, ...extra });

  beforeEach(async () => {
    clock = new FakeClock();
    cache = await open();
  });
  afterEach(async () => {
    await cache.close();
  });

  describe('get / put', () => {
    it('returns what was put, as an equal value', async () => {
      await cache.put('get_repo_info:octo/hello', { name: 'hello', stars: 3, topics: ['a'] });
      expect(await cache.get('get_repo_info:octo/hello')).to.deep.equal({ name: 'hello', stars: 3, topics: ['a'] });
    });

    it('returns a frozen copy, so mutating it cannot change the cache or the caller\'s object', async () => {
      const original = { nested: { n: 1 } };
      await cache.put('k', original);
      original.nested.n = 2;
      const read = (await cache.get<{ nested: { n: number } }>('k'))!;
      expect(read.nested.n).to.equal(1);
      expect(Object.isFrozen(read.nested)).to.equal(true);
      expect(Object.isFrozen(original)).to.equal(false);
    });

    it('freezes every level of a value: objects in arrays in objects, arrays in arrays, a "__proto__" key', async () => {
      await cache.put('deep', JSON.parse('{"list":[{"a":[1,[{"b":2}]]},null,"s"],"__proto__":{"c":{"d":3}}}'));
      const read = (await cache.get<Record<string, unknown>>('deep'))!;
      const frozen: boolean[] = [];
      const walk = (v: unknown): void => {
        if (v === null || typeof v !== 'object') return;
        frozen.push(Object.isFrozen(v));
        for (const child of Object.values(v)) walk(child);
      };
      walk(read);
      expect(frozen).to.have.length(8);
      expect(frozen.every(Boolean)).to.equal(true);
    });

    it('keeps any string keys apart, including ones that differ only in separators or unicode', async () => {
      const keys = ['a:b', 'a::b', 'a:b:', 'a\u0000b', 'a b', 'ä', 'a\u0308', '', 'k:x', 'h:x'];
      for (const [i, key] of keys.entries()) await cache.put(key, i);
      for (const [i, key] of keys.entries()) expect(await cache.get(key)).to.equal(i);
    });

    it('refuses values JSON cannot carry, with CacheValueError, and stores nothing', async () => {
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      const bad: Array<[string, unknown]> = [
        ['undefined', undefined],
        ['function', () => 1],
        ['bigint', 10n],
        ['nan', { x: Number.NaN }],
        ['date', { when: new Date() }],
        ['map', new Map()],
        ['circular', circular],
        ['nested undefined', { a: [1, undefined] }],
        ['symbol', Symbol('s')],
      ];
      for (const [name, value] of bad) {
        let error: unknown;
        try {
          await cache.put(name, value);
        } catch (err) {
          error = err;
        }
        expect(error, name).to.be.instanceOf(CacheValueError);
        expect((error as Error).message, name).to.include(JSON.stringify(name));
        expect(await cache.getStale(name), name).to.equal(undefined);
      }
      expect((await cache.getStats()).size).to.equal(0);
    });

    it('keeps the previous value when a replacement is refused', async () => {
      await cache.put('k', 1);
      await cache.put('k', { bad: () => 2 }).catch(() => undefined);
      expect(await cache.get('k')).to.equal(1);
    });

    it('refuses a negative or non-finite ttl', async () => {
      for (const ttl of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
        let error: unknown;
        await cache.put('k', 1, { ttl }).catch((err) => (error = err));
        expect(error).to.be.instanceOf(CacheValueError);
      }
    });
  });

  describe('TTL', () => {
    it('uses the per-operation TTLs of the original and defaultTtl otherwise', async () => {
      const cases: Array<[string, number]> = [
        ['list_repos:octo', 300],
        ['get_repo_info:octo/x', 300],
        ['list_workflow_runs:octo/x', 60],
        ['get_workflow_run:octo/x:1', 60],
        ['list_runners:octo', 30],
        ['something_else:octo', 300],
        ['list_runners', 30],
      ];
      for (const [key, ttl] of cases) {
        const c = await open();
        await c.put(key, 1);
        clock.advance(ttl - 1);
        expect(await c.get(key), `${key} before ${ttl}s`).to.equal(1);
        clock.advance(1);
        expect(await c.get(key), `${key} at ${ttl}s`).to.equal(undefined);
        clock.advance(-ttl);
        await c.close();
      }
    });

    it('honours an explicit ttl and a configured defaultTtl', async () => {
      const c = await open({ defaultTtl: 10 });
      await c.put('x', 1);
      await c.put('y', 1, { ttl: 100 });
      clock.advance(10);
      expect(await c.get('x')).to.equal(undefined);
      expect(await c.get('y')).to.equal(1);
      await c.close();
    });

    it('keeps an expired entry: get misses and counts an expiration, getStale still returns it', async () => {
      await cache.put('list_runners:o', ['r1'], { ttl: 1 });
      clock.advance(2);
      expect(await cache.get('list_runners:o')).to.equal(undefined);
      expect(await cache.getStale('list_runners:o')).to.deep.equal(['r1']);
      expect(await cache.getStale('list_runners:o')).to.deep.equal(['r1'], 'a get of an expired entry does not delete it');
      const stats = await cache.getStats();
      expect(stats).to.include({ expirations: 1, misses: 1, hits: 0, staleServed: 2, size: 1 });
    });
  });

  describe('LRU eviction', () => {
    it('evicts the least recently used entry at maxEntries', async () => {
      const c = await open({ maxEntries: 3 });
      await c.put('a', 1);
      await c.put('b', 2);
      await c.put('c', 3);
      await c.get('a'); // a is now more recent than b
      await c.put('d', 4);
      expect(await c.getStale('b')).to.equal(undefined);
      expect(await c.get('a')).to.equal(1);
      expect(await c.get('c')).to.equal(3);
      expect(await c.get('d')).to.equal(4);
      expect((await c.getStats()).evictions).to.equal(1);
      await c.close();
    });

    it('never evicts another key when overwriting an existing one', async () => {
      const c = await open({ maxEntries: 3 });
      await c.put('a', 1);
      await c.put('b', 2);
      await c.put('c', 3);
      for (let i = 0; i < 10; i++) await c.put('a', i);
      expect(await c.get('b')).to.equal(2);
      expect(await c.get('c')).to.equal(3);
      expect(await c.get('a')).to.equal(9);
      expect((await c.getStats()).evictions).to.equal(0);
      await c.close();
    });
  });

  describe('invalidation', () => {
    it('invalidate removes one key and says whether it was there', async () => {
      await cache.put('a', 1);
      expect(await cache.invalidate('a')).to.equal(true);
      expect(await cache.invalidate('a')).to.equal(false);
      expect(await cache.getStale('a')).to.equal(undefined);
    });

    it('invalidatePattern removes keys by plain prefix (no wildcards) and returns how many', async () => {
      for (const key of ['list_repos:octo', 'list_repos:octo2', 'list_repos%', 'list_runners:octo', 'list_repos_x']) await cache.put(key, key);
      expect(await cache.invalidatePattern('list_repos:')).to.equal(2);
      expect(await cache.invalidatePattern('list_repos%')).to.equal(1);
      expect(await cache.invalidatePattern('%')).to.equal(0);
      expect(await cache.get('list_runners:octo')).to.equal('list_runners:octo');
      expect(await cache.get('list_repos_x')).to.equal('list_repos_x');
    });

    it('clear removes everything and the stats keep working', async () => {
      await cache.put('a', 1);
      await cache.get('a');
      await cache.clear();
      expect(await cache.get('a')).to.equal(undefined);
      const stats = await cache.getStats();
      expect(stats).to.include({ size: 0, hits: 1, misses: 1, hitRate: 0.5 });
      await cache.put('b', 2);
      expect(await cache.get('b')).to.equal(2);
    });
  });

  describe('getStats', () => {
    it('reports hits, misses, saved calls, size and hit rate', async () => {
      await cache.put('a', 1);
      await cache.get('a');
      await cache.get('a');
      await cache.get('missing');
      const stats = await cache.getStats();
      expect(stats).to.include({ hits: 2, misses: 1, apiCallsSaved: 2, apiCallsMade: 0, peerHits: 0, size: 1, evictions: 0 });
      expect(stats.hitRate).to.be.closeTo(2 / 3, 1e-9);
    });
  });

  describe('close', () => {
    it('is idempotent, sets closed, and makes every operation reject with CacheClosedError', async () => {
      const c = await open();
      await c.put('a', 1);
      const first = c.close();
      expect(c.closed).to.equal(true);
      expect(c.close()).to.equal(first);
      await first;
      const ops: Array<[string, () => Promise<unknown>]> = [
        ['get', () => c.get('a')],
        ['getStale', () => c.getStale('a')],
        ['put', () => c.put('a', 2)],
        ['invalidate', () => c.invalidate('a')],
        ['invalidatePattern', () => c.invalidatePattern('a')],
        ['clear', () => c.clear()],
        ['getStats', () => c.getStats()],
      ];
      for (const [name, op] of ops) {
        let error: unknown;
        await op().catch((err) => (error = err));
        expect(error, name).to.be.instanceOf(CacheClosedError);
        expect((error as CacheClosedError).code).to.equal('ERR_CACHE_CLOSED');
      }
    });

    it('supports `await using`', async () => {
      let captured: GitHubAPICache | undefined;
      {
        await using c = await open();
        captured = c;
        await c.put('a', 1);
      }
      expect(captured.closed).to.equal(true);
    });
  });

  describe('options', () => {
    it('rejects invalid options with CacheConfigError naming the option and value', async () => {
      const bad: Array<[object, string]> = [
        [{ defaultTtl: -5 }, 'defaultTtl'],
        [{ maxEntries: 0 }, 'maxEntries'],
        [{ p2p: { listenPort: 70000 } }, 'p2p.listenPort'],
        [{ persistence: 'sometimes' }, 'persistence'],
        [{ githubApiUrl: 'ftp://x' }, 'githubApiUrl'],
        [{ maxEntrie: 5 }, 'maxEntrie'],
      ];
      for (const [options, name] of bad) {
        let error: unknown;
        await GitHubAPICache.create(options as never).catch((err) => (error = err));
        expect(error, name).to.be.instanceOf(CacheConfigError);
        expect((error as CacheConfigError).option).to.equal(name);
      }
    });
  });

  describe('persistence', () => {
    it('degrades to memory-only with a warning when the cache directory cannot be used and persistence is auto', async () => {
      const { dir, cleanup } = makeTempDir();
      try {
        const fs = await import('node:fs');
        const blocker = `${dir}/not-a-dir`;
        fs.writeFileSync(blocker, 'x');
        const sink = new CapturingSink();
        const c = await GitHubAPICache.create({ cacheDir: `${blocker}/cache`, logSink: sink, now: clock.now });
        await c.put('a', 1);
        expect(await c.get('a')).to.equal(1);
        const stats = await c.getStats();
        expect(stats.persistence).to.equal('memory');
        expect(stats.persistenceErrors).to.equal(1);
        expect(sink.warnings.join('\n')).to.match(/memory-only/);
        await c.close();
        let error: unknown;
        await GitHubAPICache.create({ cacheDir: `${blocker}/cache`, persistence: 'required', logSink: sink }).catch((err) => (error = err));
        expect(error).to.be.instanceOf(CacheConfigError);
      } finally {
        cleanup();
      }
    });

    it('persists key/value entries in SQLite across instances', async () => {
      const { dir, cleanup } = makeTempDir();
      try {
        const a = await GitHubAPICache.create({ cacheDir: dir, now: clock.now });
        await a.put('get_repo_info:o/r', { id: 1 });
        await a.close();
        const b = await GitHubAPICache.create({ cacheDir: dir, now: clock.now });
        expect(await b.get('get_repo_info:o/r')).to.deep.equal({ id: 1 });
        expect((await b.getStats()).persistence).to.equal('sqlite');
        await b.close();
      } finally {
        cleanup();
      }
    });
  });
});
