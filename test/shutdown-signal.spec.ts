import { expect } from 'chai';
import { CacheClosedError, GitHubAPICache } from '../index.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { CapturingSink } from '../support/recording-logger.js';

/**
 * The cache owns one shutdown signal: close() waits closeTimeoutMs for work in flight, then aborts every
 * upstream request and rate-limit wait still running (instead of closing the tiers under them).
 */

const TOKEN = 'test_shutdownAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

describe('close() and the shutdown signal', function () {
  this.timeout(20_000);
  let github: FakeGitHub;
  beforeEach(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN]: { label: 'A' } } });
    github.setResource('/repos/octo/hello', { id: 1 });
  });
  afterEach(async () => {
    await github.close();
  });

  it('aborts an upstream request that outlives the drain deadline; the caller gets CacheClosedError', async () => {
    const sink = new CapturingSink();
    // upstreamTimeoutMs is far beyond the mocha timeout: only the shutdown signal can end this request.
    const cache = await GitHubAPICache.create({ githubApiUrl: github.url, persistence: 'off', closeTimeoutMs: 100, upstreamTimeoutMs: 600_000, logSink: sink });
    github.hangNext(1);
    const pending = cache.request('GET /repos/octo/hello', {}, { token: TOKEN }).then(() => 'answered', (err: unknown) => err);
    await github.waitFor((stats) => stats.requests >= 1);
    await cache.close();
    const outcome = await pending;
    expect(outcome).to.be.instanceOf(CacheClosedError);
    expect(sink.warnings.join('\n')).to.match(/still in flight after 100 ms; aborting them/);
  });

  it('aborts a wait for a rate-limited scope (maxRateLimitWait) at close', async () => {
    const cache = await GitHubAPICache.create({ githubApiUrl: github.url, persistence: 'off', closeTimeoutMs: 100, maxRateLimitWait: 3_600, logSink: new CapturingSink() });
    github.rateLimitToken(TOKEN, { resetInSeconds: 600 });
    await cache.request('GET /repos/octo/hello', {}, { token: TOKEN }).catch(() => undefined); // GitHub refuses: the scope pauses
    const sent = github.stats.requests;
    // The request is in flight from this call on (close() waits for it, then aborts its rate-limit wait).
    const waiting = cache.request('GET /repos/octo/other', {}, { token: TOKEN }).then(() => 'answered', (err: unknown) => err);
    await cache.close();
    expect(await waiting).to.be.instanceOf(CacheClosedError);
    expect(github.stats.requests, 'nothing was sent while the scope was paused').to.equal(sent);
  });
});
