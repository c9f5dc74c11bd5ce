import { LRUCache } from 'lru-cache';
import type { ScopeKeys } from './ports.js';
import { ANONYMOUS_SCOPE, entryKeyOf, scopeIdOf } from './scope.js';

/**
 * TokenVault: the one place a token lives. It maps a token to its scope id (hashed once per token), keeps the
 * token of each scope held (memory only, at most `maxTokens`, least recently used dropped first) so this node
 * can fetch as a key's owner for peers, and lends the fleet scope ids and entry keys, never tokens.
 * Listeners hear of a newly held scope on a later tick, outside the caller's request.
 */
export class TokenVault implements ScopeKeys {
  readonly #held: LRUCache<string, { token: string; entryKey: Uint8Array }>;
  /** token → scope id, so the hot path hashes a token once. */
  readonly #scopeOfToken: LRUCache<string, string>;
  readonly #listeners = new Set<(scopeId: string) => void>();

  constructor(options: { maxTokens?: number } = {}) {
    const max = options.maxTokens ?? 1_000;
    // A scope leaving the vault ends the memo of the last token (it may be that token's scope).
    this.#held = new LRUCache({ max, dispose: () => { this.#lastToken = undefined; } });
    this.#scopeOfToken = new LRUCache({ max });
  }

  /** The token last held and its scope id, while that scope is held: the usual repeat costs one comparison. */
  #lastToken: string | undefined;
  #lastScope = ANONYMOUS_SCOPE;

  /** Holds `token` (if any) and returns its scope id; no token is the anonymous scope. */
  hold(token: string | undefined): string {
    if (token === undefined || token === '') return ANONYMOUS_SCOPE;
    // The last token again: one LRU touch keeps its scope the most recently used (and checks it is still held).
    if (token === this.#lastToken && this.#held.get(this.#lastScope) !== undefined) return this.#lastScope;
    const scopeId = this.#holdScope(token);
    this.#lastToken = token;
    this.#lastScope = scopeId;
    return scopeId;
  }

  #holdScope(token: string): string {
    const known = this.#scopeOfToken.peek(token); // a memo of a hash: insertion order is recency enough
    if (known !== undefined && this.#held.get(known) !== undefined) return known;
    const scopeId = known ?? scopeIdOf(token);
    this.#scopeOfToken.set(token, scopeId);
    if (!this.#held.has(scopeId)) {
      this.#held.set(scopeId, { token, entryKey: entryKeyOf(token) });
      if (this.#listeners.size > 0) queueMicrotask(() => this.#announce(scopeId));
    }
    return scopeId;
  }

  /** The token of a held scope (to fetch as a key's owner), else undefined. Anonymous: undefined. */
  tokenOf(scopeId: string): string | undefined {
    return this.#held.get(scopeId)?.token;
  }

  /** Whether this node can fetch for `scopeId`: the anonymous scope, or a scope whose token it holds. */
  holds(scopeId: string): boolean {
    return scopeId === ANONYMOUS_SCOPE || this.#held.has(scopeId);
  }

  entryKey(scopeId: string): Uint8Array | undefined {
    return this.#held.get(scopeId)?.entryKey;
  }

  heldScopes(): readonly string[] {
    return [ANONYMOUS_SCOPE, ...this.#held.keys()];
  }

  onScopeAdded(listener: (scopeId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #announce(scopeId: string): void {
    for (const listener of this.#listeners) listener(scopeId);
  }
}
