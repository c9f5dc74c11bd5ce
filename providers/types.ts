import type { GitHubAPICache } from '../src/github-api-cache.js';
import type { CacheOptions } from '../src/options.js';

/**
 * Service identifiers. `Symbol.for` keys, so containers built by two copies of this package agree on them.
 */
export const TYPES = Object.freeze({
  /** The process's one GitHubAPICache. Resolve with `await container.getAsync(TYPES.GitHubAPICache)` once; `container.get` works after. */
  GitHubAPICache: Symbol.for('github-p2p-cache.GitHubAPICache') as symbol & { readonly __type?: GitHubAPICache },
  /** The CacheOptions the next creation (or the current instance) uses; rebound by configureCache. */
  CacheOptions: Symbol.for('github-p2p-cache.CacheOptions') as symbol & { readonly __type?: CacheOptions },
});
