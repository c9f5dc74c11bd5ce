import './src/polyfills.js'; // first: libp2p 3 needs Promise.withResolvers, which Node 20 lacks
/**
 * github-p2p-cache: one process-wide cache of GitHub API responses, shared with peers over libp2p.
 *
 * @example
 * ```ts
 * import { getGlobalCache } from 'github-p2p-cache';
 * const cache = await getGlobalCache();
 * await cache.put('get_repo_info:octo/hello', { stars: 3 });
 * ```
 */
export { GitHubAPICache, type CacheStats, type PutOptions } from './src/github-api-cache.js';
export type { CacheEntry } from './src/cache/entry.js';
export {
  CacheError,
  CacheClosedError,
  CacheConfigError,
  CacheValueError,
  CacheCreationError,
  CacheNotReadyError,
  RateLimitError,
  UpstreamError,
  TokenHostError,
} from './src/errors.js';
export {
  resolveOptions,
  DEFAULTS,
  DEFAULT_TTL_BY_OPERATION,
  ENVIRONMENT_VARIABLES,
  type CacheOptions,
  type P2POptions,
  type ResolvedCacheOptions,
  type ResolvedP2POptions,
} from './src/options.js';
export type { LogSink } from './src/log.js';
export * from './providers/index.js';
// The Octokit plugin, wired to the global cache here (the composition root): src/ does not import providers/.
import { globalCacheForPlugin } from './providers/global-cache.js';
import { createGitHubCachePlugin } from './src/github/octokit-plugin.js';
/**
 * `Octokit.plugin(githubCachePlugin)`; option `cache` defaults to the process's global cache (getGlobalCache).
 * After shutdownGlobalCache() its requests reject with CacheShutDownByCallerError until getGlobalCache() or
 * configureCache() creates a new cache: the plugin never silently starts one (nor a P2P host).
 */
export const githubCachePlugin = createGitHubCachePlugin(() => globalCacheForPlugin());
export { createGitHubCachePlugin, type GitHubCachePluginOptions, type GitHubCacheSource, type GitHubCachePlugin } from './src/github/octokit-plugin.js';
export { startProxy, ProxyListenError, type ProxyServer, type ProxyOptions, type ProxyCounters } from './src/proxy/proxy-server.js';
export type { CachedResponse, RequestOptions } from './src/cache/http-cache.js';
export type { ResponseSource } from './src/cache/counters.js';
