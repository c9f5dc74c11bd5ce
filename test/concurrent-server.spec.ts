import { expect } from 'chai';
import { runConcurrentServerDemo } from '../examples/concurrent-server.js';
import { getCacheProvider, shutdownGlobalCache } from '../providers/index.js';
import { GitHubAPICache } from '../src/github-api-cache.js';

describe('a node:http server handling concurrent requests (the Flask threaded=True scenario)', () => {
  beforeEach(async () => {
    await shutdownGlobalCache();
    getCacheProvider().useFactory((options) => GitHubAPICache.create(options));
  });
  after(async () => {
    await shutdownGlobalCache();
  });

  it('serves 20 concurrent requests from one instance, each reading back what it put', async () => {
    const result = await runConcurrentServerDemo({ requests: 20 });
    expect(result.instancesCreated).to.equal(1);
    expect(result.factoryCalls).to.equal(1);
    expect(result.distinctInstancesSeen).to.equal(1);
    expect(result.mismatches).to.equal(0);
    expect(result.rows).to.have.length(20);
    expect(result.rows.every((r) => r.ok)).to.equal(true);
  });
});
