import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { UpstreamError } from '../src/errors.js';
import { UpstreamClient } from '../src/github/upstream.js';

/** Looks like a GitHub token, so a leak of it anywhere is unmistakable. */
// Built at run time: a literal of a token's shape in the source would look like a leaked secret.
const TOKEN = `ghp_${'SpecToken0123456789'}${'abcdefghijklmnopqrstu'}`;

interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

/** A real HTTP server on 127.0.0.1 that records every request and answers with the handler for its path. */
async function startServer(routes: Record<string, Handler>): Promise<{ url: string; seen: SeenRequest[]; close: () => Promise<void> }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const handler = routes[new URL(req.url ?? '/', 'http://x').pathname];
      if (handler === undefined) {
        res.writeHead(599).end();
        return;
      }
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function json(status: number, value: unknown, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(value));
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  expect.fail('expected the promise to reject');
}

/** Bytes as UTF-8 text. */
function text(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('utf8');
}

describe('UpstreamClient', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  /** Responses held open by the /hang route, ended after each test. */
  const hanging: http.ServerResponse[] = [];
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);

  before(async () => {
    server = await startServer({
      '/ok': json(200, { full_name: 'octo/hello' }, { etag: '"abc"', 'x-ratelimit-remaining': '4999' }),
      '/missing': json(404, { message: 'Not Found' }),
      '/forbidden': json(403, { message: 'API rate limit exceeded' }, { 'retry-after': '60' }),
      '/broken': (_req, res) => {
        res.writeHead(502, { 'content-type': 'text/html' });
        res.end('<h1>Bad gateway</h1>');
      },
      '/archive': (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(Buffer.from(bytes));
      },
      '/vendor-json': (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/vnd.github+json' });
        res.end('{"a":1}');
      },
      '/untyped': (_req, res) => {
        res.writeHead(200); // no content type at all: read as text
        res.end('plain');
      },
      '/hop-by-hop': (_req, res) => {
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          connection: 'keep-alive',
          'keep-alive': 'timeout=5',
          server: 'spec-server',
          'set-cookie': 'session=secret',
          date: new Date(0).toUTCString(),
          etag: 'W/"kept"',
          'x-github-request-id': 'ABCD:1234',
        });
        res.end(gzipSync(Buffer.from('{"zipped":true}')));
      },
      '/echo': (_req, res, body) => {
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(body);
      },
      '/moved': (_req, res) => {
        res.writeHead(301, { location: '/ok', 'content-type': 'application/json' });
        res.end('{"message":"Moved Permanently"}');
      },
      '/loop': (_req, res) => {
        res.writeHead(302, { location: '/loop' });
        res.end();
      },
      '/hang': (_req, res) => {
        hanging.push(res); // never answered within the client's timeout
      },
      '/trickle': (_req, res) => {
        // The head at once, then a byte every 40 ms, never the end: a body that outlives any timeout.
        res.writeHead(200, { 'content-type': 'application/json' });
        const drip = setInterval(() => res.write(' '), 40);
        res.on('close', () => clearInterval(drip));
        hanging.push(res);
      },
      '/big-gzip': (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(gzipSync(Buffer.from(JSON.stringify({ items: Array.from({ length: 20_000 }, (_, i) => ({ i, name: `item-${i}-${(i * 7919) % 10007}` })) }))));
      },
    });
  });

  afterEach(() => {
    for (const res of hanging.splice(0)) res.destroy();
  });

  after(async () => {
    await server.close();
  });

  const client = (timeoutMs = 5_000) => new UpstreamClient({ timeoutMs });

  describe('statuses', () => {
    it('returns a 200 with its body as bytes and its headers (lowercase)', async () => {
      const response = await client().send({ method: 'GET', url: `${server.url}/ok`, headers: {} });
      expect(response.status).to.equal(200);
      expect(JSON.parse(text(response.body))).to.deep.equal({ full_name: 'octo/hello' });
      expect(response.headers).to.include({ etag: '"abc"', 'x-ratelimit-remaining': '4999' });
    });

    it('returns 4xx and 5xx responses instead of throwing', async () => {
      const c = client();
      const missing = await c.send({ method: 'GET', url: `${server.url}/missing`, headers: {} });
      const forbidden = await c.send({ method: 'GET', url: `${server.url}/forbidden`, headers: {} });
      const broken = await c.send({ method: 'GET', url: `${server.url}/broken`, headers: {} });
      expect([missing.status, forbidden.status, broken.status]).to.deep.equal([404, 403, 502]);
      expect(JSON.parse(text(missing.body))).to.deep.equal({ message: 'Not Found' });
      expect(forbidden.headers['retry-after']).to.equal('60');
      expect(text(broken.body)).to.equal('<h1>Bad gateway</h1>');
    });

    it('sends the request body and method', async () => {
      const response = await client().send({ method: 'POST', url: `${server.url}/echo`, headers: { 'content-type': 'application/json' }, body: '{"title":"t"}' });
      expect(response.status).to.equal(201);
      expect(text(response.body)).to.equal('{"title":"t"}');
      expect(server.seen.at(-1)).to.include({ method: 'POST', body: '{"title":"t"}' });
    });

    it('reads no body for HEAD', async () => {
      const response = await client().send({ method: 'HEAD', url: `${server.url}/ok`, headers: {} });
      expect(response.status).to.equal(200);
      expect(response.body.byteLength).to.equal(0);
    });
  });

  describe('bodies', () => {
    it('keeps a non-text body as its bytes', async () => {
      const response = await client().send({ method: 'GET', url: `${server.url}/archive`, headers: {} });
      expect(response.body).to.be.instanceOf(Uint8Array);
      expect(Array.from(response.body)).to.deep.equal(Array.from(bytes));
    });

    it('keeps JSON media types (application/vnd.github+json) and untyped bodies as their exact bytes too', async () => {
      const c = client();
      const vendor = await c.send({ method: 'GET', url: `${server.url}/vendor-json`, headers: {} });
      const untyped = await c.send({ method: 'GET', url: `${server.url}/untyped`, headers: {} });
      expect([text(vendor.body), text(untyped.body)]).to.deep.equal(['{"a":1}', 'plain']);
    });
  });

  it('decodes a large gzip body (above 64 KiB once decoded, decoded off the event loop) to the same bytes', async () => {
    const answer = await client().send({ method: 'GET', url: `${server.url}/big-gzip`, headers: {} });
    expect(answer.status).to.equal(200);
    const value = JSON.parse(text(answer.body)) as { items: Array<{ i: number }> };
    expect(value.items).to.have.length(20_000);
    expect(value.items[19_999]!.i).to.equal(19_999);
  });

  it('drops hop-by-hop headers (connection, keep-alive, encoding, length, date, server, set-cookie) and keeps the rest', async () => {
    const response = await client().send({ method: 'GET', url: `${server.url}/hop-by-hop`, headers: {} });
    expect(text(response.body)).to.equal('{"zipped":true}'); // decoded, so its content-encoding no longer applies
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'content-encoding', 'content-length', 'date', 'server', 'set-cookie']) {
      expect(response.headers, name).to.not.have.property(name);
    }
    expect(response.headers).to.include({ etag: 'W/"kept"', 'x-github-request-id': 'ABCD:1234', 'content-type': 'application/json' });
  });

  describe('redirects (the read path follows them as fetch does)', () => {
    it('follows a redirect on the same origin with the token, answering with the final URL', async () => {
      const before = server.seen.length;
      const response = await client().send({ method: 'GET', url: `${server.url}/moved`, headers: {}, token: TOKEN });
      expect(response.status).to.equal(200);
      expect(JSON.parse(text(response.body))).to.deep.equal({ full_name: 'octo/hello' });
      expect(response.url).to.equal(`${server.url}/ok`);
      const sent = server.seen.slice(before);
      expect(sent.map((r) => r.url)).to.deep.equal(['/moved', '/ok']);
      expect(sent.map((r) => r.headers.authorization)).to.deep.equal([`token ${TOKEN}`, `token ${TOKEN}`]);
    });

    it('answers a redirect as it came with redirect: manual', async () => {
      const response = await client().send({ method: 'GET', url: `${server.url}/moved`, headers: {}, redirect: 'manual' });
      expect(response.status).to.equal(301);
      expect(response.headers.location).to.equal('/ok');
      expect(response.url).to.equal(`${server.url}/moved`);
    });

    it('gives up after 20 redirects with UpstreamError status 0', async () => {
      const err = await rejection(client().send({ method: 'GET', url: `${server.url}/loop`, headers: {}, token: TOKEN }));
      expect(err).to.be.instanceOf(UpstreamError);
      expect((err as UpstreamError).status).to.equal(0);
      expect((err as UpstreamError).message).to.not.include(TOKEN);
    });
  });

  describe('the token', () => {
    it('travels in the Authorization header and nowhere else in the request', async () => {
      await client().send({ method: 'GET', url: `${server.url}/ok?per_page=1`, headers: { accept: 'application/vnd.github+json' }, token: TOKEN });
      const seen = server.seen.at(-1)!;
      expect(seen.headers.authorization).to.equal(`token ${TOKEN}`);
      expect(seen.url).to.not.include(TOKEN);
      expect(seen.body).to.not.include(TOKEN);
      for (const [name, value] of Object.entries(seen.headers)) {
        if (name !== 'authorization') expect(String(value), name).to.not.include(TOKEN);
      }
    });

    it('is not written into the caller\'s headers object', async () => {
      const headers: Record<string, string> = { accept: 'application/json' };
      await client().send({ method: 'GET', url: `${server.url}/ok`, headers, token: TOKEN });
      expect(headers).to.deep.equal({ accept: 'application/json' });
    });

    it('sends no Authorization header without a token (or with an empty one)', async () => {
      const c = client();
      await c.send({ method: 'GET', url: `${server.url}/ok`, headers: {} });
      expect(server.seen.at(-1)!.headers).to.not.have.property('authorization');
      await c.send({ method: 'GET', url: `${server.url}/ok`, headers: {}, token: '' });
      expect(server.seen.at(-1)!.headers).to.not.have.property('authorization');
    });

    it('sends a default user-agent that a caller\'s header replaces', async () => {
      await client().send({ method: 'GET', url: `${server.url}/ok`, headers: {} });
      expect(server.seen.at(-1)!.headers['user-agent']).to.equal('github-p2p-cache');
      await client().send({ method: 'GET', url: `${server.url}/ok`, headers: { 'user-agent': 'my-app/1.0' } });
      expect(server.seen.at(-1)!.headers['user-agent']).to.equal('my-app/1.0');
    });
  });

  describe('failures to get a response', () => {
    it('throws UpstreamError with status 0 after the timeout, naming no token', async () => {
      const started = Date.now();
      const err = await rejection(client(150).send({ method: 'GET', url: `${server.url}/hang`, headers: {}, token: TOKEN }));
      expect(Date.now() - started).to.be.lessThan(5_000);
      expect(err).to.be.instanceOf(UpstreamError);
      const upstream = err as UpstreamError;
      expect(upstream.status).to.equal(0);
      expect(upstream.code).to.equal('ERR_UPSTREAM');
      expect(upstream.message).to.include(`GET ${server.url}/hang`).and.include('no response within 150 ms');
      expect(upstream.message).to.not.include(TOKEN);
      expect(upstream.upstreamMessage).to.not.include(TOKEN);
      expect(upstream.response).to.equal(undefined);
    });

    it('throws UpstreamError with status 0 when the connection is refused, naming no token', async () => {
      const closed = await startServer({});
      await closed.close(); // nothing listens on its port any more
      const err = await rejection(client().send({ method: 'GET', url: `${closed.url}/ok`, headers: {}, token: TOKEN }));
      expect(err).to.be.instanceOf(UpstreamError);
      expect((err as UpstreamError).status).to.equal(0);
      expect((err as UpstreamError).message).to.include('ECONNREFUSED').and.not.include(TOKEN);
    });

    it('rejects with the caller\'s abort reason, not an UpstreamError, when the caller aborts', async () => {
      const controller = new AbortController();
      const reason = new Error('caller gave up');
      const sending = client().send({ method: 'GET', url: `${server.url}/hang`, headers: {}, signal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 50));
      controller.abort(reason);
      expect(await rejection(sending)).to.equal(reason);
    });

    it('sends nothing when the caller\'s signal is already aborted', async () => {
      const before = server.seen.length;
      const reason = new Error('aborted before sending');
      const err = await rejection(client().send({ method: 'GET', url: `${server.url}/ok`, headers: {}, signal: AbortSignal.abort(reason) }));
      expect(err).to.equal(reason);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(server.seen.length).to.equal(before);
    });

    it('bounds a body that keeps trickling in by the same timeout (not only its head)', async function () {
      this.timeout(20_000);
      const err = await rejection(client(300).send({ method: 'GET', url: `${server.url}/trickle`, headers: {}, token: TOKEN }));
      expect(err).to.be.instanceOf(UpstreamError);
      expect((err as UpstreamError).status).to.equal(0);
      expect((err as UpstreamError).message).to.include('no response within 300 ms').and.not.include(TOKEN);
    });

    it('still applies its own timeout when the caller passes a signal', async () => {
      const controller = new AbortController();
      const err = await rejection(client(100).send({ method: 'GET', url: `${server.url}/hang`, headers: {}, signal: controller.signal }));
      expect(err).to.be.instanceOf(UpstreamError);
      expect((err as UpstreamError).status).to.equal(0);
    });
  });

  describe('a connection closed before any response (a keep-alive race)', () => {
    let drops: { url: string; seen: SeenRequest[]; close: () => Promise<void> };
    let dropped = 0;
    /** Closes the connection of the first request it gets on each path (as a server whose idle timeout just ran out), answers later ones. */
    const dropFirst: Handler = (req, res) => {
      if (dropped++ === 0) {
        req.socket.destroy();
        return;
      }
      json(200, { ok: true })(req, res, '');
    };
    const dropAlways: Handler = (req) => req.socket.destroy();

    beforeEach(async () => {
      dropped = 0;
      drops = await startServer({ '/drop-first': dropFirst, '/drop-always': dropAlways });
    });
    afterEach(() => drops.close());

    it('sends a GET once more and returns its answer', async () => {
      const response = await client().send({ method: 'GET', url: `${drops.url}/drop-first`, headers: {}, token: TOKEN });
      expect(response.status).to.equal(200);
      expect(JSON.parse(Buffer.from(response.body).toString('utf8'))).to.deep.equal({ ok: true });
      expect(drops.seen.map((r) => r.method)).to.deep.equal(['GET', 'GET']);
    });

    it('sends a HEAD once more too', async () => {
      const response = await client().send({ method: 'HEAD', url: `${drops.url}/drop-first`, headers: {} });
      expect(response.status).to.equal(200);
      expect(drops.seen).to.have.length(2);
    });

    it('never sends a POST twice: the server may have acted on it', async () => {
      const err = await rejection(client().send({ method: 'POST', url: `${drops.url}/drop-first`, headers: {}, body: '{}', token: TOKEN }));
      expect(err).to.be.instanceOf(UpstreamError);
      expect((err as UpstreamError).message).to.not.include(TOKEN);
      expect(drops.seen).to.have.length(1);
    });

    it('retries once only: a GET whose connection closes twice fails with UpstreamError, naming no token', async () => {
      const err = await rejection(client().send({ method: 'GET', url: `${drops.url}/drop-always`, headers: {}, token: TOKEN }));
      expect(err).to.be.instanceOf(UpstreamError);
      expect((err as UpstreamError).status).to.equal(0);
      expect((err as UpstreamError).message).to.not.include(TOKEN);
      expect(drops.seen).to.have.length(2);
    });
  });
});
