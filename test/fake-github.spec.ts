/**
 * The fake GitHub server must follow GitHub's caching and rate-limit rules closely enough that a cache
 * proven against it behaves on api.github.com. These specs pin those rules down, using Node's own fetch
 * and a real @octokit/rest client, so later specs can rely on the fake without re-checking it.
 */
import { Octokit } from '@octokit/rest';
import { expect } from 'chai';
import { FakeGitHub } from '../support/fake-github/index.js';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const REPO = '/repos/octo/hello';
const PRIVATE = '/repos/octo/secret';

describe('FakeGitHub (loopback stand-in for the GitHub REST API)', () => {
  let fake: FakeGitHub;
  let clock: number;

  /** fetch against the fake with an optional token and extra headers. */
  function get(path: string, token?: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<Response> {
    return fetch(`${fake.url}${path}`, {
      ...init,
      headers: { accept: 'application/vnd.github+json', ...(token ? { authorization: `token ${token}` } : {}), ...headers },
    });
  }

  beforeEach(async () => {
    clock = T0;
    fake = await FakeGitHub.start({
      tokens: { tokenA: { label: 'alice' }, tokenB: { label: 'bob', rateLimit: 3 } },
      anonymousRateLimit: 5,
      now: () => clock,
    });
    fake.setResource(REPO, { id: 1, full_name: 'octo/hello', private: false }, { lastModified: 'Wed, 01 Jan 2025 10:00:00 GMT' });
    fake.setResource(PRIVATE, { id: 2, full_name: 'octo/secret', private: true }, { visibleTo: ['tokenA'] });
  });

  afterEach(async () => {
    await fake.close();
  });

  describe('a plain GET', () => {
    it('answers 200 with the body and every header GitHub sends that a cache relies on', async () => {
      const res = await get(REPO, 'tokenA');
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ id: 1, full_name: 'octo/hello', private: false });
      const h = res.headers;
      expect(h.get('content-type')).to.equal('application/json; charset=utf-8');
      expect(h.get('cache-control')).to.match(/^private, max-age=60\b/);
      expect(h.get('vary')).to.equal('Accept, Authorization, Accept-Encoding');
      expect(h.get('etag')).to.match(/^W\/"[0-9a-f]{64}"$/);
      expect(h.get('last-modified')).to.equal('Wed, 01 Jan 2025 10:00:00 GMT');
      expect(h.get('x-ratelimit-limit')).to.equal('5000');
      expect(h.get('x-ratelimit-remaining')).to.equal('4999');
      expect(h.get('x-ratelimit-used')).to.equal('1');
      expect(h.get('x-ratelimit-reset')).to.equal(String(T0 / 1000 + 3600));
      expect(h.get('x-ratelimit-resource')).to.equal('core');
      expect(h.get('x-github-request-id')).to.be.a('string').and.not.equal('');
    });

    it('also sends the headers api.github.com puts on every answer (scopes only to a token), unless recordedHeaders is false', async () => {
      const recorded = await FakeGitHub.start({ tokens: { tokenA: {} } });
      const minimal = await FakeGitHub.start({ tokens: { tokenA: {} }, recordedHeaders: false });
      try {
        recorded.setResource(REPO, { id: 1 });
        const authorized = await fetch(`${recorded.url}${REPO}`, { headers: { authorization: 'token tokenA' } });
        const anonymous = await fetch(`${recorded.url}${REPO}`);
        minimal.setResource(REPO, { id: 1 });
        const plain = await fetch(`${minimal.url}${REPO}`, { headers: { authorization: 'token tokenA' } });
        for (const res of [authorized, anonymous]) {
          expect(res.status).to.equal(200);
          expect(res.headers.get('strict-transport-security')).to.equal('max-age=31536000; includeSubdomains; preload');
          expect(res.headers.get('access-control-expose-headers')).to.include('X-RateLimit-Remaining');
          expect(res.headers.get('content-security-policy')).to.equal("default-src 'none'");
          expect(res.headers.get('x-frame-options')).to.equal('deny');
          // Computed per answer, never the recording's.
          expect(res.headers.get('etag')).to.not.equal('"00000000000000000000000000000000"');
          expect(res.headers.get('date')).to.not.equal('Tue, 10 Oct 2017 16:00:00 GMT');
        }
        expect(authorized.headers.get('x-oauth-scopes')).to.include('repo');
        expect(anonymous.headers.get('x-oauth-scopes')).to.equal(null);
        const added = [...authorized.headers.keys()].filter((name) => !plain.headers.has(name));
        expect(added).to.have.lengthOf(10);
        expect(plain.headers.get('strict-transport-security')).to.equal(null);
      } finally {
        await recorded.close();
        await minimal.close();
      }
    });

    it('marks anonymous answers public and charges them to the anonymous window', async () => {
      const res = await get(REPO);
      expect(res.status).to.equal(200);
      expect(res.headers.get('cache-control')).to.match(/^public, max-age=60\b/);
      expect(res.headers.get('x-ratelimit-limit')).to.equal('5');
      expect(res.headers.get('x-ratelimit-remaining')).to.equal('4');
    });

    it('accepts both `token X` and `Bearer X` authorization', async () => {
      const bearer = await fetch(`${fake.url}${PRIVATE}`, { headers: { authorization: 'Bearer tokenA' } });
      expect(bearer.status).to.equal(200);
      expect(fake.stats.byToken).to.deep.equal({ alice: 1 });
    });

    it('answers HEAD with the same headers and no body, charged like a GET', async () => {
      const head = await get(REPO, 'tokenA', {}, { method: 'HEAD' });
      const full = await get(REPO, 'tokenA');
      expect(head.status).to.equal(200);
      expect(await head.text()).to.equal('');
      expect(head.headers.get('etag')).to.equal(full.headers.get('etag'));
      expect(fake.stats.charged).to.equal(2);
    });

    it('serves a string resource as text/plain to the raw media type, JSON otherwise, with different ETags', async () => {
      fake.setResource('/repos/octo/hello/contents/README.md', '# Hello\n');
      const raw = await get('/repos/octo/hello/contents/README.md', 'tokenA', { accept: 'application/vnd.github.raw+json' });
      expect(raw.headers.get('content-type')).to.equal('text/plain; charset=utf-8');
      expect(await raw.text()).to.equal('# Hello\n');
      const json = await get('/repos/octo/hello/contents/README.md', 'tokenA');
      expect(await json.json()).to.equal('# Hello\n');
      expect(raw.headers.get('etag')).to.not.equal(json.headers.get('etag'));
    });

    it('answers 404 Not Found for what was never set or was deleted', async () => {
      expect((await get('/repos/octo/nothing', 'tokenA')).status).to.equal(404);
      fake.deleteResource(REPO);
      const gone = await get(REPO, 'tokenA');
      expect(gone.status).to.equal(404);
      expect(await gone.json()).to.include({ message: 'Not Found' });
    });

    it('works with a real @octokit/rest client', async () => {
      const octokit = new Octokit({ baseUrl: fake.url, auth: 'tokenA' });
      const { status, data, headers } = await octokit.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' });
      expect(status).to.equal(200);
      expect(data).to.include({ full_name: 'octo/hello' });
      expect(headers['x-ratelimit-remaining']).to.equal('4999');
    });
  });

  describe('ETags', () => {
    it('differ per token for the same body, and are stable for one token', async () => {
      const a1 = (await get(REPO, 'tokenA')).headers.get('etag');
      const a2 = (await get(REPO, 'tokenA')).headers.get('etag');
      const b = (await get(REPO, 'tokenB')).headers.get('etag');
      const anon = (await get(REPO)).headers.get('etag');
      expect(a1).to.equal(a2);
      expect(new Set([a1, b, anon]).size).to.equal(3);
    });

    it('differ per Accept media type', async () => {
      const v3 = (await get(REPO, 'tokenA', { accept: 'application/vnd.github.v3+json' })).headers.get('etag');
      const plain = (await get(REPO, 'tokenA', { accept: 'application/json' })).headers.get('etag');
      expect(v3).to.not.equal(plain);
    });

    it('change when the body changes', async () => {
      const before = (await get(REPO, 'tokenA')).headers.get('etag');
      fake.setResource(REPO, { id: 1, full_name: 'octo/hello', private: false, stargazers_count: 1 });
      const after = (await get(REPO, 'tokenA')).headers.get('etag');
      expect(after).to.not.equal(before);
    });
  });

  describe('conditional requests', () => {
    it('answers a matching If-None-Match with a 304 that is not charged', async () => {
      const first = await get(REPO, 'tokenA');
      const etag = first.headers.get('etag') ?? '';
      const res = await get(REPO, 'tokenA', { 'if-none-match': etag });
      expect(res.status).to.equal(304);
      expect(await res.text()).to.equal('');
      expect(res.headers.get('etag')).to.equal(etag);
      expect(res.headers.get('x-ratelimit-remaining')).to.equal('4999');
      expect(res.headers.get('x-ratelimit-used')).to.equal('1');
      expect(res.headers.get('cache-control')).to.match(/^private, max-age=60\b/);
      const stats = fake.stats;
      expect(stats).to.include({ requests: 2, charged: 1, notModified: 1 });
      expect(fake.requestLog.at(-1)).to.include({ status: 304, ifNoneMatch: etag, charged: false });
    });

    it('compares weakly and accepts lists and `*`', async () => {
      const etag = (await get(REPO, 'tokenA')).headers.get('etag') ?? '';
      const strong = etag.replace(/^W\//, '');
      expect((await get(REPO, 'tokenA', { 'if-none-match': strong })).status).to.equal(304);
      expect((await get(REPO, 'tokenA', { 'if-none-match': `"other", ${etag}` })).status).to.equal(304);
      expect((await get(REPO, 'tokenA', { 'if-none-match': '*' })).status).to.equal(304);
      expect((await get(REPO, 'tokenA', { 'if-none-match': '"other"' })).status).to.equal(200);
    });

    it("never answers 304 to another token's ETag", async () => {
      const etagA = (await get(REPO, 'tokenA')).headers.get('etag') ?? '';
      expect((await get(REPO, 'tokenB', { 'if-none-match': etagA })).status).to.equal(200);
    });

    it('answers If-Modified-Since not older than Last-Modified with a free 304, and an older one with 200', async () => {
      const fresh = await get(REPO, 'tokenA', { 'if-modified-since': 'Wed, 01 Jan 2025 10:00:00 GMT' });
      expect(fresh.status).to.equal(304);
      const old = await get(REPO, 'tokenA', { 'if-modified-since': 'Wed, 01 Jan 2025 09:59:59 GMT' });
      expect(old.status).to.equal(200);
      expect(fake.stats).to.include({ charged: 1, notModified: 1 });
    });

    it('lets If-None-Match decide when both validators are present', async () => {
      const res = await get(REPO, 'tokenA', { 'if-none-match': '"stale"', 'if-modified-since': 'Wed, 01 Jan 2025 10:00:00 GMT' });
      expect(res.status).to.equal(200);
    });

    it('charges anonymous 304s, as GitHub only waives them for authorized requests', async () => {
      const etag = (await get(REPO)).headers.get('etag') ?? '';
      const res = await get(REPO, undefined, { 'if-none-match': etag });
      expect(res.status).to.equal(304);
      expect(res.headers.get('x-ratelimit-remaining')).to.equal('3');
    });
  });

  describe('authorization', () => {
    it('shows a private resource to its token only, and hides it from others with 404', async () => {
      expect((await get(PRIVATE, 'tokenA')).status).to.equal(200);
      const other = await get(PRIVATE, 'tokenB');
      expect(other.status).to.equal(404);
      expect(await other.json()).to.include({ message: 'Not Found' });
      expect((await get(PRIVATE)).status).to.equal(404);
    });

    it('refuses an unknown token with 401 Bad credentials, uncharged', async () => {
      const res = await get(REPO, 'not-a-token');
      expect(res.status).to.equal(401);
      expect(await res.json()).to.include({ message: 'Bad credentials' });
      expect(fake.stats.charged).to.equal(0);
      expect(fake.stats.byToken).to.deep.equal({ invalid: 1 });
    });

    it('never puts a token in its stats or request log', async () => {
      await get(REPO, 'tokenA');
      await get(REPO, 'tokenB');
      await get(REPO, 'not-a-token');
      const dump = JSON.stringify([fake.stats, fake.requestLog]);
      expect(dump).to.not.match(/tokenA|tokenB|not-a-token/);
      expect(fake.stats.byToken).to.deep.equal({ alice: 1, bob: 1, invalid: 1 });
    });
  });

  describe('primary rate limit', () => {
    it('refuses with 403, remaining 0 and the reset time once the window is spent, and reopens after reset', async () => {
      for (let i = 0; i < 3; i += 1) expect((await get(REPO, 'tokenB')).status).to.equal(200);
      const res = await get(REPO, 'tokenB');
      expect(res.status).to.equal(403);
      expect((await res.json() as { message: string }).message).to.match(/^API rate limit exceeded for bob/);
      expect(res.headers.get('x-ratelimit-remaining')).to.equal('0');
      expect(res.headers.get('x-ratelimit-reset')).to.equal(String(T0 / 1000 + 3600));
      expect(fake.stats.charged).to.equal(3);

      // Other windows are untouched.
      expect((await get(REPO, 'tokenA')).status).to.equal(200);

      clock = T0 + 3600 * 1000;
      const again = await get(REPO, 'tokenB');
      expect(again.status).to.equal(200);
      expect(again.headers.get('x-ratelimit-remaining')).to.equal('2');
    });

    it('still answers a free 304 to a token whose window is spent', async () => {
      const etag = (await get(REPO, 'tokenB')).headers.get('etag') ?? '';
      fake.rateLimitToken('tokenB', { resetInSeconds: 600 });
      expect((await get(REPO, 'tokenB', { 'if-none-match': etag })).status).to.equal(304);
      expect((await get(REPO, 'tokenB')).status).to.equal(403);
    });

    it('rateLimitToken can exhaust a window with a chosen reset and status', async () => {
      fake.rateLimitToken('tokenA', { resetInSeconds: 120, status: 429 });
      const res = await get(REPO, 'tokenA');
      expect(res.status).to.equal(429);
      expect(res.headers.get('x-ratelimit-remaining')).to.equal('0');
      expect(res.headers.get('x-ratelimit-reset')).to.equal(String(T0 / 1000 + 120));
      expect(fake.rateLimitState('tokenA')).to.include({ remaining: 0, limit: 5000 });
      clock += 120 * 1000;
      expect((await get(REPO, 'tokenA')).status).to.equal(200);
    });
  });

  describe('secondary rate limits', () => {
    it('rateLimitToken with retryAfterSeconds refuses everything of that token with retry-after until it passes', async () => {
      fake.rateLimitToken('tokenA', { retryAfterSeconds: 30 });
      const res = await get(REPO, 'tokenA');
      expect(res.status).to.equal(403);
      expect(res.headers.get('retry-after')).to.equal('30');
      expect(res.headers.get('x-ratelimit-remaining')).to.equal('5000');
      expect((await res.json() as { message: string }).message).to.match(/secondary rate limit/);
      expect((await get(REPO, 'tokenB')).status).to.equal(200);

      clock += 10_000;
      expect((await get(REPO, 'tokenA')).headers.get('retry-after')).to.equal('20');
      clock += 20_000;
      expect((await get(REPO, 'tokenA')).status).to.equal(200);
    });

    it('secondaryLimitNext refuses the next N requests with retry-after, uncharged', async () => {
      fake.secondaryLimitNext(2, 60);
      for (let i = 0; i < 2; i += 1) {
        const res = await get(REPO, 'tokenA');
        expect(res.status).to.equal(403);
        expect(res.headers.get('retry-after')).to.equal('60');
        expect(await res.json()).to.include({ message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' });
      }
      expect((await get(REPO, 'tokenA')).status).to.equal(200);
      expect(fake.stats.charged).to.equal(1);
    });
  });

  describe('faults', () => {
    it('failNext answers the next N requests of a path with a 5xx, uncharged, and leaves other paths alone', async () => {
      fake.failNext(2, 502, { path: REPO });
      expect((await get(PRIVATE, 'tokenA')).status).to.equal(200);
      expect((await get(REPO, 'tokenA')).status).to.equal(502);
      expect((await get(REPO, 'tokenA')).status).to.equal(502);
      expect((await get(REPO, 'tokenA')).status).to.equal(200);
      expect(fake.stats.byStatus).to.deep.equal({ 200: 2, 502: 2 });
      expect(fake.stats.charged).to.equal(2);
    });

    it('a fault with count Infinity lasts until clearFaults', async () => {
      fake.failNext(Infinity, 503);
      for (let i = 0; i < 3; i += 1) expect((await get(REPO, 'tokenA')).status).to.equal(503);
      fake.clearFaults();
      expect((await get(REPO, 'tokenA')).status).to.equal(200);
    });

    it('resetNext destroys the connection without an answer, so fetch rejects', async () => {
      fake.resetNext(1);
      let error: unknown;
      try {
        await get(REPO, 'tokenA');
      } catch (e) {
        error = e;
      }
      expect(error).to.be.instanceOf(TypeError);
      expect((error as { cause?: { code?: string } }).cause?.code).to.equal('ECONNRESET');
      expect(fake.stats.resets).to.equal(1);
      expect((await get(REPO, 'tokenA')).status).to.equal(200);
    });

    it('hangNext never answers: the client times out, and close() still ends promptly', async function () {
      this.timeout(5000);
      fake.hangNext(2);
      let error: unknown;
      try {
        await get(REPO, 'tokenA', {}, { signal: AbortSignal.timeout(50) });
      } catch (e) {
        error = e;
      }
      expect(error).to.have.property('name', 'TimeoutError');
      // A second hung request is still open when the server closes.
      const pending = get(REPO, 'tokenA').then(() => 'answered', () => 'failed');
      await fake.waitFor((s) => s.hangs === 2);
      await fake.close();
      expect(await pending).to.equal('failed');
    });
  });

  describe('latency and concurrency', () => {
    it('delays answers by the injected latency: a slow path answers after a fast one sent later', async () => {
      fake.setLatency(200, { path: REPO });
      const order: string[] = [];
      const slow = get(REPO, 'tokenA').then(() => order.push('slow'));
      await fake.waitFor((s) => s.inFlight === 1);
      expect(fake.requestLog).to.have.length(0); // received, not answered yet
      const fast = get(PRIVATE, 'tokenA').then(() => order.push('fast'));
      await Promise.all([slow, fast]);
      expect(order).to.deep.equal(['fast', 'slow']);
    });

    it('counts the most requests in flight at once', async () => {
      fake.pause();
      const requests = Array.from({ length: 8 }, () => get(REPO, 'tokenA'));
      await fake.waitFor((s) => s.inFlight === 8);
      fake.resume();
      const statuses = (await Promise.all(requests)).map((r) => r.status);
      expect(statuses).to.deep.equal(Array(8).fill(200));
      expect(fake.stats).to.include({ maxConcurrent: 8, inFlight: 0, requests: 8 });

      fake.resetStats();
      await get(REPO, 'tokenA');
      expect(fake.stats).to.include({ maxConcurrent: 1, requests: 1 });
    });
  });

  describe('pagination', () => {
    const ISSUES = `${REPO}/issues`;
    const items = Array.from({ length: 7 }, (_, i) => ({ number: i + 1, title: `issue ${i + 1}` }));

    beforeEach(() => {
      fake.setCollection(ISSUES, items);
    });

    it('sends RFC 5988 link headers with prev, next, last and first', async () => {
      const res = await get(`${ISSUES}?state=open&per_page=3&page=2`, 'tokenA');
      expect(await res.json()).to.deep.equal(items.slice(3, 6));
      const link = res.headers.get('link') ?? '';
      const url = (page: number): string => `${fake.url}${ISSUES}?state=open&per_page=3&page=${page}`;
      expect(link).to.equal(
        `<${url(1)}>; rel="prev", <${url(3)}>; rel="next", <${url(3)}>; rel="last", <${url(1)}>; rel="first"`,
      );
      const only = await get(ISSUES, 'tokenA');
      expect(only.headers.get('link')).to.equal(null);
      expect(await only.json()).to.have.length(7);
    });

    it('gives each page its own ETag and stats key', async () => {
      const p1 = (await get(`${ISSUES}?per_page=3&page=1`, 'tokenA')).headers.get('etag');
      const p2 = (await get(`${ISSUES}?per_page=3&page=2`, 'tokenA')).headers.get('etag');
      expect(p1).to.not.equal(p2);
      expect(fake.stats.byPath).to.deep.equal({ [`${ISSUES}?per_page=3&page=1`]: 1, [`${ISSUES}?per_page=3&page=2`]: 1 });
    });

    it('lets octokit.paginate collect every item', async () => {
      const octokit = new Octokit({ baseUrl: fake.url, auth: 'tokenA' });
      const all = await octokit.paginate('GET /repos/{owner}/{repo}/issues', { owner: 'octo', repo: 'hello', per_page: 3 });
      expect(all.map((issue) => issue.number)).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
      expect(fake.stats.requests).to.equal(3);
    });

    it('addresses an item by its number', async () => {
      const res = await get(`${ISSUES}/5`, 'tokenA');
      expect(await res.json()).to.deep.equal({ number: 5, title: 'issue 5' });
    });
  });

  describe('writes', () => {
    const ISSUES = `${REPO}/issues`;

    beforeEach(() => {
      fake.setCollection(ISSUES, [{ number: 1, title: 'first' }]);
    });

    it('POST to a collection appends the item and answers 201; the collection changes its ETag', async () => {
      const before = (await get(ISSUES, 'tokenA')).headers.get('etag');
      const octokit = new Octokit({ baseUrl: fake.url, auth: 'tokenA' });
      const created = await octokit.request('POST /repos/{owner}/{repo}/issues', { owner: 'octo', repo: 'hello', title: 'second' });
      expect(created.status).to.equal(201);
      expect(created.data).to.include({ title: 'second' });
      const after = await get(ISSUES, 'tokenA');
      expect(await after.json()).to.deep.equal([{ number: 1, title: 'first' }, { title: 'second' }]);
      expect(after.headers.get('etag')).to.not.equal(before);
      expect(fake.stats).to.include({ writes: 1, charged: 3 });
    });

    it('PATCH merges into a resource and changes its ETag and Last-Modified', async () => {
      const before = await get(REPO, 'tokenA');
      const res = await fetch(`${fake.url}${REPO}`, {
        method: 'PATCH',
        headers: { authorization: 'token tokenA', 'content-type': 'application/json' },
        body: JSON.stringify({ description: 'hi' }),
      });
      expect(res.status).to.equal(200);
      expect(await res.json()).to.include({ id: 1, description: 'hi' });
      const after = await get(REPO, 'tokenA', { 'if-none-match': before.headers.get('etag') ?? '' });
      expect(after.status).to.equal(200);
      expect(after.headers.get('etag')).to.not.equal(before.headers.get('etag'));
      expect(after.headers.get('last-modified')).to.not.equal(before.headers.get('last-modified'));
      expect(fake.getResource(REPO)).to.include({ description: 'hi' });
    });

    it('PATCH on a collection item changes that item', async () => {
      const octokit = new Octokit({ baseUrl: fake.url, auth: 'tokenA' });
      await octokit.request('PATCH /repos/{owner}/{repo}/issues/{issue_number}', { owner: 'octo', repo: 'hello', issue_number: 1, state: 'closed' });
      expect(await (await get(`${ISSUES}/1`, 'tokenA')).json()).to.deep.equal({ number: 1, title: 'first', state: 'closed' });
    });

    it('DELETE removes the resource (204, then 404)', async () => {
      const res = await fetch(`${fake.url}${REPO}`, { method: 'DELETE', headers: { authorization: 'token tokenA' } });
      expect(res.status).to.equal(204);
      expect((await get(REPO, 'tokenA')).status).to.equal(404);
    });

    it('refuses anonymous writes with 401 and hides private resources from writers without access', async () => {
      const anon = await fetch(`${fake.url}${REPO}`, { method: 'DELETE' });
      expect(anon.status).to.equal(401);
      const other = await fetch(`${fake.url}${PRIVATE}`, { method: 'DELETE', headers: { authorization: 'token tokenB' } });
      expect(other.status).to.equal(404);
      expect((await get(PRIVATE, 'tokenA')).status).to.equal(200);
    });
  });

  describe('lifecycle', () => {
    it('close() is idempotent and refuses later connections', async () => {
      const url = fake.url;
      await fake.close();
      await fake.close();
      let error: unknown;
      try {
        await fetch(`${url}${REPO}`);
      } catch (e) {
        error = e;
      }
      expect(error).to.be.instanceOf(TypeError);
    });

    it('logs each answer with its method, path, status and token label', async () => {
      expect(fake.requestLog).to.deep.equal([]);
      await get(REPO, 'tokenA');
      expect(fake.requestLog).to.have.length(1);
      expect(fake.requestLog[0]).to.include({ method: 'GET', path: REPO, status: 200, tokenLabel: 'alice' });
    });
  });
});
