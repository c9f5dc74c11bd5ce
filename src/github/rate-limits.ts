import { LRUCache } from 'lru-cache';
import type { ScopeRateLimit } from '../cache/ports.js';

/**
 * RateLimitTracker: what GitHub last said about each token scope's rate limit, and until when a scope must
 * send nothing. It follows GitHub's rules: on a 403/429 honour `retry-after`; else if
 * `x-ratelimit-remaining` is 0 wait until `x-ratelimit-reset`; else (a secondary limit without a hint) back
 * off at least a minute, doubling while it repeats. Keys are scope ids, never tokens. At most `maxScopes`
 * scopes are remembered (the least recently used is forgotten first), so many tokens cannot grow it without bound.
 */

export type { ScopeRateLimit };

type Headers = Readonly<Record<string, string>>;

/** The same object whenever there is nothing to say, so callers can tell "unchanged" by identity. */
const NO_HEADERS: Headers = Object.freeze({});

function int(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

export class RateLimitTracker {
  readonly #scopes: LRUCache<string, ScopeRateLimit & { backoffs: number; headers?: Record<string, string> }>;
  readonly #now: () => number;

  /** Grows with every record (and when a window may have reset): answers built from headersOf() stay valid while it holds. */
  #version = 0;
  /** The soonest reset among the windows with headers: past it, headersOf() may change without a record. */
  #nextReset = Number.POSITIVE_INFINITY;

  get version(): number {
    if (this.#now() >= this.#nextReset) {
      this.#nextReset = Number.POSITIVE_INFINITY;
      for (const { reset } of this.#headers.values()) if (reset > this.#now() && reset < this.#nextReset) this.#nextReset = reset;
      this.#version++;
    }
    return this.#version;
  }

  /** The x-ratelimit-* headers last sent per scope, and when their window resets; entries leave with their scope. */
  readonly #headers = new Map<string, { headers: Headers; reset: number }>();

  constructor(now: () => number, options: { maxScopes?: number } = {}) {
    this.#now = now;
    this.#scopes = new LRUCache({ max: options.maxScopes ?? 1_000, dispose: (_state, scopeId) => this.#headers.delete(scopeId) });
  }

  /**
   * The x-ratelimit-* headers GitHub last sent for this key, for answers the cache gives without asking
   * GitHub; {} when none were seen or their window has reset (a stale `remaining: 0` would make a client
   * wait for nothing).
   */
  headersOf(scopeId: string): Readonly<Record<string, string>> {
    // A plain Map read on the hit path (the LRU above bounds it: a forgotten scope's headers go with it).
    const known = this.#headers.get(scopeId);
    if (known === undefined || known.reset <= this.#now()) return NO_HEADERS;
    return known.headers;
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
      const sent: Record<string, string> = {};
      for (const [name, value] of Object.entries(headers)) if (name.startsWith('x-ratelimit-')) sent[name] = value;
      state.headers = sent;
      if (state.reset !== undefined) {
        this.#headers.set(scopeId, { headers: sent, reset: state.reset });
        // Only a window still open can reset later; one already past changes nothing (and must not bump the version on every read).
        if (state.reset > this.#now() && state.reset < this.#nextReset) this.#nextReset = state.reset;
      } else {
        this.#headers.delete(scopeId);
      }
      this.#version++;
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
    for (const [scope, { backoffs: _backoffs, headers: _headers, ...state }] of this.#scopes.entries()) {
      out[scope] = { ...state, blockedUntil: state.blockedUntil > this.#now() ? state.blockedUntil : 0 };
    }
    return out;
  }
}
