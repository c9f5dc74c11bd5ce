/**
 * Who is asking and what it costs them, as GitHub does it: every configured token has its own hourly window
 * (5000 by default), anonymous callers share one (60 by default, as one IP would), an unknown token is
 * `invalid` and pays nothing. A window opens with its first charged request and resets an hour later on
 * the fake's clock; primary limits (remaining 0) and secondary ones (`retry-after`) can be imposed and lift
 * by themselves when the clock passes them.
 *
 * A token is used only to find its window and, by the caller, to vary ETags and visibility; everything
 * that can be printed (labels, messages) names the token's label, never the token.
 */

/** Per-token settings. */
export interface FakeTokenSettings {
  /** Primary rate limit per hour for this token (GitHub: 5000 for a user token). */
  rateLimit?: number;
  /** The name this token has in stats and logs; default `token#<n>` (1-based, in configuration order). */
  label?: string;
}

export interface RateLimitTokenOptions {
  /**
   * Secondary limit: every request of this token (conditional ones too) gets `status` with `retry-after`
   * until this many seconds have passed on the clock.
   */
  retryAfterSeconds?: number;
  /**
   * Primary limit: the token's window is exhausted (remaining 0) and resets this many seconds from now.
   * Used when neither option is given (then the window resets when it would have anyway).
   */
  resetInSeconds?: number;
  /** 403 (default) or 429: GitHub uses both for rate limits. */
  status?: 403 | 429;
}

/** What `rateLimitState` reports; the same numbers the `x-ratelimit-*` headers carry. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  used: number;
  /** Epoch seconds at which the window resets. */
  reset: number;
}

export const WINDOW_MS = 60 * 60 * 1000;
export const ANONYMOUS = 'anonymous';
const INVALID = 'invalid';
export const SECONDARY_MESSAGE =
  'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.';

export interface Bucket {
  label: string;
  limit: number;
  used: number;
  /** ms; undefined until the first charged request opens a window. */
  resetAt: number | undefined;
  /** A secondary limit set by `rateLimitToken`: blocked until this time (ms). */
  blockedUntil: number | undefined;
  status: 403 | 429;
}

export interface Identity {
  kind: 'anonymous' | 'token' | 'invalid';
  /** The token, for ETags and visibility only; never logged. */
  token: string | undefined;
  label: string;
  /** The window that pays for this request (invalid tokens show the anonymous one and pay nothing). */
  bucket: Bucket;
}

/** Why a request of this identity is refused before it is served, with `retry-after`, or undefined. */
export interface Refusal {
  status: 403 | 429;
  message: string;
  retryAfterSeconds: number;
}

function newBucket(label: string, limit: number): Bucket {
  return { label, limit, used: 0, resetAt: undefined, blockedUntil: undefined, status: 403 };
}

/** Every rate-limit window of one fake GitHub. */
export class RateLimits {
  readonly #clock: () => number;
  readonly #tokenBuckets = new Map<string, Bucket>();
  readonly #anonymousBucket: Bucket;

  constructor(clock: () => number, tokens: Record<string, FakeTokenSettings>, anonymousRateLimit: number) {
    this.#clock = clock;
    this.#anonymousBucket = newBucket(ANONYMOUS, anonymousRateLimit);
    let n = 0;
    for (const [token, settings] of Object.entries(tokens)) {
      n += 1;
      this.addToken(token, { label: settings.label ?? `token#${n}`, rateLimit: settings.rateLimit });
    }
  }

  addToken(token: string, settings: FakeTokenSettings = {}): void {
    const label = settings.label ?? `token#${this.#tokenBuckets.size + 1}`;
    this.#tokenBuckets.set(token, newBucket(label, settings.rateLimit ?? 5000));
  }

