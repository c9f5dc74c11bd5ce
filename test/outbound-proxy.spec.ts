/**
 * Outbound proxy: with HTTPS_PROXY/HTTP_PROXY set, requests to GitHub go through the proxy (undici's
 * EnvHttpProxyAgent); NO_PROXY exempts hosts; without them, nothing goes through a proxy. The proxy here is a
 * small forward proxy on loopback that answers CONNECT and absolute-form requests and records what it saw.
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { proxyConfigured, UpstreamClient } from '../src/github/upstream.js';
import { FakeGitHub } from '../support/fake-github/index.js';

class ForwardProxy {
  readonly seen: string[] = [];
  readonly #server = http.createServer();
  readonly #sockets = new Set<net.Socket>();

  async start(): Promise<string> {
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('connect', (req, client: net.Socket, head: Buffer) => {
      this.seen.push(`CONNECT ${req.url}`);
      const [host, port] = (req.url ?? '').split(':');
      const upstream = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      this.#sockets.add(upstream);
      upstream.once('close', () => this.#sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    this.#server.on('request', (req, res) => {
      this.seen.push(`${req.method} ${req.url}`);
      const target = new URL(req.url ?? '');
      const forward = http.request(target, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      forward.on('error', () => res.destroy());
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

describe('outbound proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)', () => {
  let github: FakeGitHub;
  let proxy: ForwardProxy;
  let proxyUrl: string;
  const saved: Record<string, string | undefined> = {};
  const NAMES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'];

  beforeEach(async () => {
    for (const name of NAMES) {
      saved[name] = process.env[name];
      delete process.env[name];
    }
    github = await FakeGitHub.start();
    github.setResource('/repos/octo/hello', { id: 1 });
    proxy = new ForwardProxy();
    proxyUrl = await proxy.start();
  });
  afterEach(async () => {
    for (const name of NAMES) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
    await proxy.close();
    await github.close();
  });

  it('sends requests through HTTP_PROXY when it is set in the environment', async () => {
    process.env['HTTP_PROXY'] = proxyUrl;
    const cache = await GitHubAPICache.create({ githubApiUrl: github.url, persistence: 'off' });
    try {
      const answer = await cache.request('GET /repos/{owner}/{repo}', { owner: 'octo', repo: 'hello' });
      expect(answer.status).to.equal(200);
      expect(answer.data).to.deep.include({ id: 1 });
    } finally {
      await cache.close();
    }
    const host = new URL(github.url).host;
    expect(proxy.seen.some((line) => line.includes(host)), `proxy saw ${JSON.stringify(proxy.seen)}`).to.equal(true);
  });

  it('NO_PROXY exempts a host; without a proxy variable nothing goes through the proxy', async () => {
    const host = new URL(github.url).hostname;
    const exempt = new UpstreamClient({ timeoutMs: 5_000, env: { HTTP_PROXY: proxyUrl, NO_PROXY: host } });
    expect((await exempt.send({ method: 'GET', url: `${github.url}/repos/octo/hello`, headers: {} })).status).to.equal(200);
    const direct = new UpstreamClient({ timeoutMs: 5_000, env: {} });
    expect((await direct.send({ method: 'GET', url: `${github.url}/repos/octo/hello`, headers: {} })).status).to.equal(200);
    expect(proxy.seen).to.deep.equal([]);
    expect(proxyConfigured({ https_proxy: 'http://p:3128' })).to.equal(true);
    expect(proxyConfigured({ HTTPS_PROXY: ' ' })).to.equal(false);
  });
});
