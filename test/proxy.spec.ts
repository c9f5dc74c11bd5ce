import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { p2pStatsOf } from '../src/proxy/p2p-stats.js';
import { ProxyMetrics } from '../src/proxy/proxy-metrics.js';
import { startProxy, type ProxyServer } from '../src/proxy/proxy-server.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { FakeClock } from '../support/clock.js';
import { makeTempDir } from '../support/temp-dir.js';
import { childEnv } from './support/child-env.js';

const CLI = fileURLToPath(new URL('../bin/cli.js', import.meta.url));
const TOKEN_A = 'test_proxyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const TOKEN_B = 'test_proxyBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';

/** A `github-p2p-cache serve` child process. */
interface ServeProcess {
  child: ChildProcess;
  url: string;
  port: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}


const running = new Set<ChildProcess>();

/** Starts `serve` with `args` and resolves with its URL once it printed its listening line. */
function serve(args: string[], env: Record<string, string>): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        const event = JSON.parse(line) as { event?: string; url?: string; port?: number };
        if (event.event === 'listening' && event.url !== undefined && event.port !== undefined) {
          resolve({ child, url: event.url, port: event.port, stdout: () => out, stderr: () => err, exited });
        }
      }
    });
    void exited.then(({ code, signal }) => reject(new Error(`serve exited (${code ?? signal}) before listening: ${err}`)));
  });
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function killAll(): Promise<void> {
  await Promise.all([...running].map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  })));
  running.clear();
}

