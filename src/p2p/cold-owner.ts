import { LRUCache } from 'lru-cache';

/**
 * Cold owners: a key's owner is chosen among all members (asking.ts), so an owner may be asked for a scope it
 * does not hold yet. Since protocol 1.4.0 such an owner coordinates the key blind (lease.ts, serving.ts): a sealed
 * `get` carries the key's tag and is never refused for the scope. What is here is what remains around it:
 *
 * - `ScopeGrace` (owner side, legacy): a sealed `get` WITHOUT a tag (a peer of an older build) of a scope this
 *   node does not hold waits up to `graceMs` for the scope
 *   (`held`, called when the cache first holds it). If the grace ends without it, the scope is remembered as
 *   "asked, not held" for `memoryMs` (refreshed by each refusal), and later gets of it are refused at once: a
 *   fleet that mixes tokens pays one grace per scope and owner, not one per request. Nothing is served before
 *   the scope is held and the asker's proof verified under it (serving.ts).
 * - `ScopeAbsence` (asker side): the peers that answered a sealed `get` with `miss not-held`, timed out on an
 *   untagged one, or relayed two entries that failed to open (asking.ts), per stream and scope for `memoryMs`. They stop being candidate owners of that scope unless
 *   they prove it (a claim under this node's challenge), so askers fall back to the members that hold it.
 *
 * Both are bounded: at most `maxScopes` remembered scopes (per stream for askers), least recently set dropped
 * first; a waiter is one timer, cleared when it ends; `stop` clears all.
 */

/** How long "asked, not held" (owner) and "not held there" (asker) are remembered, in ms. */
const COLD_SCOPE_MEMORY_MS = 10 * 60_000;
const MAX_SCOPES = 1024;

interface Waiter {
  readonly timer: NodeJS.Timeout;
  readonly done: (held: boolean) => void;
}

export class ScopeGrace {
  readonly #graceMs: number;
  readonly #waiting = new Map<string, Set<Waiter>>();
  readonly #notHeld: LRUCache<string, true>;

  constructor(graceMs: number, memoryMs = COLD_SCOPE_MEMORY_MS) {
    this.#graceMs = graceMs;
    this.#notHeld = new LRUCache({ max: MAX_SCOPES, ttl: memoryMs, ttlAutopurge: false });
  }

  /** Whether gets of `scopeId` are refused at once (a grace for it ended without the scope); refreshes the memory. */
  refuses(scopeId: string): boolean {
    if (!this.#notHeld.has(scopeId)) return false;
    this.#notHeld.set(scopeId, true);
    return true;
  }

  /** Waits for `scopeId`: `done(true)` once it is held, `done(false)` when the grace ends first. Called once. */
  wait(scopeId: string, done: (held: boolean) => void): void {
    let waiters = this.#waiting.get(scopeId);
    if (waiters === undefined) {
      waiters = new Set();
      this.#waiting.set(scopeId, waiters);
    }
    const timer = setTimeout(() => {
      this.#notHeld.set(scopeId, true);
      this.#end(scopeId, waiter, false);
    }, this.#graceMs);
    timer.unref();
    const waiter: Waiter = { timer, done };
    waiters.add(waiter);
  }

  /** The cache now holds `scopeId`: its waiters go on, and it is no longer remembered as not held. */
  held(scopeId: string): void {
    this.#notHeld.delete(scopeId);
    const waiters = this.#waiting.get(scopeId);
    if (waiters === undefined) return;
    for (const waiter of [...waiters]) this.#end(scopeId, waiter, true);
  }

  /** Gets waiting now (for stats and tests). */
  get waiting(): number {
    let n = 0;
    for (const waiters of this.#waiting.values()) n += waiters.size;
    return n;
  }

  /** Drops every waiter without calling it (the host is stopping) and forgets every scope. */
  stop(): void {
    for (const waiters of this.#waiting.values()) for (const waiter of waiters) clearTimeout(waiter.timer);
    this.#waiting.clear();
    this.#notHeld.clear();
  }

  #end(scopeId: string, waiter: Waiter, held: boolean): void {
    const waiters = this.#waiting.get(scopeId);
    if (waiters === undefined || !waiters.delete(waiter)) return;
    if (waiters.size === 0) this.#waiting.delete(scopeId);
    clearTimeout(waiter.timer);
    waiter.done(held);
  }
}

export class ScopeAbsence {
  readonly #memoryMs: number;
  readonly #now: () => number;
  /** Per stream (the asker's outbound stream object): scope id → remembered until (ms). */
  readonly #absent = new WeakMap<object, Map<string, number>>();

  constructor(now: () => number, memoryMs = COLD_SCOPE_MEMORY_MS) {
    this.#now = now;
    this.#memoryMs = memoryMs;
  }

  /** The owner behind `stream` does not hold `scopeId` (it said so, or stayed silent past the grace). */
  mark(stream: object, scopeId: string): void {
    let scopes = this.#absent.get(stream);
    if (scopes === undefined) {
      scopes = new Map();
      this.#absent.set(stream, scopes);
    }
    scopes.delete(scopeId);
    if (scopes.size >= MAX_SCOPES) scopes.delete(scopes.keys().next().value!);
    scopes.set(scopeId, this.#now() + this.#memoryMs);
  }

  /** Whether the owner behind `stream` is remembered as not holding `scopeId`. */
  lacks(stream: object, scopeId: string): boolean {
    const until = this.#absent.get(stream)?.get(scopeId);
    if (until === undefined) return false;
    if (this.#now() < until) return true;
    this.#absent.get(stream)?.delete(scopeId);
    return false;
  }
}
