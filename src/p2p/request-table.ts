import type { MissReason } from './wire.js';

/**
 * In-flight requests multiplexed on one stream, correlated by request id.
 *
 * Guarantee: every request opened here settles exactly once, with the first of: its answer, its timeout, its
 * caller's abort, or `closeAll` (the stream ended), and its timer is cleared when it settles. So a request on
 * a stream that dies settles at once, not after its timeout, and a table whose requests all settled holds no
 * timer. Ids are unique among in-flight requests; an answer for an unknown (settled) id is reported, not used.
 * A request that was extended at least once and is still unanswered when its max wait runs out settles with
 * 'timeout' marked `withheld` (the other side said it was working and never finished).
 */

export type Answer =
  | { readonly kind: 'entry'; readonly sealed: Uint8Array }
  | { readonly kind: 'miss'; readonly reason: MissReason }
  | { readonly kind: 'error'; readonly message: string }
  /** `withheld`: the other side kept saying it was working until the request's max wait ran out. */
  | { readonly kind: 'timeout'; readonly withheld?: true }
  | { readonly kind: 'closed' }
  | { readonly kind: 'aborted' };

interface Pending {
  settle(answer: Answer): void;
  extend(): boolean;
}

/** Request ids stay below 2^32 (WIRE_LIMITS.maxId). */
const ID_SPACE = 0x1_0000_0000;

export class RequestTable {
  readonly #pending = new Map<number, Pending>();
  readonly #now: () => number;
  #nextId = 0;
  #closed = false;

  /** `now`: the clock of the `maxWaitMs` deadline, in ms (timeouts themselves are timers). Default: Date.now. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Requests in flight. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Opens a request: returns its id (to send) and its answer. The answer settles with 'timeout' after
   * `timeoutMs` without news (see extend), and at the latest after `maxWaitMs`; with 'aborted' when `signal`
   * aborts; with 'closed' if the table is or gets closed.
   */
  open(timeoutMs: number, signal?: AbortSignal, maxWaitMs = timeoutMs): { id: number; answer: Promise<Answer> } {
    let id = this.#nextId;
    while (this.#pending.has(id)) id = (id + 1) % ID_SPACE;
    this.#nextId = (id + 1) % ID_SPACE;
    if (this.#closed) return { id, answer: Promise.resolve({ kind: 'closed' }) };
    if (signal?.aborted === true) return { id, answer: Promise.resolve({ kind: 'aborted' }) };

    const answer = new Promise<Answer>((resolve) => {
      const onAbort = (): void => pending.settle({ kind: 'aborted' });
      const deadline = this.#now() + Math.max(timeoutMs, maxWaitMs);
      let extended = false;
      /** The running timer ends at the deadline (not a timeout after news). */
      let capped = false;
      const expire = (): void => pending.settle(extended && (capped || this.#now() >= deadline) ? { kind: 'timeout', withheld: true } : { kind: 'timeout' });
      let timer = setTimeout(expire, timeoutMs);
      const pending: Pending = {
        settle: (value) => {
          if (this.#pending.get(id) !== pending) return;
          this.#pending.delete(id);
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(value);
        },
        extend: () => {
          extended = true;
          const left = deadline - this.#now();
          if (left <= 0) return false;
          clearTimeout(timer);
          capped = left <= timeoutMs;
          timer = setTimeout(expire, Math.min(timeoutMs, left));
          return true;
        },
      };
      this.#pending.set(id, pending);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return { id, answer };
  }

  /** Settles request `id` with `answer`. false when no such request is in flight (late or bogus answer). */
  settle(id: number, answer: Answer): boolean {
    const pending = this.#pending.get(id);
    if (pending === undefined) return false;
    pending.settle(answer);
    return true;
  }

  /** The other side is still working on request `id`: restart its timeout (never past its maxWaitMs). */
  extend(id: number): boolean {
    return this.#pending.get(id)?.extend() ?? false;
  }

  /** Settles every request with 'closed' and refuses new ones. Idempotent. */
  closeAll(): void {
    this.#closed = true;
    for (const pending of [...this.#pending.values()]) pending.settle({ kind: 'closed' });
  }
}
