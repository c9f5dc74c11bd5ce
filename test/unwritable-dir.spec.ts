import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { CapturingSink } from '../support/recording-logger.js';
import { makeTempDir } from '../support/temp-dir.js';

describe('an unusable cacheDir with P2P on', function () {
  this.timeout(30_000);
  it("runs memory-only with persistence 'auto', and the P2P host on an ephemeral identity, with warnings", async () => {
    const temp = makeTempDir('unwritable');
    // A regular file where the directory should be: even root cannot create anything below it.
    const blocked = path.join(temp.dir, 'not-a-dir');
    fs.writeFileSync(blocked, 'x');
    const sink = new CapturingSink();
    const cache = await GitHubAPICache.create({
      cacheDir: path.join(blocked, 'cache'), persistence: 'auto', logSink: sink,
      p2p: { enabled: true, sharedSecret: 'unwritable-spec-secret-0123456789', listenHost: '127.0.0.1', listenPort: 0 },
    });
    try {
      await cache.p2pReady();
      await cache.put('k', { v: 1 });
      expect(await cache.get('k')).to.deep.equal({ v: 1 });
      const stats = await cache.getStats();
      expect(stats.persistence).to.equal('memory');
      expect(stats.p2p?.peerId).to.be.a('string');
      const warned = sink.warnings.join('\n');
      expect(warned).to.match(/memory-only/);
      expect(warned).to.match(/ephemeral/i);
    } finally {
      await cache.close();
      temp.cleanup();
    }
  });
});