describe('github-p2p-cache serve (the proxy as a child process)', () => {
  let github: FakeGitHub;
  let temp: { dir: string; cleanup: () => void };

  beforeEach(async () => {
    github = await FakeGitHub.start({ tokens: { [TOKEN_A]: { label: 'A' }, [TOKEN_B]: { label: 'B' } } });
    github.setResource('/repos/octo/hello', { id: 1, name: 'hello', private: false });
    github.setResource('/repos/octo/secret', { id: 2, name: 'secret', private: true }, { visibleTo: [TOKEN_A] });
    temp = makeTempDir();
  });
  afterEach(async () => {
    await killAll();
    await github.close();
    temp.cleanup();
  });

  const start = (extra: string[] = []) =>
    serve(['--port', '0', '--persistence', 'off', '--github-api-url', github.url, ...extra], { CACHE_DIR: temp.dir });

  it('answers GitHub calls through the cache: origin first, then memory, with GitHub\'s status, headers and body', async () => {
    const proxy = await start();
    const first = await fetch(`${proxy.url}/repos/octo/hello`, { headers: { authorization: `token ${TOKEN_A}` } });
    expect(first.status).to.equal(200);
    expect(first.headers.get('x-cache-source')).to.equal('origin');
    expect(first.headers.get('etag')).to.be.a('string');
    expect(first.headers.get('content-type')).to.match(/json/);
    const body = await first.text();
    expect(JSON.parse(body)).to.deep.equal({ id: 1, name: 'hello', private: false });

    const second = await fetch(`${proxy.url}/repos/octo/hello`, { headers: { authorization: `token ${TOKEN_A}` } });
    expect(second.status).to.equal(200);
    expect(second.headers.get('x-cache-source')).to.equal('memory');
    expect(second.headers.get('etag')).to.equal(first.headers.get('etag'));
    expect(await second.text()).to.equal(body);
    expect(github.stats.requests).to.equal(1);
  });

  it('lets the Authorization header select the scope: token B does not see token A\'s private resource', async () => {
    const proxy = await start();
    const a = await fetch(`${proxy.url}/repos/octo/secret`, { headers: { authorization: `token ${TOKEN_A}` } });
    expect(a.status).to.equal(200);
    expect(await a.json()).to.deep.include({ name: 'secret' });

    const b = await fetch(`${proxy.url}/repos/octo/secret`, { headers: { authorization: `Bearer ${TOKEN_B}` } });
    expect(b.status).to.equal(404);
    expect(b.headers.get('x-cache-source')).to.equal('origin');
    expect(await b.json()).to.deep.include({ message: 'Not Found' });

    const anonymous = await fetch(`${proxy.url}/repos/octo/secret`);
    expect(anonymous.status).to.equal(404);

    // `Bearer` and `token` are the same token, so the same scope.
    const aAgain = await fetch(`${proxy.url}/repos/octo/secret`, { headers: { authorization: `Bearer ${TOKEN_A}` } });
    expect(aAgain.headers.get('x-cache-source')).to.equal('memory');
    expect(github.stats.byToken).to.deep.include({ A: 1, B: 1, anonymous: 1 });
  });

  it('passes a write through and drops the cached resource', async () => {
    const proxy = await start();
    const auth = { authorization: `token ${TOKEN_A}` };
    await (await fetch(`${proxy.url}/repos/octo/hello`, { headers: auth })).text();
    const patch = await fetch(`${proxy.url}/repos/octo/hello`, {
      method: 'PATCH',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'renamed' }),
    });
    expect(patch.status).to.equal(200);
    expect(patch.headers.get('x-cache-source')).to.equal('origin');
    expect(await patch.json()).to.deep.include({ name: 'renamed' });
    expect(github.stats.writes).to.equal(1);

    const after = await fetch(`${proxy.url}/repos/octo/hello`, { headers: auth });
    expect(after.headers.get('x-cache-source')).to.equal('origin');
    expect(await after.json()).to.deep.include({ name: 'renamed' });
  });

  it('answers /healthz with the cache open and P2P disabled', async () => {
    const proxy = await start();
    const health = await fetch(`${proxy.url}/healthz`);
    expect(health.status).to.equal(200);
    const body = await health.json() as Record<string, unknown>;
    expect(body).to.include({ status: 'ok', cache: 'open', p2p: 'disabled' });
    expect(body['uptime']).to.be.a('number');
    expect(github.stats.requests).to.equal(0);
  });

  it('exposes request, upstream, rate-limit, latency and peer metrics on /metrics, never the token', async () => {
    const proxy = await start();
    for (let i = 0; i < 2; i++) await (await fetch(`${proxy.url}/repos/octo/hello`, { headers: { authorization: `token ${TOKEN_A}` } })).text();
    const metrics = await fetch(`${proxy.url}/metrics`);
    expect(metrics.status).to.equal(200);
    expect(metrics.headers.get('content-type')).to.match(/^text\/plain/);
    const text = await metrics.text();
    expect(text).to.include('github_cache_proxy_requests_total{source="origin",status="200"} 1');
    expect(text).to.include('github_cache_proxy_requests_total{source="memory",status="200"} 1');
    expect(text).to.match(/^github_cache_upstream_requests_total 1$/m);
    expect(text).to.match(/^github_cache_rate_limit_remaining\{scope="[0-9a-f]{32}",resource="core"\} 4999$/m);
    expect(text).to.include('github_cache_proxy_request_duration_seconds_bucket{le="0.001",source="memory"}');
    expect(text).to.match(/^github_cache_p2p_enabled 0$/m);
    expect(text).to.match(/^github_cache_p2p_connected_peers 0$/m);
    expect(text).to.include('process_cpu_user_seconds_total');
    expect(text).not.to.include(TOKEN_A);

    const stats = await (await fetch(`${proxy.url}/_cache/stats`)).text();
    expect(JSON.parse(stats)).to.deep.include({ apiCallsMade: 1, hits: 1 });
    expect(stats).not.to.include(TOKEN_A);
    expect(proxy.stdout() + proxy.stderr()).not.to.include(TOKEN_A);
  });

  it('on SIGTERM finishes the request in flight, exits 0 and releases the port (a new proxy binds it at once)', async () => {
    const proxy = await start();
    github.setLatency(500, { path: '/repos/octo/hello' });
    const inFlight = fetch(`${proxy.url}/repos/octo/hello`, { headers: { authorization: `token ${TOKEN_A}` } });
    await github.waitFor((s) => s.inFlight >= 1);
    proxy.child.kill('SIGTERM');

    const response = await inFlight;
    expect(response.status).to.equal(200);
    expect(await response.json()).to.deep.include({ name: 'hello' });
    const { code } = await proxy.exited;
    expect(code).to.equal(0);
    expect(proxy.stdout()).to.include('"event":"stopped"');

    const next = await serve(['--port', String(proxy.port), '--persistence', 'off', '--github-api-url', github.url], { CACHE_DIR: temp.dir });
    expect(next.port).to.equal(proxy.port);
    expect((await fetch(`${next.url}/healthz`)).status).to.equal(200);
  });

  it('exits at once with 143 on a second SIGTERM while a request is still in flight', async () => {
    const proxy = await start();
    github.hangNext(1, { path: '/repos/octo/hello' });
    const hung = fetch(`${proxy.url}/repos/octo/hello`).catch((err: unknown) => err);
    await github.waitFor((s) => s.inFlight >= 1);
    proxy.child.kill('SIGTERM');
    while (!proxy.stderr().includes('SIGTERM:')) await new Promise((resolve) => setTimeout(resolve, 20));
    proxy.child.kill('SIGTERM');
    const { code } = await proxy.exited;
    expect(code).to.equal(143);
    expect(await hung).to.be.instanceOf(Error);
  });

  it('with GitHub unreachable still starts, answers /healthz, and answers GitHub calls with a 502 naming the error', async () => {
    const port = await closedPort();
    const proxy = await serve(['--port', '0', '--persistence', 'off', '--github-api-url', `http://127.0.0.1:${port}`], { CACHE_DIR: temp.dir });
    const health = await fetch(`${proxy.url}/healthz`);
    expect(health.status).to.equal(200);
    expect(await health.json()).to.include({ status: 'ok' });

    const response = await fetch(`${proxy.url}/repos/octo/hello`);
    expect(response.status).to.equal(502);
    const body = await response.json() as { message: string };
    expect(body.message).to.match(/^Upstream GitHub API unreachable: ECONNREFUSED/);
    expect((await fetch(`${proxy.url}/healthz`)).status).to.equal(200);
  });
});

