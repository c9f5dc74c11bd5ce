import { expect } from 'chai';
import { RequestError } from '@octokit/request-error';
import { Octokit } from '@octokit/rest';
import { createHash, randomBytes } from 'node:crypto';
import { githubCachePlugin, GitHubAPICache, startProxy, type ProxyServer } from '../index.js';
import { ScriptedGitHub, type ReceivedRequest, type ScriptedAnswer } from '../support/scripted-github.js';

/**
 * The cache is invisible except for speed and cost: one spec per HTTP rule, through the three ways in
 * (cache.request, the Octokit plugin, the proxy), against a server that answers exactly what each spec
 * scripts and records exactly what reached it.
 */

// Built at run time: a literal of a token's shape in the source would look like a leaked secret.
const TOKEN = `ghp_${'fidelity'.padEnd(36, 'A')}`;
const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJl';
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const JSON_TYPE = 'application/json; charset=utf-8';

describe('fidelity: what the cache changes and what it never changes', () => {
  const CachedOctokit = Octokit.plugin(githubCachePlugin);
  let github: ScriptedGitHub;
  let cache: GitHubAPICache;
  let proxy: ProxyServer;
  const octokit = (auth?: string) => new CachedOctokit({ auth, baseUrl: github.url, cache, log: quiet });
  const sent = (): ReceivedRequest[] => github.requests;

  async function open(script: (request: ReceivedRequest) => ScriptedAnswer): Promise<void> {
    github = await ScriptedGitHub.start(script);
    cache = await GitHubAPICache.create({ githubApiUrl: github.url, persistence: 'off' });
    proxy = await startProxy({ cache, port: 0, processMetrics: false });
  }
  afterEach(async () => {
    await proxy?.close();
    await cache?.close();
    await github?.close();
  });

  describe('bodies', () => {
    it('gives Octokit the real bytes of raw, diff and binary answers (not "")', async () => {
      const archive = randomBytes(3000);
      await open((r) => {
        if (r.url.endsWith('/contents/README.md')) return { status: 200, headers: { 'content-type': 'application/vnd.github.raw; charset=utf-8', etag: '"r"' }, body: '# hello\n' };
        if (r.url.endsWith('/pulls/1')) return { status: 200, headers: { 'content-type': 'application/vnd.github.diff; charset=utf-8' }, body: 'diff --git a/x b/x\n' };
        return { status: 200, headers: { 'content-type': 'application/x-gzip' }, body: archive };
      });
      const client = octokit(TOKEN);
      const raw = await client.rest.repos.getContent({ owner: 'o', repo: 'r', path: 'README.md', mediaType: { format: 'raw' } });
      expect(raw.data).to.equal('# hello\n');
      const diff = await client.rest.pulls.get({ owner: 'o', repo: 'r', pull_number: 1, mediaType: { format: 'diff' } });
      expect(diff.data).to.equal('diff --git a/x b/x\n');
      const tarball = await client.request('GET /repos/{owner}/{repo}/tarball/{ref}', { owner: 'o', repo: 'r', ref: 'main' });
      expect(Buffer.compare(Buffer.from(tarball.data as ArrayBuffer), archive)).to.equal(0);
    });

    it('keeps bodies as bytes: invalid UTF-8 (a build log) and ISO-8859-1 text come back unaltered, and decode by their charset', async () => {
      const log = Buffer.concat([Buffer.from('step 1 ok\n'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('\nstep 2 ok\n')]);
      const latin1 = Buffer.from('caf\u00e9 cr\u00e8me', 'latin1');
      await open((r) => (r.url.endsWith('/logs')
        ? { status: 200, headers: { 'content-type': 'text/plain' }, body: log }
        : { status: 200, headers: { 'content-type': 'text/plain; charset=iso-8859-1' }, body: latin1 }));
      for (const path of ['/repos/o/r/actions/jobs/1/logs', '/repos/o/r/readme-latin1']) {
        const expected = path.endsWith('/logs') ? log : latin1;
        const first = Buffer.from(await (await fetch(`${proxy.url}${path}`, { headers: { authorization: `token ${TOKEN}` } })).arrayBuffer());
        const again = await fetch(`${proxy.url}${path}`, { headers: { authorization: `token ${TOKEN}` } });
        expect(again.headers.get('x-cache-source')).to.equal('memory');
        expect(Buffer.compare(first, expected), `${path} first`).to.equal(0);
        expect(Buffer.compare(Buffer.from(await again.arrayBuffer()), expected), `${path} from the cache`).to.equal(0);
      }
      const decoded = await cache.request('GET /repos/o/r/readme-latin1', {}, { token: TOKEN });
      expect(decoded.data).to.equal('caf\u00e9 cr\u00e8me');
      expect(Buffer.compare(Buffer.from(decoded.bytes), latin1)).to.equal(0);
    });

    it('passes GitHub\'s error bodies through the proxy byte for byte (not re-serialized)', async () => {
      const pretty = `{\n  "message": "Validation Failed",\n  "errors": [\n    {\n      "resource": "Issue",\n      "code": "missing_field"\n    }\n  ]\n}\n`;
      await open(() => ({ status: 422, headers: { 'content-type': JSON_TYPE }, body: pretty }));
      const response = await fetch(`${proxy.url}/repos/o/r/issues`, { method: 'POST', headers: { authorization: `token ${TOKEN}` }, body: '{}' });
      expect(response.status).to.equal(422);
      expect(await response.text()).to.equal(pretty);
    });

    it('forwards request bodies byte for byte through the proxy (an octet-stream upload)', async () => {
      const upload = randomBytes(4096);
      await open(() => ({ status: 201, headers: { 'content-type': JSON_TYPE }, body: '{"id":1}' }));
      const response = await fetch(`${proxy.url}/repos/o/r/releases/1/assets?name=a.bin`, {
        method: 'POST', headers: { authorization: `token ${TOKEN}`, 'content-type': 'application/octet-stream' }, body: upload,
      });
      expect(response.status).to.equal(201);
      expect(sent()[0]!.body.length).to.equal(4096);
      expect(Buffer.compare(sent()[0]!.body, upload)).to.equal(0);
      expect(sent()[0]!.headers['content-type']).to.equal('application/octet-stream');
    });
  });

  describe('credentials', () => {
    it('sends a JWT as Bearer (GitHub Apps), from cache.request, the proxy and the plugin', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '{"slug":"app"}' }));
      await cache.request('GET /app', {}, { token: JWT });
      const viaProxy = await fetch(`${proxy.url}/app/installations`, { headers: { authorization: `Bearer ${JWT}` } });
      expect(viaProxy.status).to.equal(200);
      const viaPlugin = await octokit(JWT).request('GET /app/hook/config');
      expect(viaPlugin.headers['x-cache-source'], 'the JWT goes through the cache').to.equal('origin');
      expect(sent().map((r) => r.headers.authorization)).to.deep.equal([`Bearer ${JWT}`, `Bearer ${JWT}`, `Bearer ${JWT}`]);
    });

    it('keeps the scheme the caller used for a token (Bearer stays Bearer, token stays token)', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '{}' }));
      await fetch(`${proxy.url}/user`, { headers: { authorization: `Bearer ${TOKEN}` } });
      await fetch(`${proxy.url}/user/repos`, { headers: { authorization: `token ${TOKEN}` } });
      expect(sent().map((r) => r.headers.authorization)).to.deep.equal([`Bearer ${TOKEN}`, `token ${TOKEN}`]);
    });
  });

  describe('what may be reused', () => {
    it('revalidates a Cache-Control: no-cache answer before every reuse (a 304 is free)', async () => {
      await open((r) => (r.headers['if-none-match'] === '"s1"'
        ? { status: 304, headers: { etag: '"s1"', 'cache-control': 'no-cache' } }
        : { status: 200, headers: { 'content-type': JSON_TYPE, etag: '"s1"', 'cache-control': 'no-cache' }, body: '{"total_count":1}' }));
      const first = await cache.request('GET /search/issues', { q: 'x' }, { token: TOKEN });
      const second = await cache.request('GET /search/issues', { q: 'x' }, { token: TOKEN });
      expect(first.source).to.equal('origin');
      expect(second.source).to.equal('revalidated');
      expect(sent()).to.have.length(2);
      expect(sent()[1]!.headers['if-none-match']).to.equal('"s1"');
    });

    it('keys answers by X-GitHub-Api-Version: another version is another representation', async () => {
      await open((r) => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: JSON.stringify({ version: r.headers['x-github-api-version'] }) }));
      const a = await cache.request('GET /repos/o/r', {}, { token: TOKEN, headers: { 'x-github-api-version': '2022-11-28' } });
      const b = await cache.request('GET /repos/o/r', {}, { token: TOKEN, headers: { 'x-github-api-version': '2026-03-10' } });
      const aAgain = await cache.request('GET /repos/o/r', {}, { token: TOKEN, headers: { 'x-github-api-version': '2022-11-28' } });
      expect(a.data).to.deep.equal({ version: '2022-11-28' });
      expect(b.data).to.deep.equal({ version: '2026-03-10' });
      expect(aAgain.source).to.equal('memory');
      expect(aAgain.data).to.deep.equal({ version: '2022-11-28' });
      expect(sent()).to.have.length(2);
    });

    it('answers a HEAD from a fresh cached GET of the same resource', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE, etag: '"h"' }, body: '{"id":1}' }));
      await cache.request('GET /repos/o/r', {}, { token: TOKEN });
      const head = await fetch(`${proxy.url}/repos/o/r`, { method: 'HEAD', headers: { authorization: `token ${TOKEN}` } });
      expect(head.status).to.equal(200);
      expect(head.headers.get('etag')).to.equal('"h"');
      expect(head.headers.get('x-cache-source')).to.equal('memory');
      expect(sent()).to.have.length(1);
    });
  });

  describe('conditional requests from the caller', () => {
    it('raises Octokit\'s 304 RequestError for the caller\'s matching If-None-Match, as plain Octokit does', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE, etag: '"e1"' }, body: '{"id":1}' }));
      const client = octokit(TOKEN);
      await client.rest.repos.get({ owner: 'o', repo: 'r' });
      let caught: unknown;
      try {
        await client.rest.repos.get({ owner: 'o', repo: 'r', headers: { 'if-none-match': '"e1"' } });
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(RequestError);
      expect((caught as RequestError).status).to.equal(304);
    });

    it('answers If-Modified-Since alone with 304 when the resource is not newer', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE, 'last-modified': 'Tue, 10 Oct 2017 16:00:00 GMT' }, body: '{"id":1}' }));
      const headers = { authorization: `token ${TOKEN}`, 'if-modified-since': 'Wed, 11 Oct 2017 16:00:00 GMT' };
      expect((await fetch(`${proxy.url}/repos/o/r`, { headers })).status).to.equal(304);
      const older = { ...headers, 'if-modified-since': 'Mon, 09 Oct 2017 16:00:00 GMT' };
      expect((await fetch(`${proxy.url}/repos/o/r`, { headers: older })).status).to.equal(200);
    });
  });

  describe('URLs', () => {
    it('rewrites link and location headers under the GitHub API to the proxy, so pagination stays on the proxy', async () => {
      await open((r) => ({
        status: 200,
        headers: { 'content-type': JSON_TYPE, link: `<${github.url}/repositories/1/issues?page=2>; rel="next", <https://docs.github.com/x>; rel="help"` },
        body: JSON.stringify([{ url: r.url }]),
      }));
      const response = await fetch(`${proxy.url}/repos/o/r/issues`, { headers: { authorization: `token ${TOKEN}` } });
      expect(response.headers.get('link')).to.equal(`<${proxy.url}/repositories/1/issues?page=2>; rel="next", <https://docs.github.com/x>; rel="help"`);
    });

    it('passes a redirect through the proxy (location rewritten) and follows it in cache.request, reporting the final URL', async () => {
      await open((r) => (r.url === '/repos/old/r'
        ? { status: 301, headers: { location: `${github.url}/repositories/9`, 'content-type': JSON_TYPE }, body: '{"message":"Moved Permanently"}' }
        : { status: 200, headers: { 'content-type': JSON_TYPE }, body: '{"id":9}' }));
      const viaProxy = await fetch(`${proxy.url}/repos/old/r`, { headers: { authorization: `token ${TOKEN}` }, redirect: 'manual' });
      expect(viaProxy.status).to.equal(301);
      expect(viaProxy.headers.get('location')).to.equal(`${proxy.url}/repositories/9`);
      const followed = await cache.request('GET /repos/old/r', {}, { token: TOKEN });
      expect(followed.status).to.equal(200);
      expect(followed.data).to.deep.equal({ id: 9 });
      expect(followed.url).to.equal(`${github.url}/repositories/9`);
    });

    it('sends the caller\'s query in the caller\'s order, and keeps trailing slashes', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '[]' }));
      await fetch(`${proxy.url}/repos/o/r/issues?state=all&labels=bug`, { headers: { authorization: `token ${TOKEN}`, accept: 'application/vnd.github.full+json' } });
      await fetch(`${proxy.url}/repos/o/r/contents/dir/?ref=main`, { headers: { authorization: `token ${TOKEN}`, accept: 'application/vnd.github.object+json' } });
      expect(sent().map((r) => r.url)).to.deep.equal(['/repos/o/r/issues?state=all&labels=bug', '/repos/o/r/contents/dir/?ref=main']);
    });
  });

  describe('the plugin\'s base URL', () => {
    it('sends a client built without baseUrl to the cache\'s githubApiUrl (a GitHub Enterprise Server, say)', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '{"login":"octo"}' }));
      const client = new CachedOctokit({ auth: TOKEN, cache, log: quiet });
      const me = await client.rest.users.getAuthenticated();
      expect(me.data).to.deep.equal({ login: 'octo' });
      expect(me.headers['x-cache-source']).to.equal('origin');
      expect(sent().map((r) => r.url)).to.deep.equal(['/user']);
    });

    it('keeps the trailing slash of a base URL with a path (GitHub Enterprise Server\'s /api/v3/)', async () => {
      github = await ScriptedGitHub.start(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '{"root":true}' }));
      cache = await GitHubAPICache.create({ githubApiUrl: `${github.url}/api/v3`, persistence: 'off' });
      proxy = await startProxy({ cache, port: 0, processMetrics: false });
      const client = new CachedOctokit({ auth: TOKEN, baseUrl: `${github.url}/api/v3`, cache, log: quiet });
      const root = await client.request('GET /');
      expect(root.data).to.deep.equal({ root: true });
      expect(sent().map((r) => r.url)).to.deep.equal(['/api/v3/']);
    });

    it('lets a client\'s own different baseUrl win, without the cache, and says so once', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '{}' }));
      const other = await ScriptedGitHub.start(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '{"other":true}' }));
      const warnings: string[] = [];
      try {
        const client = new CachedOctokit({ auth: TOKEN, baseUrl: other.url, cache, log: { ...quiet, warn: (m: string) => warnings.push(m) } });
        const first = await client.request('GET /user');
        await client.request('GET /user');
        expect(first.data).to.deep.equal({ other: true });
        expect(first.headers['x-cache-source']).to.equal(undefined);
        expect(other.requests).to.have.length(2);
        expect(sent()).to.have.length(0);
        expect(warnings).to.have.length(1);
        expect(warnings[0]).to.contain(other.url).and.to.contain(github.url);
      } finally {
        await other.close();
      }
    });
  });

  describe('headers', () => {
    it('forwards the client\'s user-agent through the proxy', async () => {
      await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE }, body: '{}' }));
      await fetch(`${proxy.url}/user`, { headers: { authorization: `token ${TOKEN}`, 'user-agent': 'my-ci-tool/1.2' } });
      expect(sent()[0]!.headers['user-agent']).to.equal('my-ci-tool/1.2');
    });

    it('gives a cached answer the scope\'s current x-ratelimit-* and the x-github-request-id it came from', async () => {
      let remaining = 4999;
      await open((r) => ({
        status: 200,
        headers: {
          'content-type': JSON_TYPE, 'x-github-request-id': `ID-${r.url}`, 'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': String(remaining--),
          'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + 3600), 'x-ratelimit-resource': 'core', 'x-ratelimit-used': String(5000 - remaining),
        },
        body: '{}',
      }));
      await cache.request('GET /repos/o/a', {}, { token: TOKEN });
      await cache.request('GET /repos/o/b', {}, { token: TOKEN });
      const cached = await cache.request('GET /repos/o/a', {}, { token: TOKEN });
      expect(cached.source).to.equal('memory');
      expect(cached.headers['x-ratelimit-remaining'], 'the window as GitHub last told it').to.equal('4998');
      expect(cached.headers['x-github-request-id']).to.equal('ID-/repos/o/a');
    });

    it('marks every answer the proxy makes itself with x-cache-source: proxy', async () => {
      await open(() => ({ status: 200, body: '{}' }));
      const refused = await fetch(`${proxy.url}/user`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
      expect(refused.status).to.equal(401);
      expect(refused.headers.get('x-cache-source')).to.equal('proxy');
      const method = await fetch(`${proxy.url}/user`, { method: 'OPTIONS' });
      expect(method.status).to.equal(405);
      expect(method.headers.get('x-cache-source')).to.equal('proxy');
    });
  });

  it('sends each body exactly once per key: identical bytes from the cache as from GitHub', async () => {
    const body = `{"name":"caf\u00e9","emoji":"\u{1F600}"}`;
    await open(() => ({ status: 200, headers: { 'content-type': JSON_TYPE, etag: '"u"' }, body }));
    const first = await fetch(`${proxy.url}/repos/o/r`, { headers: { authorization: `token ${TOKEN}` } });
    const firstBytes = Buffer.from(await first.arrayBuffer());
    const second = await fetch(`${proxy.url}/repos/o/r`, { headers: { authorization: `token ${TOKEN}` } });
    const secondBytes = Buffer.from(await second.arrayBuffer());
    expect(second.headers.get('x-cache-source')).to.equal('memory');
    expect(createHash('sha256').update(secondBytes).digest('hex')).to.equal(createHash('sha256').update(firstBytes).digest('hex'));
    expect(secondBytes.toString('utf8')).to.equal(body);
  });
});
