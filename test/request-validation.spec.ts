/**
 * Arguments refused before anything is sent: `request()` without a route, a route whose path needs a parameter
 * that was not given, and `put(key, value, 60)` (a TTL outside the options object).
 */
import { expect } from 'chai';
import { CacheValueError } from '../src/errors.js';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { missingPathParameters } from '../src/github/request-builder.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { makeTempDir } from '../support/temp-dir.js';

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('arguments refused before anything is sent', () => {
  let github: FakeGitHub;
  let temp: { dir: string; cleanup: () => void };
  let cache: GitHubAPICache;

  beforeEach(async () => {
    github = await FakeGitHub.start();
    github.setResource('/repos/octo/hello', { id: 1 });
    temp = makeTempDir();
    cache = await GitHubAPICache.create({ githubApiUrl: github.url, cacheDir: temp.dir, persistence: 'off' });
  });
  afterEach(async () => {
    await cache.close();
    await github.close();
    temp.cleanup();
  });

  it('request() without a route says a route is required, not "Cannot store key"', async () => {
    const err = await rejection((cache.request as (route?: string) => Promise<unknown>)());
    expect(err).to.be.instanceOf(CacheValueError);
    expect((err as CacheValueError).code).to.equal('ERR_CACHE_VALUE');
    expect(err.message).to.contain('a route such as "GET /repos/{owner}/{repo}" is required');
    expect(err.message).to.not.contain('Cannot store key');
  });

  it('a missing path parameter is refused with CacheValueError naming it, and GitHub is not asked', async () => {
    const err = await rejection(cache.request('GET /repos/{owner}/{repo}', { owner: 'octo' }));
    expect(err).to.be.instanceOf(CacheValueError);
    expect(err.message).to.contain('"repo"').and.to.contain('missing');
    const err2 = await rejection(cache.request('GET /repos/{owner}/{repo}/issues', { owner: 'octo', repo: undefined, state: 'open' }));
    expect(err2.message).to.contain('"repo"');
    const err3 = await rejection(cache.request('GET /repos/{owner}/{repo}', {}));
    expect(err3.message).to.contain('"owner", "repo"');
    expect(github.requestLog, 'requests sent to GitHub').to.deep.equal([]);
    // Given, it goes through; leftover params are a query and never required.
    const ok = await cache.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' });
    expect(ok.status).to.equal(200);
  });

  it('only the path\'s plain {name} placeholders are required', () => {
    expect(missingPathParameters('GET /repos/{owner}/{repo}', { owner: 'o', repo: 'r' })).to.deep.equal([]);
    expect(missingPathParameters('GET /repos/{owner}/{repo}', { owner: 'o', repo: null })).to.deep.equal(['repo']);
    expect(missingPathParameters('POST /repos/{owner}/{repo}/releases/{release_id}/assets{?name,label}', { owner: 'o', repo: 'r', release_id: 1 })).to.deep.equal([]);
    expect(missingPathParameters('GET /search/issues', {})).to.deep.equal([]);
    expect(missingPathParameters('GET https://api.example.com/users/{username}', {})).to.deep.equal(['username']);
  });

  it('put(key, value, 60) is refused: the TTL goes in { ttl }', async () => {
    const put = cache.put.bind(cache) as (key: string, value: unknown, options?: unknown) => Promise<void>;
    for (const third of [60, '60', null, [60]]) {
      const err = await rejection(put('list_repos:octo', 1, third));
      expect(err, String(third)).to.be.instanceOf(CacheValueError);
      expect(err.message).to.contain('options object such as { ttl: 60 }');
    }
    expect(await cache.get('list_repos:octo'), 'nothing stored').to.equal(undefined);
    await put('list_repos:octo', 1, { ttl: 60 });
    await put('list_repos:other', 2);
    expect(await cache.get('list_repos:octo')).to.equal(1);
  });
});
