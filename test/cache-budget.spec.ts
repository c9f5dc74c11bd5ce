import { expect } from 'chai';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { CapturingSink } from '../support/recording-logger.js';
import { makeTempDir } from '../support/temp-dir.js';

/** maxEntries and maxBytes are one budget for the cache: what getStats says is what answers, before and after a restart. */
describe('one size budget across memory and SQLite', () => {
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

  it('size is the number of keys that answer; an eviction for maxBytes is counted and warned about once', async () => {
    const temp = makeTempDir('cache-budget');
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    // Each value is 300 bytes of JSON: 1,024 bytes of bodies hold three of them, far below maxEntries.
    const value = (key: string) => key.repeat(298);
    const answering = async (cache: GitHubAPICache) => {
      const found: string[] = [];
      for (const key of keys) if ((await cache.get(key)) === value(key)) found.push(key);
      return found;
    };
    try {
      const sink = new CapturingSink();
      const cache = await GitHubAPICache.create({ cacheDir: temp.dir, persistence: 'required', maxEntries: 100, maxBytes: 1024, logSink: sink });
      try {
        for (const key of keys) {
          await cache.put(key, value(key), { ttl: 3600 });
          await turn();
        }
        const stats = await cache.getStats();
        expect(stats.size).to.equal(3);
        expect(stats.diskBytes).to.equal(900);
        expect(stats.evictions).to.equal(3);
        expect(stats.evictedForBytes).to.equal(3);
        expect(await answering(cache)).to.deep.equal(['d', 'e', 'f']);
        const warnings = sink.warnings.filter((w) => /maxBytes/.test(w));
        expect(warnings).to.have.length(1);
        expect(warnings[0]).to.match(/Raise maxBytes \(option maxBytes, flag --max-bytes\)/);
      } finally {
        await cache.close();
      }
      const restarted = await GitHubAPICache.create({ cacheDir: temp.dir, persistence: 'required', maxEntries: 100, maxBytes: 1024, logSink: sink });
      try {
        expect((await restarted.getStats()).size).to.equal(3);
        expect(await answering(restarted)).to.deep.equal(['d', 'e', 'f']);
      } finally {
        await restarted.close();
      }
    } finally {
      temp.cleanup();
    }
  });
});
