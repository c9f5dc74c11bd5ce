import { expect } from 'chai';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { makeTempDir } from '../support/temp-dir.js';

describe('maxEntries is one LRU bound across memory and SQLite', () => {
  it('drops the least recently used key from every tier, every time, and size counts what can be read', async () => {
    // Ten fresh caches: the operations run within the same millisecond, where equal recency stamps used to let
    // SQLite evict another key than memory did (6 of 10 runs answered the evicted key from disk).
    for (let run = 0; run < 10; run++) {
      const temp = makeTempDir('lru-tiers');
      const cache = await GitHubAPICache.create({ cacheDir: temp.dir, persistence: 'required', maxEntries: 3 });
      try {
        await cache.put('a', 1);
        await cache.put('b', 2);
        await cache.put('c', 3);
        expect(await cache.get('a')).to.equal(1);
        await cache.put('d', 4);
        expect(await cache.get('b'), `run ${run}: b was the least recently used`).to.equal(undefined);
        const answering = [];
        for (const key of ['a', 'c', 'd']) if ((await cache.get(key)) !== undefined) answering.push(key);
        expect(answering, `run ${run}`).to.deep.equal(['a', 'c', 'd']);
        expect((await cache.getStats()).size, `run ${run}`).to.equal(3);
      } finally {
        await cache.close();
        temp.cleanup();
      }
    }
  });
});