describe('startProxy (in process)', () => {
  let github: FakeGitHub;
  let cache: GitHubAPICache;
  let proxy: ProxyServer;
  let clock: FakeClock;
  const auth = { authorization: `token ${TOKEN_A}` };

  beforeEach(async () => {
    clock = new FakeClock(Date.now());
    github = await FakeGitHub.start({ tokens: { [TOKEN_A]: { label: 'A' } }, now: clock.now });
    github.setResource('/repos/octo/hello', { id: 1, name: 'hello' });
    cache = await GitHubAPICache.create({ githubApiUrl: github.url, persistence: 'off', now: clock.now });
    proxy = await startProxy({ cache, port: 0, processMetrics: false });
  });
  afterEach(async () => {
    await proxy.close();
    await cache.close();
    await github.close();
  });

  it('forwards a binary body (an archive) byte for byte', async () => {
    const { createServer } = await import('node:http');
    const bytes = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0xff, 0xfe, 0x80, 0x00]);
    const api = createServer((_req, res) => {
      res.setHeader('content-type', 'application/zip');
      res.end(bytes);
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    const apiCache = await GitHubAPICache.create({ githubApiUrl: `http://127.0.0.1:${(api.address() as { port: number }).port}`, persistence: 'off' });
    const apiProxy = await startProxy({ cache: apiCache, port: 0, processMetrics: false });
    try {
      const response = await fetch(`${apiProxy.url}/repos/octo/hello/zipball`, { headers: auth });
      expect(response.status).to.equal(200);
      expect(response.headers.get('content-type')).to.equal('application/zip');
      expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).to.equal(true);
    } finally {
      await apiProxy.close();
      await apiCache.close();
      api.closeAllConnections();
      await new Promise((resolve) => api.close(resolve));
    }
  });

  it('revalidates an expired entry with GitHub (a free 304) and says so in X-Cache-Source', async () => {
    await (await fetch(`${proxy.url}/repos/octo/hello`, { headers: auth })).text();
    clock.advance(61); // GitHub said max-age=60
    const again = await fetch(`${proxy.url}/repos/octo/hello`, { headers: auth });
    expect(again.status).to.equal(200);
    expect(again.headers.get('x-cache-source')).to.equal('revalidated');
    expect(await again.json()).to.deep.include({ name: 'hello' });
    expect(github.stats.notModified).to.equal(1);
    expect(github.requestLog.at(-1)!.ifNoneMatch).to.be.a('string');
  });

  it('sends one upstream request for concurrent identical calls', async () => {
    github.setLatency(100);
    const responses = await Promise.all(Array.from({ length: 20 }, () => fetch(`${proxy.url}/repos/octo/hello`, { headers: auth })));
    const sources = responses.map((r) => r.headers.get('x-cache-source'));
    await Promise.all(responses.map((r) => r.text()));
    expect(github.stats.requests).to.equal(1);
    expect(sources.filter((s) => s === 'origin')).to.have.length(1);
    expect(sources.filter((s) => s === 'coalesced')).to.have.length(19);
  });

  it('counts a client that goes away before the answer, and serves the others', async () => {
    github.setLatency(200);
    const aborter = new AbortController();
    const gone = fetch(`${proxy.url}/repos/octo/hello`, { headers: auth, signal: aborter.signal }).catch((err: unknown) => err);
    const stays = fetch(`${proxy.url}/repos/octo/hello`, { headers: auth });
    await github.waitFor((s) => s.inFlight >= 1);
    aborter.abort();
    expect(await gone).to.be.instanceOf(Error);
    expect((await stays).status).to.equal(200);
    while (proxy.counters.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(proxy.counters).to.deep.include({ aborted: 1, requests: 2 });
  });

  it('answers 304 itself when the client\'s If-None-Match matches, and counts it', async () => {
    const first = await fetch(`${proxy.url}/repos/octo/hello`, { headers: auth });
    const etag = first.headers.get('etag')!;
    await first.text();
    const again = await fetch(`${proxy.url}/repos/octo/hello`, { headers: { ...auth, 'if-none-match': `"other", ${etag}` } });
    expect(again.status).to.equal(304);
    expect(again.headers.get('etag')).to.equal(etag);
    expect(again.headers.get('x-cache-source')).to.equal('memory');
    expect(await again.text()).to.equal('');
    expect(proxy.counters.notModified).to.equal(1);
    expect(github.stats.requests).to.equal(1);

    const stale = await fetch(`${proxy.url}/repos/octo/hello`, { headers: { ...auth, 'if-none-match': '"not-it"' } });
    expect(stale.status).to.equal(200);
    expect(await stale.json()).to.deep.include({ name: 'hello' });
  });

  it('forwards GitHub\'s rate-limit refusal, then answers 429 with retry-after while the scope is paused', async () => {
    github.rateLimitToken(TOKEN_A, { retryAfterSeconds: 120 });
    const refused = await fetch(`${proxy.url}/repos/octo/hello`, { headers: auth });
    expect(refused.status).to.equal(403);
    expect(refused.headers.get('retry-after')).to.equal('120');
    expect(refused.headers.get('x-cache-source')).to.equal('origin');
    expect(await refused.json()).to.have.property('message').that.matches(/secondary rate limit/);

    const paused = await fetch(`${proxy.url}/repos/octo/other`, { headers: auth });
    expect(paused.status).to.equal(429);
    expect(Number(paused.headers.get('retry-after'))).to.be.within(1, 120);
    expect(Number(paused.headers.get('x-ratelimit-reset'))).to.be.greaterThan(Date.now() / 1000);
    expect(await paused.json()).to.have.property('message').that.matches(/rate limit/);
    expect(github.stats.requests).to.equal(1);
  });

  it('keeps the path and query as sent (colons, search qualifiers)', async () => {
    github.setResource('/repos/octo/hello/compare/main...fork:feature', { status: 'ahead' });
    const compare = await fetch(`${proxy.url}/repos/octo/hello/compare/main...fork:feature`, { headers: auth });
    expect(compare.status).to.equal(200);
    expect(await compare.json()).to.deep.equal({ status: 'ahead' });

    github.setResource('/search/issues', { total_count: 0, items: [] });
    const search = await fetch(`${proxy.url}/search/issues?q=repo:octo/hello+is:open%20label:bug&per_page=5`, { headers: auth });
    expect(search.status).to.equal(200);
    const sent = new URL(github.requestLog.at(-1)!.path, 'http://x').searchParams;
    expect(sent.get('q')).to.equal('repo:octo/hello is:open label:bug');
    expect(sent.get('per_page')).to.equal('5');
  });

  it('refuses a body over the limit with 413', async () => {
    await proxy.close();
    proxy = await startProxy({ cache, port: 0, maxBodyBytes: 1024, processMetrics: false });
    const response = await fetch(`${proxy.url}/repos/octo/hello/issues`, { method: 'POST', headers: auth, body: 'x'.repeat(4096) });
    expect(response.status).to.equal(413);
    expect(github.stats.requests).to.equal(0);
  });

  it('refuses an Authorization scheme GitHub tokens do not use with 401, without echoing the credentials', async () => {
    const response = await fetch(`${proxy.url}/repos/octo/hello`, { headers: { authorization: 'Basic dXNlcjpzM2NyM3Q=' } });
    expect(response.status).to.equal(401);
    const text = await response.text();
    expect(text).to.include('token <token>');
    expect(text).not.to.include('dXNlcjpzM2NyM3Q=');
    expect(github.stats.requests).to.equal(0);
  });

  it('answers a memory hit as the general path does (headers, link URLs, body bytes) and follows the scope\'s rate limit', async () => {
    github.setCollection('/repos/octo/hello/issues', [{ number: 1 }, { number: 2 }, { number: 3 }]);
    github.setResource('/repos/octo/other', { id: 2 });
    const path = '/repos/octo/hello/issues?per_page=1';
    const get = async (headers: Record<string, string> = {}) => {
      const response = await fetch(`${proxy.url}${path}`, { headers: { ...auth, ...headers } });
      const body = Buffer.from(await response.arrayBuffer());
      const all: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        if (name !== 'date' && name !== 'keep-alive' && name !== 'connection') all[name] = value;
      });
      return { status: response.status, headers: all, body };
    };
    expect((await get()).headers['x-cache-source']).to.equal('origin');
    const hit = await get();
    const again = await get();
    // Validators the client does not hold an answer for take the general path: a 200 from memory all the same.
    const general = await get({ 'if-none-match': '"not-this-one"' });
    expect(hit.headers['x-cache-source']).to.equal('memory');
    expect(general.headers['x-cache-source']).to.equal('memory');
    expect(hit.headers).to.deep.equal(general.headers);
    expect(again.headers).to.deep.equal(hit.headers);
    expect(hit.body.equals(general.body)).to.equal(true);
    expect(hit.headers['content-length']).to.equal(String(hit.body.length));
    expect(hit.headers.link).to.contain(`<${proxy.url}/repos/`).and.not.contain(github.url);
    // Another call of the scope moves its rate limit: the next hit says so, as GitHub would.
    const before = Number(hit.headers['x-ratelimit-remaining']);
    await (await fetch(`${proxy.url}/repos/octo/other`, { headers: auth })).arrayBuffer();
    const after = await get();
    expect(after.headers['x-cache-source']).to.equal('memory');
    expect(Number(after.headers['x-ratelimit-remaining'])).to.equal(before - 1);
    expect(proxy.counters.bySource['memory']).to.equal(4);
  });

  it('answers HEAD without a body', async () => {
    const head = await fetch(`${proxy.url}/repos/octo/hello`, { method: 'HEAD', headers: auth });
    expect(head.status).to.equal(200);
    expect(head.headers.get('x-cache-source')).to.equal('origin');
    expect(await head.text()).to.equal('');
  });

  it('close() lets the request in flight finish, then refuses connections', async () => {
    github.setLatency(300);
    const inFlight = fetch(`${proxy.url}/repos/octo/hello`, { headers: auth });
    await github.waitFor((s) => s.inFlight >= 1);
    const closed = proxy.close();
    const response = await inFlight;
    expect(response.status).to.equal(200);
    expect(response.headers.get('connection')).to.equal('close');
    await response.text();
    await closed;
    let refused: unknown;
    try {
      await fetch(`${proxy.url}/healthz`);
    } catch (err) {
      refused = err;
    }
    expect(refused).to.be.instanceOf(Error);
  });

  it('answers /healthz 503 once the cache is closed', async () => {
    await cache.close();
    const health = await fetch(`${proxy.url}/healthz`);
    expect(health.status).to.equal(503);
    expect(await health.json()).to.include({ cache: 'closed' });
  });
});

