import type { ScopeRateLimit } from '../cache/ports.js';

/**
 * RateLimitTracker: what GitHub last said about each token scope's rate limit, and until when a scope must
 * send nothing. It follows GitHub's rules: on a 403/429 honour `retry-after`; else if
 * `x-ratelimit-remaining` is 0 wait until `x-ratelimit-reset`; else (a secondary limit without a hint) back
 * off at least a minute, doubling while it repeats. Keys are scope ids, never tokens.
 */

export type { ScopeRateLimit };

type Headers = Readonly<Record<string, string>>;

function int(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

export class RateLimitTracker {
  readonly #scopes = new Map<string, ScopeRateLimit & { backoffs: number }>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** Whether a response is GitHub refusing for rate limits (as opposed to a permission 403). */
  static isRateLimited(status: number, headers: Headers, message: string | undefined): boolean {
    if (status !== 403 && status !== 429) return false;
    if (status === 429) return true;
    if (headers['retry-after'] !== undefined) return true;
    if (headers['x-ratelimit-remaining'] === '0') return true;
    return message !== undefined && /rate limit/i.test(message);
  }

  /** Records the x-ratelimit-* headers of any response, and a block when it is a rate-limit refusal. */
  record(scopeId: string, status: number, headers: Headers, message?: string): void {
    let state = this.#scopes.get(scopeId);
    if (state === undefined) {
      state = { blockedUntil: 0, limited: 0, backoffs: 0 };
      this.#scopes.set(scopeId, state);
    }
    const limit = int(headers['x-ratelimit-limit']);
    if (limit !== undefined) {
      state.limit = limit;
      state.remaining = int(headers['x-ratelimit-remaining']);
      state.used = int(headers['x-ratelimit-used']);
      const reset = int(headers['x-ratelimit-reset']);
      state.reset = reset === undefined ? undefined : reset * 1000;
      state.resource = headers['x-ratelimit-resource'];
    }
    const now = this.#now();
    if (!RateLimitTracker.isRateLimited(status, headers, message)) {
      if (status < 400) state.backoffs = 0;
      return;
    }
    state.limited++;
    const retryAfter = int(headers['retry-after']);
    if (retryAfter !== undefined && retryAfter >= 0) {
      state.blockedUntil = Math.max(state.blockedUntil, now + retryAfter * 1000);
    } else if (state.remaining === 0 && state.reset !== undefined && state.reset > now) {
      state.blockedUntil = Math.max(state.blockedUntil, state.reset);
    } else {
      state.blockedUntil = Math.max(state.blockedUntil, now + 60_000 * 2 ** Math.min(state.backoffs, 6));
      state.backoffs++;
    }
  }

  /** When the scope may send again (ms since the epoch), or 0 when it may now. */
  blockedUntil(scopeId: string): number {
    const state = this.#scopes.get(scopeId);
    if (state === undefined || state.blockedUntil <= this.#now()) return 0;
    return state.blockedUntil;
  }

  /** A snapshot per scope id. */
  snapshot(): Record<string, ScopeRateLimit> {
    const out: Record<string, ScopeRateLimit> = {};
    for (const [scope, { backoffs: _backoffs, ...state }] of this.#scopes) {
      out[scope] = { ...state, blockedUntil: state.blockedUntil > this.#now() ? state.blockedUntil : 0 };
    }
    return out;
  }
}
