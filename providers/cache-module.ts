import { Container, ContainerModule } from 'inversify';
import type { GitHubAPICache } from '../src/github-api-cache.js';
import { CacheNotReadyError } from '../src/errors.js';
import { resolveOptions, type CacheOptions } from '../src/options.js';
import { getCacheProvider } from './global-cache.js';
import { TYPES } from './types.js';

/**
 * The Inversify face of the process's one cache.
 *
 * `TYPES.GitHubAPICache` is bound with `toDynamicValue` in transient scope over the process provider, not with
 * `inSingletonScope()`: Inversify 8 caches a rejected async singleton forever, and `rebindAsync` while a
 * resolution is in flight hands out the old, already-deactivated instance (both measured). The provider owns
 * the one instance and its lock; the binding only asks it. With the instance published, the binding returns
 * it synchronously, so `container.get(TYPES.GitHubAPICache)` works; before that it returns the creation's
 * promise, which `container.getAsync` awaits.
 */
export const cacheModule = new ContainerModule(({ bind }) => {
  bind<GitHubAPICache>(TYPES.GitHubAPICache)
    .toDynamicValue(() => {
      const provider = getCacheProvider();
      const current = provider.current;
      if (current !== undefined) return current;
      // A lazy thenable, not a started creation: a synchronous container.get throws Inversify's "Unexpected
      // asynchronous service" without calling then(), so no creation (and no P2P host) is left running behind
      // the throw; container.getAsync awaits it, which starts (or joins) the creation.
      const lazy: PromiseLike<GitHubAPICache> = {
        then: (onFulfilled, onRejected) => provider.get().then(onFulfilled, onRejected),
      };
      return lazy as Promise<GitHubAPICache>;
    })
    .inTransientScope();
  bind<CacheOptions>(TYPES.CacheOptions)
    .toDynamicValue(() => getCacheProvider().options)
    .inTransientScope();
});

/**
 * CacheNotReadyError (code ERR_CACHE_NOT_READY) for `container.get` after `shutdownGlobalCache()`: the cache
 * was not "not created yet" but shut down, and the message says so.
 */
export class CacheShutDownError extends CacheNotReadyError {
  constructor() {
    super();
    this.message = 'The GitHubAPICache was shut down (shutdownGlobalCache()), so container.get() has no instance to return. ' +
      'To use the cache again, create a new one with `await container.getAsync(TYPES.GitHubAPICache)`, `await getGlobalCache()` ' +
      'or `await configureCache(...)`; container.get() works after that.';
  }
}

/**
 * A Container with cacheModule loaded whose `get(TYPES.GitHubAPICache)` explains what to do when the cache
 * has not been created yet (Inversify's own message only says the service is asynchronous).
 */
export class CacheContainer extends Container {
  override get<T>(...args: Parameters<Container['get']>): T {
    // Checked before resolving, so a synchronous get never starts a creation nobody awaits.
    if (args[0] === TYPES.GitHubAPICache && getCacheProvider().current === undefined) {
      throw getCacheProvider().shutDown ? new CacheShutDownError() : new CacheNotReadyError();
    }
    return super.get(...args) as T;
  }
}

/**
 * A new Inversify container with cacheModule loaded. Every such container (and getGlobalCache) resolves the
 * same instance. `options`, when given, are used if the cache has not been created yet (like
 * `getGlobalCache(options)`); to replace a running cache, call `configureCache(options)`.
 */
export function createCacheContainer(options?: CacheOptions): CacheContainer {
  const container = new CacheContainer();
  if (options !== undefined) {
    resolveOptions(options); // a bad option throws CacheConfigError and changes nothing
    getCacheProvider().preferOptions(options);
  }
  container.load(cacheModule);
  return container;
}