describe('ProxyMetrics', () => {
  it('reads peer counts and P2P counters from stats.p2p when the cache runs a P2P host', async () => {
    const metrics = new ProxyMetrics({ processMetrics: false });
    const cache = await GitHubAPICache.create({ persistence: 'off' });
    try {
      const stats = {
        ...(await cache.getStats()),
        p2p: {
          peerId: '12D3KooWexample', listenAddrs: ['/ip4/127.0.0.1/tcp/9100'], connectedPeers: 2,
          peers: [{ id: 'a', scopes: 1 }, { id: 'b', scopes: 0 }], requestsSent: 5, entriesReceived: 4, rejected: { decrypt: 1 }, boundPort: 9100,
          requestsServed: 0, timeouts: 0, disconnectedForAbuse: 0, handoffsSent: 0, handoffEntries: 0, portFallback: false, membership: 'handshake' as const,
          invalidationsSent: 0, invalidationsReceived: 0, invalidationsDropped: 0, leasesGranted: 0, blindServed: 0, leasesTaken: 0,
        },
      };
      const { body } = await metrics.render(stats);
      expect(body).to.match(/^github_cache_p2p_enabled 1$/m);
      expect(body).to.match(/^github_cache_p2p_connected_peers 2$/m);
      expect(body).to.match(/^github_cache_p2p_protocol_peers 2$/m);
      expect(body).to.include('github_cache_p2p_events_total{event="requestsSent"} 5');
      expect(body).to.include('github_cache_p2p_rejected_total{reason="decrypt"} 1');
      expect(body).not.to.include('event="boundPort"');
      expect(p2pStatsOf(stats)).to.deep.include({ peerId: '12D3KooWexample', connectedPeers: 2, membership: 'handshake' });
      expect(p2pStatsOf(await cache.getStats())).to.equal(undefined);
    } finally {
      await cache.close();
    }
  });
});