  rateLimitToken(token: string | undefined, opts: RateLimitTokenOptions = {}): void {
    const bucket = this.#bucketOf(token);
    const now = this.#clock();
    roll(bucket, now);
    bucket.status = opts.status ?? 403;
    if (opts.resetInSeconds !== undefined || opts.retryAfterSeconds === undefined) {
      bucket.used = bucket.limit;
      bucket.resetAt = opts.resetInSeconds !== undefined
        ? now + opts.resetInSeconds * 1000
        : (bucket.resetAt ?? now + WINDOW_MS);
    }
    if (opts.retryAfterSeconds !== undefined) bucket.blockedUntil = now + opts.retryAfterSeconds * 1000;
  }

  clearRateLimit(token: string | undefined): void {
    const bucket = this.#bucketOf(token);
    bucket.used = 0;
    bucket.resetAt = undefined;
    bucket.blockedUntil = undefined;
    bucket.status = 403;
  }

  rateLimitState(token: string | undefined): RateLimitState {
    const bucket = this.#bucketOf(token);
    const now = this.#clock();
    roll(bucket, now);
    return {
      limit: bucket.limit,
      remaining: bucket.limit - bucket.used,
      used: bucket.used,
      reset: Math.ceil((bucket.resetAt ?? now + WINDOW_MS) / 1000),
    };
  }

  /** The caller named by an `authorization` header (`token X` or `bearer X`; none: anonymous). */
  identify(authorization: string | undefined): Identity {
    const value = authorization?.trim() ?? '';
    if (value === '') {
      return { kind: 'anonymous', token: undefined, label: ANONYMOUS, bucket: this.#anonymousBucket };
    }
    const match = /^(?:token|bearer)\s+(\S+)$/i.exec(value);
    const token = match?.[1];
    const bucket = token === undefined ? undefined : this.#tokenBuckets.get(token);
    if (token === undefined || bucket === undefined) {
      return { kind: 'invalid', token: undefined, label: INVALID, bucket: this.#anonymousBucket };
    }
    return { kind: 'token', token, label: bucket.label, bucket };
  }

  /**
   * A secondary limit still in force for this caller (lifted here once the clock passed it). While the
   * window is exhausted too, the message is the primary one, as GitHub's is.
   */
  refusal(identity: Identity): Refusal | undefined {
    const now = this.#clock();
    const bucket = identity.bucket;
    roll(bucket, now);
    if (bucket.blockedUntil === undefined) return undefined;
    if (now >= bucket.blockedUntil) {
      bucket.blockedUntil = undefined;
      return undefined;
    }
    const exhausted = bucket.used >= bucket.limit;
    return {
      status: bucket.status,
      message: exhausted ? primaryMessage(identity) : SECONDARY_MESSAGE,
      retryAfterSeconds: Math.max(1, Math.ceil((bucket.blockedUntil - now) / 1000)),
    };
  }

  /** Spend one unit of the caller's window: true, or the primary-limit refusal when it is exhausted. */
  spend(identity: Identity): true | { status: 403 | 429; message: string } {
    const bucket = identity.bucket;
    const now = this.#clock();
    roll(bucket, now);
    if (bucket.used >= bucket.limit) return { status: bucket.status, message: primaryMessage(identity) };
    bucket.resetAt ??= now + WINDOW_MS;
    bucket.used += 1;
    return true;
  }

  #bucketOf(token: string | undefined): Bucket {
    if (token === undefined) return this.#anonymousBucket;
    const bucket = this.#tokenBuckets.get(token);
    if (bucket === undefined) throw new Error('fake-github: unknown token (configure it in options.tokens or addToken)');
    return bucket;
  }
}

function primaryMessage(identity: Identity): string {
  return `API rate limit exceeded for ${identity.label}.`;
}

/** Open a fresh window once the clock passes the reset time. */
function roll(bucket: Bucket, now: number): void {
  if (bucket.resetAt !== undefined && now >= bucket.resetAt) {
    bucket.used = 0;
    bucket.resetAt = undefined;
    bucket.status = 403;
  }
}
