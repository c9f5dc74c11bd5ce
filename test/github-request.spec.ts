import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import path from 'node:path';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { RateLimitError, UpstreamError } from '../src/errors.js';
import { CacheCounters } from '../src/cache/counters.js';
import { ReadThrough } from '../src/cache/read-through.js';
import { formatRequestKey } from '../src/cache/request-key.js';
import { scopeIdOf } from '../src/cache/scope.js';
import { TieredEntries } from '../src/cache/tiered-entries.js';
import { TokenVault } from '../src/cache/token-vault.js';
import { RecentWrites } from '../src/cache/write-through.js';
import { GitHubOrigin } from '../src/github/github-origin.js';
import { createLogger } from '../src/log.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { FakeClock } from '../support/clock.js';
import { makeTempDir } from '../support/temp-dir.js';

const TOKEN_A = 'test_tokenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const TOKEN_B = 'test_tokenBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';

describe('cache.request (GitHub REST through the cache)', () => {
  let github: FakeGitHub;
  let clock: FakeClock;
  let temp: { dir: string; cleanup: () => void };
  let cache: GitHubAPICache;
  const open = (extra: Parameters<typeof GitHubAPICache.create>[0] = {}) =>
    GitHubAPICache.create({ githubApiUrl: github.url, cacheDir: temp.dir, now: clock.now, ...extra });

  beforeEach(async () => {
    clock = new FakeClock(Date.now());
    github = await FakeGitHub.start({ tokens: { [TOKEN_A]: { label: 'A' }, [TOKEN_B]: { label: 'B' } }, now: clock.now });
    github.setResource('/repos/octo/hello', { id: 1, name: 'hello', private: false });
    github.setResource('/repos/octo/secret', { id: 2, name: 'secret', private: true }, { visibleTo: [TOKEN_A] });
    temp = makeTempDir();
    cache = await open();
  });
  afterEach(async () => {
    await cache.close();
    await github.close();
    temp.cleanup();
  });

  it('answers a fresh entry from the cache without contacting GitHub', async () => {
    const first = await cache.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' }, { token: TOKEN_A });
    expect(first).to.include({ status: 200, source: 'origin' });
    expect(first.data).to.deep.equal({ id: 1, name: 'hello', private: false });
    const second = await cache.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' }, { token: TOKEN_A });
    expect(second.source).to.equal('memory');
    expect(second.data).to.deep.equal(first.data);
    expect(second.headers.etag).to.equal(first.headers.etag);
    expect(github.stats.requests).to.equal(1);
  });

  it('revalidates an expired entry with If-None-Match: a 304 refreshes it and costs no rate limit', async () => {
    await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
    const chargedBefore = github.stats.charged;
    clock.advance(61); // GitHub says max-age=60
    const again = await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
    expect(again.source).to.equal('revalidated');
    expect(again.data).to.deep.include({ name: 'hello' });
    expect(github.stats.notModified).to.equal(1);
    expect(github.stats.charged).to.equal(chargedBefore);
    const last = github.requestLog.at(-1)!;
    expect(last.ifNoneMatch).to.be.a('string');
    expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A })).source).to.equal('memory');
    const stats = await cache.getStats();
    expect(stats.notModified).to.equal(1);
  });

  it('replaces an expired entry when GitHub answers 200 with a new body', async () => {
    await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
    github.setResource('/repos/octo/hello', { id: 1, name: 'renamed' });
    clock.advance(61);
    const again = await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
    expect(again.source).to.equal('origin');
    expect(again.data).to.deep.include({ name: 'renamed' });
  });

  it('honours an explicit ttl', async () => {
    await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A, ttl: 600 });
    clock.advance(300);
    expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A, ttl: 600 })).source).to.equal('memory');
  });

  it('shares one upstream request among 100 concurrent identical calls', async () => {
    github.setLatency(20);
    const results = await Promise.all(
      Array.from({ length: 100 }, () => cache.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' }, { token: TOKEN_A })),
    );
    expect(github.stats.requests).to.equal(1);
    expect(results.filter((r) => r.source === 'origin')).to.have.length(1);
    expect(results.filter((r) => r.source === 'coalesced')).to.have.length(99);
    expect((await cache.getStats()).coalesced).to.equal(99);
  });

  it('answers a coalesced caller (no memory item of its own) the headers a memory hit gets, in an object of its own', async () => {
    github.setLatency(20);
    const [, joined] = await Promise.all([0, 1].map(() => cache.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' }, { token: TOKEN_A })));
    expect(joined!.source).to.equal('coalesced');
    const hit = await cache.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' }, { token: TOKEN_A });
    expect(hit.source).to.equal('memory');
    expect(joined!.headers).to.deep.equal(hit.headers);
    expect(Object.keys(joined!.headers)).to.deep.equal(Object.keys(hit.headers));
    expect(joined!.headers).to.have.property('x-ratelimit-remaining');
    joined!.headers.etag = 'changed by a caller';
    expect((await cache.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' }, { token: TOKEN_A })).headers.etag).to.not.equal('changed by a caller');
  });

  it('sends 100 upstream requests for 100 different keys, none blocked behind another', async () => {
    for (let i = 0; i < 100; i++) github.setResource(`/repos/octo/r${i}`, { i });
    github.setLatency(5);
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => cache.request(`GET /repos/octo/r${i}`, {}, { token: TOKEN_A })));
    expect(github.stats.requests).to.equal(100);
    expect(results.map((r) => (r.data as { i: number }).i)).to.deep.equal(Array.from({ length: 100 }, (_, i) => i));
  });

  it('caps concurrent upstream requests per token scope', async () => {
    await cache.close();
    cache = await open({ maxConcurrentPerScope: 4 });
    for (let i = 0; i < 30; i++) github.setResource(`/repos/octo/c${i}`, { i });
    github.setLatency(10);
    await Promise.all(Array.from({ length: 30 }, (_, i) => cache.request(`GET /repos/octo/c${i}`, {}, { token: TOKEN_A })));
    expect(github.stats.maxConcurrent).to.be.at.most(4);
    expect(github.stats.requests).to.equal(30);
  });

  describe('token scopes', () => {
    it('never serves one token\'s private response to another token or to an anonymous call', async () => {
      const a = await cache.request('GET /repos/octo/secret', {}, { token: TOKEN_A });
      expect(a.data).to.deep.include({ name: 'secret' });
      let errorB: unknown;
      await cache.request('GET /repos/octo/secret', {}, { token: TOKEN_B }).catch((err) => (errorB = err));
      expect(errorB).to.be.instanceOf(UpstreamError);
      expect((errorB as UpstreamError).status).to.equal(404);
      let errorAnon: unknown;
      await cache.request('GET /repos/octo/secret').catch((err) => (errorAnon = err));
      expect((errorAnon as UpstreamError).status).to.equal(404);
      expect(github.stats.requests).to.equal(3);
    });

    it('keeps public responses apart per token too (ETags and access differ per token)', async () => {
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      const b = await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_B });
      expect(b.source).to.equal('origin');
    });

    it('never writes a token into the database, the stats or an error', async () => {
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      await cache.request('GET /repos/octo/secret', {}, { token: TOKEN_B }).catch((err: Error) => {
        expect(`${err.message} ${err.stack} ${JSON.stringify(err)}`).to.not.include(TOKEN_B);
      });
      const stats = await cache.getStats();
      expect(JSON.stringify(stats)).to.not.include(TOKEN_A).and.not.include(TOKEN_B);
      await cache.close();
      for (const file of fs.readdirSync(temp.dir)) {
        const bytes = fs.readFileSync(path.join(temp.dir, file));
        expect(bytes.includes(Buffer.from(TOKEN_A)), file).to.equal(false);
        expect(bytes.includes(Buffer.from(TOKEN_B)), file).to.equal(false);
        expect(bytes.includes(Buffer.from(TOKEN_A.slice(4, 20))), file).to.equal(false);
      }
    });

    it('purges an entry when revalidation says the token lost access', async () => {
      await cache.request('GET /repos/octo/secret', {}, { token: TOKEN_A });
      github.setResource('/repos/octo/secret', { id: 2, name: 'secret' }, { visibleTo: [TOKEN_B] });
      clock.advance(61);
      let error: unknown;
      await cache.request('GET /repos/octo/secret', {}, { token: TOKEN_A }).catch((err) => (error = err));
      expect((error as UpstreamError).status).to.equal(404);
      github.failNext(1, 502);
      let again: unknown;
      await cache.request('GET /repos/octo/secret', {}, { token: TOKEN_A }).catch((err) => (again = err));
      expect(again, 'no stale copy is left to answer').to.be.instanceOf(UpstreamError);
      expect((await cache.getStats()).purged).to.equal(1);
    });
  });

  describe('failures', () => {
    it('answers from a stale entry when GitHub fails with a 5xx, else rejects with UpstreamError', async () => {
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      clock.advance(61);
      github.failNext(1, 502);
      const stale = await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      expect(stale.source).to.equal('stale');
      expect(stale.data).to.deep.include({ name: 'hello' });
      github.failNext(1, 503);
      let error: unknown;
      await cache.request('GET /repos/octo/other', {}, { token: TOKEN_A }).catch((err) => (error = err));
      expect(error).to.be.instanceOf(UpstreamError);
      expect((error as UpstreamError).status).to.equal(503);
    });

    it('answers from a stale entry on a connection reset, else rejects with UpstreamError status 0', async () => {
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      clock.advance(61);
      // Two resets: the GET is sent once more after the first (upstream.ts), so only a second one fails it.
      github.resetNext(2);
      expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A })).source).to.equal('stale');
      github.resetNext(2);
      let error: unknown;
      await cache.request('GET /repos/octo/nothing', {}, { token: TOKEN_A }).catch((err) => (error = err));
      expect(error).to.be.instanceOf(UpstreamError);
      expect((error as UpstreamError).status).to.equal(0);
    });

    it('sends a GET once more after one connection reset, and answers fresh', async () => {
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      clock.advance(61);
      const before = github.stats.requests;
      github.resetNext(1);
      expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A })).source).to.equal('revalidated');
      expect(github.stats.requests - before).to.equal(2);
    });

    it('gives up on a hung request after upstreamTimeoutMs', async () => {
      await cache.close();
      cache = await open({ upstreamTimeoutMs: 200 });
      github.hangNext(1);
      let error: unknown;
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A }).catch((err) => (error = err));
      expect(error).to.be.instanceOf(UpstreamError);
      expect((error as Error).message).to.match(/no response within 200 ms/);
    });
  });

  describe('rate limits', () => {
    it('tracks x-ratelimit-* per scope in getStats', async () => {
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      const { rateLimits } = await cache.getStats();
      const scopes = Object.values(rateLimits);
      expect(scopes).to.have.length(1);
      expect(scopes[0]).to.include({ limit: 5000, remaining: 4999, used: 1, resource: 'core', blockedUntil: 0 });
    });

    it('stops a scope whose rate limit is spent until reset: stale answers, else RateLimitError at once', async () => {
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      github.rateLimitToken(TOKEN_A, { resetInSeconds: 600 });
      const resetAt = clock.ms + 600_000;
      clock.advance(61);
      github.setResource('/repos/octo/hello', { id: 1, name: 'changed' }); // force a charged answer, refused
      const stale = await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      expect(stale.source).to.equal('stale');
      const sent = github.stats.requests;
      let error: unknown;
      await cache.request('GET /repos/octo/other', {}, { token: TOKEN_A }).catch((err) => (error = err));
      expect(error).to.be.instanceOf(RateLimitError);
      expect((error as RateLimitError).resetAt).to.be.closeTo(resetAt, 2_000);
      expect(github.stats.requests).to.equal(sent, 'nothing is sent while the scope is blocked');
      // Other tokens are unaffected.
      expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_B })).source).to.equal('origin');
      clock.advance(601);
      github.clearRateLimit(TOKEN_A);
      expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A })).data).to.deep.include({ name: 'changed' });
    });

    it('keeps the search window apart: a spent search limit does not stop REST calls', async () => {
      github.setResource('/search/repositories', { total_count: 0, items: [] });
      github.secondaryLimitNext(1, 30, { path: '/search/repositories' });
      let error: unknown;
      await cache.request('GET /search/repositories', { q: 'x' }, { token: TOKEN_A }).catch((err) => (error = err));
      expect(error).to.be.instanceOf(RateLimitError);
      expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A })).source).to.equal('origin');
      const sent = github.stats.requests;
      await cache.request('GET /search/repositories', { q: 'y' }, { token: TOKEN_A }).catch(() => undefined);
      expect(github.stats.requests).to.equal(sent, 'search stays blocked');
    });

    it('honours retry-after of a secondary limit', async () => {
      github.secondaryLimitNext(1, 30);
      let error: unknown;
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A }).catch((err) => (error = err));
      expect(error).to.be.instanceOf(RateLimitError);
      expect((error as RateLimitError).resetAt).to.equal(clock.ms + 30_000);
      const sent = github.stats.requests;
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A }).catch(() => undefined);
      expect(github.stats.requests).to.equal(sent);
      clock.advance(31);
      expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A })).source).to.equal('origin');
    });
  });

  it('caches a binary body (an archive) as its exact bytes up to maxEntryBytes; a larger one is answered, not kept', async () => {
    const server = await import('node:http');
    const small = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x00, 0x80]);
    const large = Buffer.alloc(64, 0xfe);
    const archive = server.createServer((req, res) => {
      res.setHeader('content-type', 'application/x-gzip');
      res.end(req.url === '/small.tgz' ? small : large);
    });
    await new Promise<void>((resolve) => archive.listen(0, '127.0.0.1', resolve));
    const { port } = archive.address() as { port: number };
    const base = `http://127.0.0.1:${port}`;
    const bounded = await GitHubAPICache.create({ githubApiUrl: base, persistence: 'off', maxEntryBytes: 32 });
    try {
      const first = await bounded.request('GET /small.tgz');
      expect(Buffer.isBuffer(first.data)).to.equal(true);
      expect((first.data as Buffer).equals(small)).to.equal(true);
      const second = await bounded.request('GET /small.tgz');
      expect(second.source).to.equal('memory');
      expect(Buffer.compare(second.bytes, small)).to.equal(0);
      (second.data as Buffer).fill(0); // the caller's copy: the cached bytes stay as they were
      expect(Buffer.compare((await bounded.request('GET /small.tgz')).bytes, small)).to.equal(0);
      expect((await bounded.request('GET /large.tgz')).source).to.equal('origin');
      const again = await bounded.request('GET /large.tgz');
      expect(again.source).to.equal('origin', 'a body over maxEntryBytes is not kept');
      expect(Buffer.compare(again.bytes, large)).to.equal(0);
    } finally {
      await bounded.close();
      archive.closeAllConnections();
      await new Promise((resolve) => archive.close(resolve));
    }
  });

  it('serves peers only keys under its GitHub API URL, never an arbitrary URL with its token', async () => {
    // The owner side of the read path (what the fleet is lent), composed as the cache composes it.
    const vault = new TokenVault();
    vault.hold(TOKEN_A); // this node now holds scope A
    const counters = new CacheCounters();
    const tiers = new TieredEntries({ maxEntries: 100, logger: createLogger('spec'), counters });
    const origin = new GitHubOrigin({ githubApiUrl: github.url, githubUploadsUrl: github.url, upstreamTimeoutMs: 5_000, maxRateLimitWait: 0, maxConcurrentPerScope: 4, now: clock.now });
    const reads = new ReadThrough({
      tiers, origin, vault, counters, now: clock.now, defaultTtl: 60, maxEntryBytes: 10 * 1024 * 1024, shutdown: new AbortController().signal,
      recentWrites: new RecentWrites({ githubApiUrl: github.url, rememberMs: 60_000 }),
      peerWrites: new RecentWrites({ githubApiUrl: github.url, rememberMs: 60_000 }),
    });
    const serve = (url: string) => {
      const parts = { url, method: 'GET' as const, scopeId: scopeIdOf(TOKEN_A), accept: 'application/vnd.github+json' };
      return reads.serveAsOwner(formatRequestKey(parts), new AbortController().signal, parts);
    };
    const inside = await serve(`${github.url}/repos/octo/hello`);
    expect(inside).to.have.property('body');
    const sent = github.stats.requests;
    expect(await serve('http://127.0.0.1:9/latest/meta-data')).to.equal(undefined);
    expect(await serve(`${github.url}.evil.example/x`)).to.equal(undefined);
    expect(github.stats.requests).to.equal(sent);
    tiers.close();
  });

  it('the vault holds a token again after its scope was dropped, though it remembered that token last', () => {
    const vault = new TokenVault({ maxTokens: 1 });
    const a = vault.hold(TOKEN_A);
    expect(vault.hold(TOKEN_A)).to.equal(a);
    expect(vault.tokenOf(a)).to.equal(TOKEN_A);
    const b = vault.hold(TOKEN_B); // scope A leaves (one token held at most)
    expect(vault.tokenOf(a)).to.equal(undefined);
    expect(vault.hold(TOKEN_B)).to.equal(b);
    expect(vault.hold(TOKEN_A)).to.equal(a);
    expect(vault.tokenOf(a), 'A is held again, so this node can fetch as its scope\'s owner').to.equal(TOKEN_A);
    expect(vault.tokenOf(b)).to.equal(undefined);
    expect(vault.hold(TOKEN_B)).to.equal(b);
    expect(vault.tokenOf(b)).to.equal(TOKEN_B);
  });

  describe('writes', () => {
    it('pass through and invalidate the resource and its collection', async () => {
      github.setCollection('/repos/octo/hello/issues', [{ number: 1, title: 'one' }]);
      github.setCollection('/repos/octo/hello/pulls', [{ number: 9 }]);
      await cache.request('GET /repos/octo/hello/pulls', {}, { token: TOKEN_A });
      await cache.request('GET /repos/{owner}/{repo}/issues', { owner: 'octo', repo: 'hello' }, { token: TOKEN_A });
      await cache.request('GET /repos/octo/hello/issues', { per_page: 1 }, { token: TOKEN_A });
      await cache.request('GET /repos/octo/hello/issues/1', {}, { token: TOKEN_A });
      await cache.request('GET /repos/octo/hello/issues', {}, { token: TOKEN_B });
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      const created = await cache.request('POST /repos/{owner}/{repo}/issues', { owner: 'octo', repo: 'hello', title: 'two' }, { token: TOKEN_A });
      expect(created.status).to.equal(201);
      const list = await cache.request('GET /repos/octo/hello/issues', {}, { token: TOKEN_A });
      expect(list.source).to.equal('origin');
      expect((list.data as unknown[]).length).to.equal(2);
      expect((await cache.request('GET /repos/octo/hello/issues', {}, { token: TOKEN_B })).source).to.equal('origin');
      expect((await cache.request('GET /repos/octo/hello/issues', { per_page: 1 }, { token: TOKEN_A })).source).to.equal('origin');
      expect((await cache.request('GET /repos/octo/hello/issues/1', {}, { token: TOKEN_A })).source).to.equal('origin', 'GET /repos/o/r/issues* is dropped');
      expect((await cache.request('GET /repos/octo/hello/pulls', {}, { token: TOKEN_A })).source).to.equal('memory', 'a sibling collection is untouched');

      await cache.request('PATCH /repos/octo/hello/issues/1', { title: 'uno' }, { token: TOKEN_A });
      const item = await cache.request('GET /repos/octo/hello/issues/1', {}, { token: TOKEN_A });
      expect(item.source).to.equal('origin');
      expect(item.data).to.deep.include({ title: 'uno' });
    });
  });

  describe('pagination', () => {
    it('keeps the link header and caches every page as its own entry', async () => {
      github.setCollection('/repos/octo/hello/issues', Array.from({ length: 5 }, (_, i) => ({ number: i + 1 })), { perPage: 2 });
      const p1 = await cache.request('GET /repos/octo/hello/issues', {}, { token: TOKEN_A });
      expect(p1.headers.link).to.match(/rel="next"/);
      const p2 = await cache.request('GET /repos/octo/hello/issues', { page: 2 }, { token: TOKEN_A });
      expect((p2.data as Array<{ number: number }>).map((i) => i.number)).to.deep.equal([3, 4]);
      expect((await cache.request('GET /repos/octo/hello/issues', { page: 2 }, { token: TOKEN_A })).source).to.equal('memory');
      expect((await cache.request('GET /repos/octo/hello/issues', {}, { token: TOKEN_A })).headers.link).to.equal(p1.headers.link);
    });
  });

  describe('persistence', () => {
    it('answers from disk after a restart, then revalidates with the stored ETag', async () => {
      await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      await cache.close();
      cache = await open();
      const fromDisk = await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      expect(fromDisk.source).to.equal('disk');
      expect(github.stats.requests).to.equal(1);
      await cache.close();
      clock.advance(120);
      cache = await open();
      const revalidated = await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A });
      expect(revalidated.source).to.equal('revalidated');
      expect(github.stats.notModified).to.equal(1);
    });

    it('lets a new process on the same cacheDir answer from disk, then revalidate with the stored ETag', async () => {
      await cache.close();
      const script = new URL('./support/request-once.js', import.meta.url).pathname;
      const run = async (nowMs: number) => {
        const { stdout } = await promisify(execFile)(process.execPath, [script], {
          env: { ...process.env, CACHE_DIR: temp.dir, GITHUB_API_URL: github.url, REQUEST_ROUTE: 'GET /repos/octo/hello', REQUEST_TOKEN: TOKEN_A, REQUEST_NOW_MS: String(nowMs) },
        });
        return JSON.parse(stdout.trim()) as { source: string; data: { name: string } };
      };
      expect((await run(clock.ms)).source).to.equal('origin');
      const second = await run(clock.ms + 1_000);
      expect(second.source).to.equal('disk');
      expect(second.data.name).to.equal('hello');
      expect(github.stats.requests).to.equal(1);
      const third = await run(clock.ms + 120_000);
      expect(third.source).to.equal('revalidated');
      expect(github.stats.notModified).to.equal(1);
      expect(github.requestLog.at(-1)!.ifNoneMatch).to.be.a('string');
    });

    it('keeps working on a corrupt database file: moved aside, fresh one created', async () => {
      await cache.close();
      fs.writeFileSync(path.join(temp.dir, 'cache.sqlite'), Buffer.alloc(8192, 0x5a));
      const warnings: string[] = [];
      cache = await open({ logSink: { warn: (_c, m) => warnings.push(m), error: (_c, m) => warnings.push(m) } });
      expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A })).source).to.equal('origin');
      expect((await cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A })).source).to.equal('memory');
      expect(warnings.join('\n')).to.match(/corrupt/i);
      expect(fs.readdirSync(temp.dir).some((f) => f.includes('corrupt'))).to.equal(true);
    });
  });

  it('aborts waiting with the caller\'s signal', async () => {
    github.setLatency(300);
    const controller = new AbortController();
    const pending = cache.request('GET /repos/octo/hello', {}, { token: TOKEN_A, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('caller gave up')), 20);
    let error: unknown;
    await pending.catch((err) => (error = err));
    expect((error as Error).message).to.equal('caller gave up');
  });
});
