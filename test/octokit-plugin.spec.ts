import { expect } from 'chai';
import { Octokit as CoreOctokit } from '@octokit/core';
import { paginateRest } from '@octokit/plugin-paginate-rest';
import { RequestError } from '@octokit/request-error';
import { Octokit } from '@octokit/rest';
import { configureCache, githubCachePlugin, GitHubAPICache, shutdownGlobalCache } from '../index.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { FakeClock } from '../support/clock.js';

const TOKEN_A = 'test_octokitAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const TOKEN_B = 'test_octokitBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const repo = { owner: 'octo', repo: 'hello' };
/** Octokit's request log prints every error response; these specs provoke them on purpose. */
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The error a promise rejects with (fails the spec when it resolves). */
async function rejectionOf(promise: Promise<unknown>): Promise<RequestError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(RequestError);
    return err as RequestError;
  }
  throw new Error('expected a rejection');
}

describe('githubCachePlugin (Octokit through the cache)', () => {
  const CachedOctokit = Octokit.plugin(githubCachePlugin);
  let github: FakeGitHub;
  let clock: FakeClock;
  let cache: GitHubAPICache;
  const client = (auth?: string) => new CachedOctokit({ auth, baseUrl: github.url, cache, log: quiet });

  beforeEach(async () => {
    clock = new FakeClock(Date.now());
    github = await FakeGitHub.start({ tokens: { [TOKEN_A]: { label: 'A' }, [TOKEN_B]: { label: 'B' } }, now: clock.now });
    github.setResource('/repos/octo/hello', { id: 1, name: 'hello', private: false });
    github.setResource('/repos/octo/secret', { id: 2, name: 'secret', private: true }, { visibleTo: [TOKEN_A] });
    cache = await GitHubAPICache.create({ githubApiUrl: github.url, persistence: 'off', now: clock.now });
  });
  afterEach(async () => {
    await cache.close();
    await github.close();
  });

  it('answers the second identical call from the cache: no upstream request', async () => {
    const octokit = client(TOKEN_A);
    const first = await octokit.rest.repos.get(repo);
    const second = await octokit.rest.repos.get(repo);
    expect(github.stats.requests).to.equal(1);
    expect(first.headers['x-cache-source']).to.equal('origin');
    expect(second.headers['x-cache-source']).to.equal('memory');
    expect(second).to.include({ status: 200, url: `${github.url}/repos/octo/hello` });
    expect(second.data).to.deep.equal({ id: 1, name: 'hello', private: false });
    expect(second.headers.etag).to.equal(first.headers.etag);
    expect(octokit.request.endpoint.DEFAULTS.request?.fetch, 'Octokit\'s defaults are left alone').to.equal(undefined);
  });

  it('hands Octokit its own copy of the data: mutating it leaves the cached entry intact', async () => {
    const octokit = client(TOKEN_A);
    const first = await octokit.rest.repos.get(repo);
    (first.data as { name: string }).name = 'mutated';
    expect((await octokit.rest.repos.get(repo)).data.name).to.equal('hello');
  });

  it('revalidates after the TTL with a 304 that costs no rate limit', async () => {
    const octokit = client(TOKEN_A);
    await octokit.rest.repos.get(repo);
    const charged = github.stats.charged;
    clock.advance(61); // the fake sends max-age=60
    const again = await octokit.rest.repos.get(repo);
    expect(again.status).to.equal(200);
    expect(again.headers['x-cache-source']).to.equal('revalidated');
    expect(again.data).to.deep.include({ name: 'hello' });
    expect(github.stats.charged).to.equal(charged);
    expect(github.stats.notModified).to.equal(1);
    expect((await cache.getStats()).notModified).to.equal(1);
  });

  it('sends each client\'s own token: a private response is never served to another token or to anonymous', async () => {
    const secret = { owner: 'octo', repo: 'secret' };
    expect((await client(TOKEN_A).rest.repos.get(secret)).data).to.deep.include({ name: 'secret' });
    expect((await rejectionOf(client(TOKEN_B).rest.repos.get(secret))).status).to.equal(404);
    expect((await rejectionOf(client().rest.repos.get(secret))).status).to.equal(404);
    expect(github.stats.requests).to.equal(3);
    expect(github.stats.byToken).to.include({ A: 1, B: 1, anonymous: 1 });
  });

  describe('pagination', () => {
    beforeEach(() => {
      github.setCollection('/repos/octo/hello/issues', Array.from({ length: 5 }, (_, i) => ({ number: i + 1, title: `#${i + 1}` })), { perPage: 2 });
    });

    it('octokit.paginate walks every page; a second paginate is served from the cache', async () => {
      const octokit = client(TOKEN_A);
      const issues = await octokit.paginate(octokit.rest.issues.listForRepo, repo);
      expect(issues.map((i) => i.number)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(github.stats.requests).to.equal(3);
      const again = await octokit.paginate(octokit.rest.issues.listForRepo, repo);
      expect(again.map((i) => i.number)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(github.stats.requests).to.equal(3);
    });

    it('composes with @octokit/core and paginateRest: Octokit.plugin(githubCachePlugin, paginateRest)', async () => {
      const MyOctokit = CoreOctokit.plugin(githubCachePlugin, paginateRest);
      const octokit = new MyOctokit({ auth: TOKEN_A, baseUrl: github.url, cache, log: quiet });
      const route = 'GET /repos/{owner}/{repo}/issues' as const;
      expect(await octokit.paginate(route, repo)).to.have.length(5);
      expect(await octokit.paginate(route, repo)).to.have.length(5);
      expect(github.stats.requests).to.equal(3);
    });

    it('passes a write (issues.create) through and invalidates the collection', async () => {
      const octokit = client(TOKEN_A);
      await octokit.paginate(octokit.rest.issues.listForRepo, repo);
      const created = await octokit.rest.issues.create({ ...repo, title: 'six' });
      expect(created.status).to.equal(201);
      expect(created.data).to.deep.include({ title: 'six' });
      expect(github.stats.writes).to.equal(1);
      expect((github.getResource('/repos/octo/hello/issues') as unknown[]).at(-1)).to.deep.equal({ title: 'six' }, 'Octokit\'s JSON body reached GitHub');
      const firstPage = await octokit.rest.issues.listForRepo(repo);
      expect(firstPage.headers['x-cache-source']).to.equal('origin');
      const all = await octokit.paginate(octokit.rest.issues.listForRepo, repo);
      expect(all.map((i) => i.title)).to.deep.equal(['#1', '#2', '#3', '#4', '#5', 'six']);
      const stats = await cache.getStats();
      expect(stats.writes).to.equal(1);
      expect(stats.invalidations).to.be.greaterThan(0);
    });
  });

  describe('errors', () => {
    it('surfaces a 404 as RequestError 404 with GitHub\'s response, authorization redacted', async () => {
      const error = await rejectionOf(client(TOKEN_B).rest.repos.get({ owner: 'octo', repo: 'secret' }));
      expect(error.status).to.equal(404);
      expect(error.message).to.match(/^Not Found/);
      expect(error.response).to.include({ status: 404, url: `${github.url}/repos/octo/secret` });
      expect(error.response?.data).to.deep.include({ message: 'Not Found' });
      expect(error.request.headers.authorization).to.equal('token [REDACTED]');
      expect(`${error.message} ${error.stack} ${JSON.stringify(error)}`).to.not.include(TOKEN_B);
    });

    it('surfaces GitHub\'s rate-limit refusal as RequestError 403, then refuses without sending (429, as the proxy does) while GitHub asked to wait', async () => {
      github.rateLimitToken(TOKEN_A, { resetInSeconds: 600 });
      const octokit = client(TOKEN_A);
      const fromGitHub = await rejectionOf(octokit.rest.repos.get(repo));
      expect(fromGitHub.status).to.equal(403);
      expect(fromGitHub.response?.headers['x-ratelimit-remaining']).to.equal('0');
      const sent = github.stats.requests;

      const fromCache = await rejectionOf(octokit.rest.repos.get({ owner: 'octo', repo: 'other' }));
      expect(github.stats.requests).to.equal(sent, 'nothing is sent while the scope is blocked');
      expect(fromCache.status).to.equal(429);
      expect(fromCache.message).to.match(/rate limit/i);
      expect(fromCache.response!.headers['x-cache-source']).to.equal('proxy');
      const headers = fromCache.response!.headers;
      expect(headers['x-ratelimit-remaining']).to.equal('0');
      expect(Number(headers['x-ratelimit-reset'])).to.be.closeTo(Math.ceil((clock.ms + 600_000) / 1000), 2);
      expect(Number(headers['retry-after'])).to.be.closeTo(600, 2);
    });

    it('answers a stale entry when GitHub fails with a 5xx', async () => {
      const octokit = client(TOKEN_A);
      await octokit.rest.repos.get(repo);
      clock.advance(61);
      github.failNext(1, 502);
      const stale = await octokit.rest.repos.get(repo);
      expect(stale).to.include({ status: 200 });
      expect(stale.headers['x-cache-source']).to.equal('stale');
    });

    it('surfaces a reset without a stale entry as RequestError 500, like Octokit\'s own network errors', async () => {
      github.resetNext(2); // the GET is sent once more after one reset (upstream.ts): both fail
      const error = await rejectionOf(client(TOKEN_A).rest.repos.get(repo));
      expect(error.status).to.equal(500);
      expect(error.message).to.match(/failed before a response/);
      expect(error.message).to.not.include(TOKEN_A);
    });
  });

  it('never puts the token in the cache stats', async () => {
    const a = client(TOKEN_A);
    await a.rest.repos.get(repo);
    await a.rest.repos.get({ owner: 'octo', repo: 'secret' });
    await client(TOKEN_B).rest.repos.get({ owner: 'octo', repo: 'secret' }).catch(() => undefined);
    const snapshot = await cache.getStats();
    expect(snapshot.apiCallsMade).to.equal(3);
    const stats = JSON.stringify(snapshot);
    expect(stats).to.not.include(TOKEN_A).and.not.include(TOKEN_B);
    expect(stats).to.not.include(TOKEN_A.slice(4, 20)).and.not.include(TOKEN_B.slice(4, 20));
  });

  it('leaves GraphQL to Octokit\'s own transport (not cached, not a REST write)', async () => {
    const octokit = client(TOKEN_A);
    await octokit.graphql('{ viewer { login } }').catch(() => undefined); // the fake has no GraphQL: 404
    expect(github.stats.byPath['/graphql']).to.equal(1);
    const stats = await cache.getStats();
    expect(stats).to.include({ apiCallsMade: 0, writes: 0 });
  });

  describe('default cache', () => {
    afterEach(async () => {
      await shutdownGlobalCache();
    });

    it('is the global cache, and follows configureCache to the new instance', async () => {
      const options = { persistence: 'off' as const, githubApiUrl: github.url, now: clock.now };
      const first = await configureCache(options);
      const octokit = new CachedOctokit({ auth: TOKEN_A, baseUrl: github.url, log: quiet });
      expect((await octokit.rest.repos.get(repo)).headers['x-cache-source']).to.equal('origin');
      expect((await octokit.rest.repos.get(repo)).headers['x-cache-source']).to.equal('memory');
      expect(await first.getStats()).to.include({ apiCallsMade: 1, hits: 1 });
      expect(await cache.getStats()).to.include({ apiCallsMade: 0 }, 'the spec\'s own cache was not used');

      const second = await configureCache(options);
      expect(first.closed).to.equal(true);
      expect((await octokit.rest.repos.get(repo)).headers['x-cache-source']).to.equal('origin');
      expect(await second.getStats()).to.include({ apiCallsMade: 1 });
      expect(github.stats.requests).to.equal(2);
    });
  });
});
