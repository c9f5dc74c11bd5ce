export { TYPES } from './types.js';
export { PromiseLock } from './promise-lock.js';
export { SingletonProvider, type Closeable, type SingletonProviderStats } from './singleton-provider.js';
export { getGlobalCache, configureCache, shutdownGlobalCache, getCacheProvider, CacheShutDownByCallerError, type CacheProvider } from './global-cache.js';
export { cacheModule, createCacheContainer, CacheContainer, CacheShutDownError } from './cache-module.js';
