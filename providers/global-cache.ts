import { GitHubAPICache } from '../src/github-api-cache.js';
import { CacheClosedError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { resolveOptions, type CacheOptions } from '../src/options.js';
import { SingletonProvider } from './singleton-provider.js';

/**
 * The process's one cache provider. It lives on globalThis under a `Symbol.for` key, so every way of reaching
 * the cache (getGlobalCache, any container that loaded cacheModule, the Octokit plugin, the CLI) shares it,
 * even when two copies of this package are loaded. Worker threads and other processes have their own.
 */
export type CacheProvider = SingletonProvider<GitHubAPICache, CacheOptions>;

const PROVIDER_KEY = Symbol.for('github-p2p-cache.provider.v1');

interface ProviderSlot {
  [PROVIDER_KEY]?: { provider: CacheProvider; warnedOptionsIgnored: boolean };
}

function slot(): { provider: CacheProvider; warnedOptionsIgnored: boolean } {
  const g = globalThis as ProviderSlot;
  g[PROVIDER_KEY] ??= {
    provider: new SingletonProvider<GitHubAPICache, CacheOptions>((options) => GitHubAPICache.create(options), {}),
    warnedOptionsIgnored: false,
  };
  return g[PROVIDER_KEY];
}

/** The provider behind getGlobalCache and cacheModule (for stats, and for tests that inject a factory). */
export function getCacheProvider(): CacheProvider {
  return slot().provider;
}

/**
 * The process's one GitHubAPICache, created on the first call. Concurrent first callers share one creation.
 *
 * `options` are used only when this call creates the instance; when one exists already they are ignored with
 * a warning (once): use `configureCache(options)` to change options. Invalid options reject with
 * CacheConfigError and change nothing.
 */
export function getGlobalCache(options?: CacheOptions): Promise<GitHubAPICache> {
  const s = slot();
  if (options === undefined) return s.provider.get();
  return getWithOptions(s, options);
}

async function getWithOptions(s: { provider: CacheProvider; warnedOptionsIgnored: boolean }, options: CacheOptions): Promise<GitHubAPICache> {
  resolveOptions(options); // validate first: a bad option changes nothing
  const { instance, applied } = await s.provider.getWith(options);
  if (!applied && !s.warnedOptionsIgnored) {
    s.warnedOptionsIgnored = true;
    createLogger('provider', instance.options.logSink).warn(
      'getGlobalCache(options) was called while the cache already exists, so these options were ignored; ' +
        'call `await configureCache(options)` to replace the instance with new options.',
    );
  }
  return instance;
}

/**
 * Replaces the process's cache under the provider's lock: waits for a creation in flight, closes the old
 * instance (its P2P port is released), then creates one with `options`. Concurrent calls apply in call order;
 * the last call's options win. Invalid options reject with CacheConfigError and change nothing.
 */
export async function configureCache(options: CacheOptions = {}): Promise<GitHubAPICache> {
  resolveOptions(options);
  return slot().provider.configure(options);
}

/**
 * Closes and forgets the process's cache; the next getGlobalCache() (or configureCache, container.getAsync)
 * creates a new one. The Octokit plugin's default cache does not: until one of those is called, its requests
 * reject with CacheShutDownByCallerError rather than silently start a new cache (and P2P host).
 */
export async function shutdownGlobalCache(): Promise<void> {
  await slot().provider.shutdown();
}

/**
 * CacheClosedError (code ERR_CACHE_CLOSED) from the Octokit plugin's default cache after shutdownGlobalCache():
 * the plugin does not re-create the global cache on its own.
 */
export class CacheShutDownByCallerError extends CacheClosedError {
  constructor() {
    super('send the request through the global cache');
    this.message = 'Cannot send the Octokit request through the cache: the global cache was shut down (shutdownGlobalCache()). ' +
      'The plugin does not start a new cache by itself (that would also start a new P2P host and keep the process alive); ' +
      'call `await getGlobalCache()` or `await configureCache(...)` first, or give the plugin its own `cache` option.';
  }
}

/**
 * The Octokit plugin's default cache: the global cache, created on first use like getGlobalCache(), but after
 * shutdownGlobalCache() it rejects with CacheShutDownByCallerError until something else creates a new one.
 */
export function globalCacheForPlugin(): Promise<GitHubAPICache> {
  const provider = slot().provider;
  if (provider.current === undefined && provider.shutDown) return Promise.reject(new CacheShutDownByCallerError());
  return provider.get();
}
