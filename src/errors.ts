/**
 * Typed errors. Every message says what failed, with which value, and what to do; none ever holds a token.
 */

/** Base class of every error this package throws. `code` is stable and safe to match on. */
export class CacheError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An operation was attempted on a cache that is closed (or closing). */
export class CacheClosedError extends CacheError {
  constructor(operation: string) {
    super('ERR_CACHE_CLOSED', `Cannot ${operation}: the cache is closed. Get the current instance with getGlobalCache() or container.getAsync(TYPES.GitHubAPICache).`);
  }
}

/** An option or environment variable has an invalid value. Nothing was changed. */
export class CacheConfigError extends CacheError {
  /** The option path (`p2p.listenPort`) or environment variable (`CACHE_LISTEN_PORT`) at fault. */
  readonly option: string;
  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('ERR_CACHE_CONFIG', `Invalid ${option}: ${message}`, options);
    this.option = option;
  }
}

/** A value given to `put` cannot be stored (not JSON-serializable). Nothing was stored. */
export class CacheValueError extends CacheError {
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('ERR_CACHE_VALUE', `Cannot store key ${JSON.stringify(key)}: ${message}`, options);
    this.key = key;
  }
}

/** The singleton could not be created; `cause` holds the factory's own error. */
export class CacheCreationError extends CacheError {
  constructor(cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('ERR_CACHE_CREATION', `Creating the GitHubAPICache failed: ${reason}. The next call will try again.`, { cause });
  }
}

/** `container.get` was called before the cache was created; it can only be created asynchronously. */
export class CacheNotReadyError extends CacheError {
  constructor(options?: { cause?: unknown }) {
    super(
      'ERR_CACHE_NOT_READY',
      'The GitHubAPICache has not been created yet, so container.get() cannot return it synchronously. ' +
        'Call `await container.getAsync(TYPES.GitHubAPICache)` or `await configureCache(...)` (or `await getGlobalCache()`) once at startup; container.get() works after that.',
      options,
    );
  }
}

/** GitHub's rate limit for this token's scope is exhausted and no stale entry could answer. */
export class RateLimitError extends CacheError {
  /** When GitHub allows requests again (ms since the epoch). */
  readonly resetAt: number;
  /** The one-way scope id of the token (never the token). */
  readonly scopeId: string;
  /** The refusal GitHub sent, when this error reports one (absent when the cache refused before sending). */
  readonly response: { readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly data: unknown } | undefined;
  constructor(scopeId: string, resetAt: number, detail: string,
    response?: { status: number; headers: Record<string, string>; data: unknown }) {
    super(
      'ERR_RATE_LIMITED',
      `GitHub rate limit reached for scope ${scopeId.slice(0, 12)}: ${detail}; requests resume at ${new Date(resetAt).toISOString()}.`,
    );
    this.resetAt = resetAt;
    this.scopeId = scopeId;
    this.response = response;
  }
}

/** GitHub (or the network to it) failed and no stale entry could answer. */
export class UpstreamError extends CacheError {
  /** The HTTP status, or 0 when no response arrived (reset, timeout, DNS). */
  readonly status: number;
  /** GitHub's own `message`, or the network error's message. */
  readonly upstreamMessage: string;
  /** The response GitHub sent, when it sent one (headers lowercase; data parsed when JSON). */
  readonly response: { readonly headers: Readonly<Record<string, string>>; readonly data: unknown } | undefined;
  constructor(status: number, method: string, url: string, upstreamMessage: string,
    options?: { cause?: unknown; response?: { headers: Record<string, string>; data: unknown } }) {
    super(
      'ERR_UPSTREAM',
      status === 0
        ? `${method} ${url} failed before a response: ${upstreamMessage}`
        : `${method} ${url} answered ${status}: ${upstreamMessage}`,
      options,
    );
    this.status = status;
    this.upstreamMessage = upstreamMessage;
    this.response = options?.response;
  }
}
