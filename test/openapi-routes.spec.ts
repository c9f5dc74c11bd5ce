import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createRequire } from 'node:module';
import { Octokit } from '@octokit/core';
import pLimit from 'p-limit';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { createGitHubCachePlugin } from '../src/github/octokit-plugin.js';
import { startProxy, type ProxyServer } from '../src/proxy/proxy-server.js';
import { formatRequestKey, normalizeAccept, normalizeUrl } from '../src/cache/request-key.js';
import { ANONYMOUS_SCOPE } from '../src/cache/scope.js';

/**
 * Every GET route of GitHub's OpenAPI description (`@octokit/openapi`, api.github.com), its path parameters
 * filled with safe sample values and no query, goes through `cache.request`, Octokit with the plugin and the
 * proxy to a local server that answers 200 with the path and query it received. Checked for every route and
 * every path: the URL that reached "GitHub" is the one plain Octokit builds (`octokit.request.endpoint`),
 * byte for byte (encoding, trailing slash, query). Because the answer names the URL it was made for, an
 * answer served from another route's cache entry shows up as a mismatch too; separately, the keys the cache
 * forms (formatRequestKey over normalizeUrl, GET, one scope, default Accept) are checked to be distinct for
 * distinct URLs, and each path (on a fresh cache) must ask the server once for every distinct URL. All routes
 * go through all three paths, 8 requests at a time, in a few seconds.
 */

interface Parameter { name: string; in: string; schema?: Schema; $ref?: string }
interface Schema { type?: string; enum?: unknown[]; oneOf?: Schema[]; $ref?: string }
interface OpenApi {
  paths: Record<string, { parameters?: Parameter[]; get?: { operationId?: string; parameters?: Parameter[] } }>;
  components: { parameters: Record<string, Parameter>; schemas: Record<string, Schema> };
}

/** A route with its sample parameters and the URL plain Octokit builds for it (against the server's base URL). */
interface RouteCase { route: string; operationId: string; params: Record<string, string | number>; expectedUrl: string }

const TOKEN = 'test_openapiAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const silent = { warn: () => undefined, error: () => undefined };

/** Values for parameters whose name says what they hold; slashes where GitHub allows them (a file path, a ref). */
const NAMED_SAMPLES: Record<string, string> = {
  owner: 'octocat', repo: 'hello-world', org: 'octo-org', enterprise: 'octo-enterprise', username: 'mona',
  path: 'docs/README.md', ref: 'heads/main', branch: 'main', base: 'main', head: 'feature', basehead: 'main...feature',
  tag: 'v1.0.0', sha: '6dcb09b5b57875f334f61aebed695e2e4193db5e', commit_sha: '6dcb09b5b57875f334f61aebed695e2e4193db5e',
  file_sha: '3a0f86fb8db8eea7ccbb9a95f325ddbedfb25e15', gist_id: 'aa5a315d61ae9438b18d', team_slug: 'justice-league',
};

function loadOpenApi(): OpenApi {
  const require = createRequire(import.meta.url);
  return require('@octokit/openapi/generated/api.github.com.json') as OpenApi;
}

function resolveSchema(api: OpenApi, schema: Schema | undefined): Schema {
  let s = schema ?? {};
  for (let i = 0; i < 5 && s.$ref !== undefined; i++) s = api.components.schemas[s.$ref.split('/').pop()!] ?? {};
  return s.oneOf?.[0] !== undefined ? resolveSchema(api, s.oneOf[0]) : s;
}

function sampleValue(api: OpenApi, p: Parameter): string | number {
  const schema = resolveSchema(api, p.schema);
  if (schema.enum !== undefined && schema.enum.length > 0) return String(schema.enum[0]);
  if (schema.type === 'integer' || schema.type === 'number') return 42;
  return NAMED_SAMPLES[p.name] ?? `sample-${p.name.replace(/_/g, '-')}`;
}

/** Every GET route with sample path parameters and the URL plain Octokit builds against `baseUrl`. */
function routeCases(api: OpenApi, baseUrl: string): RouteCase[] {
  const plain = new Octokit({ baseUrl, log: quiet });
  const cases: RouteCase[] = [];
  for (const [path, item] of Object.entries(api.paths)) {
    if (item.get === undefined) continue;
    const params: Record<string, string | number> = {};
    for (const raw of [...(item.parameters ?? []), ...(item.get.parameters ?? [])]) {
      const p = raw.$ref !== undefined ? api.components.parameters[raw.$ref.split('/').pop()!]! : raw;
      if (p.in === 'path') params[p.name] = sampleValue(api, p);
    }
    const route = `GET ${path}`;
    cases.push({ route, operationId: item.get.operationId ?? path, params, expectedUrl: plain.request.endpoint(route, params).url });
  }
  return cases;
}

