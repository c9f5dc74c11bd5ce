import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { CapturingSink } from '../support/recording-logger.js';
import { makeTempDir } from '../support/temp-dir.js';

describe('stored bodies are checked on every read from disk', () => {
  it('treats a body altered on disk (same length) as a miss, counted and logged, never served', async () => {
    const temp = makeTempDir('integrity');
    try {
      const value = { marker: 'ORIGINAL-BODY-0123456789-ORIGINAL-BODY' };
      const first = await GitHubAPICache.create({ cacheDir: temp.dir, persistence: 'required' });
      await first.put('k', value, { ttl: 3600 });
      await first.close();

      const file = path.join(temp.dir, 'cache.sqlite');
      const bytes = fs.readFileSync(file);
      const at = bytes.indexOf(Buffer.from('ORIGINAL-BODY-0123456789'));
      expect(at, 'the body is in the database file').to.be.greaterThan(0);
      Buffer.from('TAMPERED-BOD').copy(bytes, at); // 12 bytes overwritten, same length
      fs.writeFileSync(file, bytes);

      const sink = new CapturingSink();
      const second = await GitHubAPICache.create({ cacheDir: temp.dir, persistence: 'required', logSink: sink });
      try {
        expect(await second.get('k')).to.equal(undefined);
        const stats = await second.getStats();
        expect(stats.persistenceErrors).to.equal(1);
        expect(sink.warnings.join('\n')).to.match(/does not match its sha256/);
        expect(await second.get('k'), 'the altered entry was dropped').to.equal(undefined);
        expect((await second.getStats()).persistenceErrors).to.equal(1);
      } finally {
        await second.close();
      }
    } finally {
      temp.cleanup();
    }
  });
});
