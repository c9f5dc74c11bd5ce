import { expect } from 'chai';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GitHubAPICache, startProxy, type ProxyServer } from '../index.js';
import { waitFor } from '../support/wait.js';

/** What many clients can make the proxy hold: request bodies within a total budget, per-scope state bounded. */

describe('the proxy bounds what clients can make it hold', function () {
  this.timeout(60_000);
  let cache: GitHubAPICache;
  let proxy: ProxyServer;
  let upstream: ReturnType<typeof createServer>;
  const held: Array<{ req: IncomingMessage; res: ServerResponse }> = [];
  let received = 0;

  beforeEach(async () => {
    received = 0;
    upstream = createServer((req, res) => {
      req.resume();
      req.once('end', () => {
        received++;
        if (req.method === 'POST') held.push({ req, res }); // uploads wait until the spec releases them
        else res.writeHead(200, { 'content-type': 'application/json', 'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '4999', 'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + 3600) }).end('{}');
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    cache = await GitHubAPICache.create({ githubApiUrl: url, persistence: 'off' });
    proxy = await startProxy({ cache, port: 0, processMetrics: false, maxBufferedBodyBytes: 1024 * 1024 });
  });
  afterEach(async () => {
    for (const { res } of held.splice(0)) res.writeHead(201).end('{}');
    await proxy.close();
    await cache.close();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });

  it('holds at most maxBufferedBodyBytes of request bodies at once: the rest get 503 with retry-after', async () => {
    const upload = () => fetch(`${proxy.url}/repos/o/r/releases/1/assets?name=a`, {
      method: 'POST', headers: { authorization: `token ghp_${'bounds'.padEnd(35, 'A')}`, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(600 * 1024, 1),
    });
    const first = upload();
    await waitFor(() => held.length > 0, 'the first upload held upstream', 30_000, 10);
    const others = await Promise.all([upload(), upload(), upload()]);
    expect(others.map((r) => r.status)).to.deep.equal([503, 503, 503]);
    expect(others.every((r) => r.headers.get('retry-after') === '1' && r.headers.get('x-cache-source') === 'proxy')).to.equal(true);
    expect(proxy.counters.bodiesRefused).to.equal(3);
    held.shift()!.res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":1}');
    expect((await first).status).to.equal(201);
    const later = upload();
    await waitFor(() => held.length > 0, 'the later upload held upstream', 30_000, 10);
    held.shift()!.res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":2}');
    expect((await later).status, 'the budget was released').to.equal(201);
  });

  it('keeps per-scope state bounded: 1,200 distinct tokens leave at most 1,000 scopes in stats', async () => {
    for (let i = 0; i < 1200; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => fetch(`${proxy.url}/user`, { headers: { authorization: `token ghp_scope${String(i + j).padStart(33, '0')}` } })));
    }
    const stats = await cache.getStats();
    expect(Object.keys(stats.rateLimits).length).to.be.at.most(1000);
    expect(received).to.equal(1200);
  });
});
