import { STATUS_CODES } from 'node:http';
import type { Octokit, OctokitOptions } from '@octokit/core';
import type { GitHubAPICache } from '../github-api-cache.js';
import { parseAuthorization } from '../http/translation.js';

/**
 * githubCachePlugin: Octokit's REST calls go through `cache.request`, so GETs are answered from the cache
 * (or revalidated for free) and writes invalidate what they change. It is not a second cache: it only swaps
 * the fetch Octokit's transport calls for one that asks `cache.request`.
 *
 * Why at the fetch and not in the `request` hook itself: Octokit registers its auth hook before any plugin,
 * and before-after-hook runs the first-registered wrap innermost, so a plugin's wrap sees the request
 * *without* its `authorization` header (it would cache every call as anonymous). The fetch Octokit calls last
 * sees the final method, URL, headers (with the token of any auth strategy) and JSON body. Answers and
 * GitHub's refusals go back as `Response`s, so Octokit builds its usual `{ status, url, headers, data }` and
 * its own `RequestError` (authorization redacted), from the user's own copy of `@octokit/request-error`.
 *
 * Only types are imported from `@octokit/core`: loading this package never loads Octokit.
 */

/** Where the plugin finds its cache: an instance, or a function asked on every request. */
export type GitHubCacheSource = GitHubAPICache | (() => GitHubAPICache | Promise<GitHubAPICache>);

/** Options the plugin reads from the Octokit constructor's options. */
export interface GitHubCachePluginOptions {
  /**
   * The cache to go through. A function is called on every request, so an instance replaced by
   * `configureCache` is picked up. Default: the process's global cache (`getGlobalCache()`), which after
   * `shutdownGlobalCache()` refuses (CacheClosedError) until the application creates a new one.
   */
  cache?: GitHubCacheSource;
}

/** The plugin as `Octokit.plugin` takes it. */
export type GitHubCachePlugin = (octokit: Octokit, options: OctokitOptions & GitHubCachePluginOptions) => void;

type Fetch = (url: string, init: RequestInit) => Promise<Response>;

/** Statuses whose Response must have no body. */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/**
 * Builds the plugin around a default cache. The default is injected, not imported: the global cache lives in
 * providers/, which depends on src/, so the package's index (the composition root) passes `getGlobalCache`
 * and exports the result as `githubCachePlugin`.
 */
export function createGitHubCachePlugin(defaultCache: GitHubCacheSource): GitHubCachePlugin {
  return function githubCachePlugin(octokit, options) {
    const source = options.cache ?? defaultCache;
    const cacheOf = typeof source === 'function' ? source : () => source;
    const base = baseUrlOf(octokit, options);
    octokit.hook.wrap('request', (request, endpoint) => {
      const current = endpoint.request;
      // A streamed body cannot be answered from text the cache holds; a retry comes back with our fetch set.
      if (current?.parseSuccessResponseBody !== false && !ourFetches.has(current?.fetch)) {
        // before-after-hook hands every wrap the same options object (what a wrap passes to `request` is
        // ignored), so the fetch goes onto it; `endpoint.request` may be the defaults' object, so it is replaced.
        endpoint.request = { ...current, fetch: cachedFetch(cacheOf, current?.fetch ?? globalThis.fetch, base) };
      }
      return request(endpoint);
    });
  };
}

/** Octokit's own default API URL: a client built without `baseUrl` uses it. */
const OCTOKIT_DEFAULT_BASE_URL = 'https://api.github.com';

/** The client's base URL when its options set one (undefined: Octokit's default), and where to warn. */
function baseUrlOf(octokit: Octokit, options: OctokitOptions): { explicit: string | undefined; warn: (message: string) => void; warned: boolean } {
  return { explicit: options.baseUrl?.replace(/\/+$/, ''), warn: (message) => octokit.log.warn(message), warned: false };
}

/** The fetches this plugin made, so a request that comes back through the hook is not wrapped twice. */
const ourFetches = new WeakSet<object>();

/** A fetch that answers through the cache; what the cache cannot carry goes to Octokit's own fetch. */
function cachedFetch(cacheOf: () => GitHubAPICache | Promise<GitHubAPICache>, transport: Fetch,
  base: ReturnType<typeof baseUrlOf>): Fetch {
  const fetch: Fetch = async (requested, init) => {
    let url = requested;
    const method = (init.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    // A credential the cache does not carry (Basic) bypasses it; tokens and Apps' JWTs go as the caller sent them.
    if (parseAuthorization(headers.authorization).kind === 'unsupported') return transport(url, init);
    if (!cacheable(url, headers, init.body)) return transport(url, init);
    const cache = await cacheOf();
    const api = cache.options.githubApiUrl;
    if (base.explicit === undefined && under(url, OCTOKIT_DEFAULT_BASE_URL)) {
      // No baseUrl on the client: the cache's githubApiUrl (a GitHub Enterprise Server, say) is where its calls go.
      url = api + url.slice(OCTOKIT_DEFAULT_BASE_URL.length);
    } else if (!under(url, api) && !under(url, cache.options.githubUploadsUrl)) {
      // The client's own baseUrl wins for its calls; they bypass the cache, which carries its GitHub API only.
      if (!base.warned) {
        base.warned = true;
        base.warn(`githubCachePlugin: Octokit's baseUrl ${base.explicit ?? url} is not the cache's githubApiUrl ${api}: this client's requests go to its baseUrl without the cache`);
      }
      return transport(url, init);
    }
    const body = typeof init.body === 'string' ? init.body : undefined;
    // A failure to get any answer (reset, timeout, closed cache) rejects: Octokit makes it a RequestError 500.
    const answer = await cache.exchange({ method, url, headers, body, signal: init.signal ?? undefined });
    return responseOf(answer.url ?? url, method, answer.status, answer.headers, answer.body);
  };
  ourFetches.add(fetch);
  return fetch;
}

function under(url: string, base: string): boolean {
  return url === base || url.startsWith(`${base}/`) || url.startsWith(`${base}?`);
}

/** Whether the cache can carry this exchange: REST (not GraphQL), a text body, a text response. */
function cacheable(url: string, headers: Record<string, string>, body: unknown): boolean {
  if (body !== undefined && body !== null && typeof body !== 'string') return false; // uploads (Buffer, stream)
  if (/application\/octet-stream/i.test(headers.accept ?? '')) return false; // binary downloads
  // GraphQL is a POST with its own rate limit: not cacheable, and not a REST write that invalidates.
  return !new URL(url).pathname.endsWith('/graphql');
}

function responseOf(url: string, method: string, status: number, headers: Record<string, string>, body: string | Buffer): Response {
  const empty = method === 'HEAD' || NULL_BODY_STATUSES.has(status);
  const response = new Response(empty ? null : body, { status, statusText: STATUS_CODES[status] ?? '', headers });
  Object.defineProperty(response, 'url', { value: url }); // a constructed Response has url ''; Octokit reports it
  return response;
}
