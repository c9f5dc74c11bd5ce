/**
 * Typed errors. Every message says what failed, with which value, and what to do; none ever holds a token.
 *
 * Codes (stable; match on `code`, not on the message or the class):
 *   ERR_CACHE_CLOSED, ERR_CACHE_CONFIG, ERR_CACHE_VALUE, ERR_CACHE_CREATION, ERR_CACHE_NOT_READY,
 *   ERR_RATE_LIMITED, ERR_UPSTREAM, ERR_TOKEN_HOST here; ERR_STORE (src/store), ERR_PROXY_LISTEN (src/proxy),
 *   ERR_P2P_START, ERR_P2P_WIRE_FORMAT, ERR_P2P_NOTICE_FORMAT, ERR_PEER_ENTRY_REJECTED (src/p2p).
 */

/**
 * Credentials that may reach a message through a value we quote (a URL, GitHub's own message, a network
 * error): GitHub's prefixed tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_; a short name such as
 * `ghs_tools` is not one), JWTs, the credential after `token`/`bearer`, a URL's user:password and
 * token-like query parameters. A bare 40-hex string is left alone: in GitHub's messages it is far more
 * often a commit SHA than a classic token.
 */
const SECRET_PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/\b(?:gh[pousr]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{20,})/g, '[redacted]'],
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '[redacted]'],
  [/\b(token|bearer)(\s+)[A-Za-z0-9_.~+/=-]{20,}/gi, '$1$2[redacted]'],
  [/(\/\/)[^/\s:@]+:[^/\s@]+@/g, '$1[redacted]@'],
  [/([?&](?:access_token|token|client_secret|code)=)[^&#\s]+/gi, '$1[redacted]'],
];

/** `text` with anything that looks like a credential replaced by `[redacted]`. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/**
 * Base class of every error this package throws. `code` is stable and safe to match on. The message is
 * redacted before it is set, so a credential quoted by mistake never reaches a log or a stack trace.
 */
export class CacheError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(redactSecrets(message), options);
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

/**
 * An argument the cache cannot take: a value JSON cannot carry exactly, a TTL that is not a finite number
 * >= 0, a key or prefix that is not a string, a request without a route. Nothing was stored or sent.
 * The message names the operation when the caller says which (`{ operation: 'put' }` gives
 * `Cannot put "key": …`) and is neutral otherwise (`Invalid input for "key": …`), since the same error
 * serves get, put, invalidate and request.
 */
export class CacheValueError extends CacheError {
  /** The key (or prefix, or route) the refused call was about. */
  readonly key: string;
  /** The operation refused (`put`, `get`, `request`, …), when the caller named it. */
  readonly operation: string | undefined;
  constructor(key: string, message: string, options?: { cause?: unknown; operation?: string | undefined }) {
    const subject = options?.operation === undefined ? 'Invalid input for' : `Cannot ${options.operation}`;
    super('ERR_CACHE_VALUE', `${subject} ${JSON.stringify(key)}: ${message}`, options);
    this.key = key;
    this.operation = options?.operation;
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
  readonly response: { readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly data: unknown;
    /** The body exactly as GitHub sent it. */
    readonly body?: string | Uint8Array | undefined } | undefined;
  constructor(scopeId: string, resetAt: number, detail: string,
    response?: { status: number; headers: Record<string, string>; data: unknown; body?: string | Uint8Array | undefined }) {
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
  readonly response: { readonly headers: Readonly<Record<string, string>>; readonly data: unknown;
    /** The body exactly as GitHub sent it. */
    readonly body?: string | Uint8Array | undefined } | undefined;
  constructor(status: number, method: string, url: string, upstreamMessage: string,
    options?: { cause?: unknown; response?: { headers: Record<string, string>; data: unknown; body?: string | Uint8Array | undefined } }) {
    super(
      'ERR_UPSTREAM',
      status === 0
        ? `${method} ${url} failed before a response: ${upstreamMessage}`
        : `${method} ${url} answered ${status}: ${upstreamMessage}`,
      options,
    );
    this.status = status;
    this.upstreamMessage = redactSecrets(upstreamMessage);
    this.response = options?.response;
  }
}

/**
 * A request with a token named a host other than the configured GitHub API (or the upload host GitHub names for
 * it). Nothing was sent: a token goes to the GitHub API it belongs to and nowhere else.
 */
export class TokenHostError extends CacheError {
  /** The host that was refused (never the token). */
  readonly host: string;
  constructor(host: string, githubApiUrl: string) {
    super(
      'ERR_TOKEN_HOST',
      `Refused to send the token to ${host}: it goes only to the configured GitHub API (${githubApiUrl}) and its upload host. ` +
        'Send the request without a token, or set githubApiUrl to the API this token belongs to.',
    );
    this.host = host;
  }
}