/** A server that answers every request 200 `{"received": "<path and query as received>"}`, cacheable for 60 s. */
async function startEcho(): Promise<{ url: string; received: Map<string, number>; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const received = new Map<string, number>();
  const server: Server = createServer({ keepAlive: true }, (req, res) => {
    received.set(req.url ?? '', (received.get(req.url ?? '') ?? 0) + 1);
    const body = JSON.stringify({ received: req.url ?? '' });
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body),
      'cache-control': 'private, max-age=60, s-maxage=60', etag: `"${Buffer.from(req.url ?? '').toString('base64url').slice(-32)}"`,
    });
    res.end(body);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('OpenAPI GET routes: the cache sends what plain Octokit builds, and keys them apart', function () {
  this.timeout(60_000);
  let api: OpenApi | undefined;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let cache: GitHubAPICache;
  let cases: RouteCase[];

  before(async () => {
    api = loadOpenApi();
    echo = await startEcho();
    cases = routeCases(api, echo.url);
    api = undefined; // 13 MB of JSON: only the cases are kept
  });
  after(async () => {
    await echo?.close();
  });
  // A fresh cache per path: each path's requests must reach the server, not another path's entries.
  beforeEach(async () => {
    echo.received.clear();
    cache = await GitHubAPICache.create({ githubApiUrl: echo.url, persistence: 'off', logSink: silent });
  });
  afterEach(async () => {
    await cache.close();
  });

  /**
   * Sends every case through `send` (8 at a time) and lists, one line each, the routes whose answer says
   * the server received another URL than plain Octokit's (or that failed).
   */
  async function mismatches(send: (c: RouteCase) => Promise<unknown>): Promise<string[]> {
    const limit = pLimit(8);
    const out: string[] = [];
    await Promise.all(cases.map((c) => limit(async () => {
      let received: string;
      try {
        const data = await send(c) as { received?: unknown };
        received = echo.url + String(data?.received);
      } catch (err) {
        out.push(`${c.route} (${c.operationId}): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
        return;
      }
      if (received !== c.expectedUrl) out.push(`${c.route} (${c.operationId}): sent ${received.slice(echo.url.length)}, Octokit builds ${c.expectedUrl.slice(echo.url.length)}`);
    })));
    // Two distinct URLs sharing the cache's key would leave one of them unasked.
    for (const url of new Set(cases.map((c) => c.expectedUrl))) {
      const count = echo.received.get(url.slice(echo.url.length)) ?? 0;
      if (count !== 1) out.push(`${url.slice(echo.url.length)} reached the server ${count} times, expected once (the other routes' requests went elsewhere or the key is shared)`);
    }
    return out.sort();
  }

  function report(list: string[], path: string): void {
    if (list.length > 0) expect.fail(`${list.length} of ${cases.length} GET routes through ${path}:\n  ${list.slice(0, 40).join('\n  ')}${list.length > 40 ? '\n  …' : ''}`);
  }

  it('covers GitHub\'s GET routes (the description loads, every route has a URL)', () => {
    expect(cases.length).to.be.greaterThan(500);
    for (const c of cases) expect(c.expectedUrl.startsWith(`${echo.url}/`), c.route).to.equal(true);
  });

  it('cache.request: every route reaches GitHub at the URL plain Octokit builds', async () => {
    report(await mismatches(async (c) => (await cache.request(c.route, c.params, { token: TOKEN })).data), 'cache.request');
  });

  it('Octokit + plugin: every route reaches GitHub at the URL plain Octokit builds', async () => {
    const CachedOctokit = Octokit.plugin(createGitHubCachePlugin(cache));
    const octokit = new CachedOctokit({ baseUrl: echo.url, auth: TOKEN, log: quiet });
    report(await mismatches(async (c) => (await octokit.request(c.route, c.params)).data), 'the plugin');
  });

  it('proxy: plain Octokit pointed at the proxy reaches GitHub at the URL it builds', async () => {
    const proxy: ProxyServer = await startProxy({ cache, port: 0, processMetrics: false, logSink: silent });
    try {
      // With an API version, as GitHub asks clients to send: the proxy must not rebuild the URL for it.
      const octokit = new Octokit({ baseUrl: proxy.url, auth: TOKEN, log: quiet, headers: { 'x-github-api-version': '2022-11-28' } });
      report(await mismatches(async (c) => (await octokit.request(c.route, c.params)).data), 'the proxy');
    } finally {
      await proxy.close();
    }
  });

  it('no two routes with different URLs share a cache key', () => {
    const byKey = new Map<string, Set<string>>();
    for (const c of cases) {
      const key = formatRequestKey({ url: normalizeUrl(c.expectedUrl), method: 'GET', scopeId: ANONYMOUS_SCOPE, accept: normalizeAccept(undefined) });
      const urls = byKey.get(key) ?? new Set<string>();
      urls.add(c.expectedUrl);
      byKey.set(key, urls);
    }
    const shared = [...byKey.entries()].filter(([, urls]) => urls.size > 1).map(([key, urls]) => `${key}: ${[...urls].join(' , ')}`);
    expect(shared, 'keys shared by different URLs').to.deep.equal([]);
    const distinctUrls = new Set(cases.map((c) => c.expectedUrl)).size;
    expect(byKey.size, 'one key per distinct URL').to.equal(distinctUrls);
  });
});
