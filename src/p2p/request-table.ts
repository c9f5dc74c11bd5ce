import { performance } from 'node:perf_hooks';
import type { MissReason } from './wire.js';

/**
 * In-flight requests multiplexed on one stream, correlated by request id.
 *
 * Guarantee: every request opened here settles exactly once, with the first of: its answer, its timeout, its
 * caller's abort, or `closeAll` (the stream ended). So a request on a stream that dies settles at once, not after
 * its timeout. A table holds one timer for all its requests, due at the earliest of their timeouts: a request
 * that opens or settles sets or clears no timer of its own (each used to: a Node timer made and cleared per peer
 * hit, on the asker's path from the answer to its next ask). A table whose requests all settled holds that one
 * timer unref'd until it next fires (it never keeps the process alive and is not set again), and none after
 * `closeAll`. Ids are unique among in-flight requests; an answer for an unknown (settled) id is reported, not used.
 * A request that was extended at least once and is still unanswered when its max wait runs out settles with
 * 'timeout' marked `withheld` (the other side said it was working and never finished).
 *
 * A timeout means the other side was silent, not that this node was: when the timer fires, frames that came
 * while this node's event loop was held up are read first (the timeout is decided after that turn's I/O), and a
 * timer that fires more than half a timeout late (this node's CPU was contended), or while the other side was
 * heard on the stream within the last timeout (`heard`: it is alive and answering others first), restarts
 * instead, within `maxWaitMs`. So a live but slow or busy owner is not given up on (and its key fetched twice).
 *
 * A caller's signal gets one abort listener from this table however many requests wait on it (a cache passes its
 * one shutdown signal with every fetch): Node's EventTarget walks all of a signal's listeners on each add, so one
 * listener per request cost each request time in proportion to the number in flight (docs/benchmarks.md, after
 * "Peer hits under concurrency"). The listener stays after the signal's last request settles, so requests made one
 * at a time do not add and remove a listener each: it is removed when another signal's last request settles (one
 * idle signal is held at most), when the signal aborts, or at `closeAll`.
 */

export type Answer =
  | { readonly kind: 'entry'; readonly sealed: Uint8Array }
  /** An unsealed entry (the `entry` frame's `payload`), to be checked by the asker (envelope.ts, openPlainEntry). */
  | { readonly kind: 'entry'; readonly payload: Readonly<Record<string, unknown>> }
  | { readonly kind: 'miss'; readonly reason: MissReason }
  | { readonly kind: 'error'; readonly message: string }
  /** A blind owner gave this asker the key's lease (lease.ts): it fetches the key and ends lease `lease`. */
  | { readonly kind: 'lease'; readonly lease: number }
  /** `withheld`: the other side kept saying it was working until the request's max wait ran out. */
  | { readonly kind: 'timeout'; readonly withheld?: true }
  | { readonly kind: 'closed' }
  | { readonly kind: 'aborted' };

interface Pending {
  settle(answer: Answer): void;
  extend(): boolean;
  /** When its timeout is due (performance.now() ms); Infinity while a timeout that came is decided. */
  due: number;
  /** The table's timer found it due at `at`. */
  fire(at: number): void;
}

/** Request ids stay below 2^32 (WIRE_LIMITS.maxId). */
const ID_SPACE = 0x1_0000_0000;

export class RequestTable {
  readonly #pending = new Map<number, Pending>();
  readonly #now: () => number;
  #nextId = 0;
  #closed = false;
  /** When the other side last sent anything on the stream (monotonic ms). */
  #heardAt = -Infinity;
  /** The requests in flight under each caller signal, and that signal's one abort listener. */
  readonly #waiters = new Map<AbortSignal, { readonly pending: Set<Pending>; readonly onAbort: () => void }>();
  /** The one signal whose requests all settled but whose listener is kept for its next request. */
  #idle: AbortSignal | undefined;
  /** The table's one timer, due at #timerDue (performance.now() ms): never later than any request's due. */
  #timer: NodeJS.Timeout | undefined;
  #timerDue = Infinity;
  /** Inside #onTimer: restarts only move their due; the timer is set once, after the sweep. */
  #sweeping = false;

  /** `now`: the clock of the `maxWaitMs` deadline, in ms (timeouts themselves are the table's timer). Default: Date.now. */
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
      const deadline = this.#now() + Math.max(timeoutMs, maxWaitMs);
      /** The other side said it was working on this request (extend), as opposed to restarts of our own timer. */
      let extended = false;
      /** The running wait ends at the deadline (not a timeout after news). */
      let capped = false;
      /** How many times news came: a timeout needs silence. */
      let news = 0;
      const expire = (): void => pending.settle(extended && (capped || this.#now() >= deadline) ? { kind: 'timeout', withheld: true } : { kind: 'timeout' });
      /** Waits another timeout (at most until the deadline); false when the deadline has passed. */
      const restart = (): boolean => {
        const left = deadline - this.#now();
        if (left <= 0) return false;
        const wait = Math.min(timeoutMs, left);
        capped = left <= timeoutMs;
        pending.due = performance.now() + wait;
        this.#arm(pending.due);
        return true;
      };
      const pending: Pending = {
        due: performance.now() + timeoutMs,
        fire: (at) => {
          // Fired late (this node's own loop was held up: the silence may be ours), or the other side is alive and
          // answering other requests first: listen for another timeout.
          if ((at - pending.due > timeoutMs / 2 || at - this.#heardAt < timeoutMs) && restart()) return;
          // Frames that arrived while the loop was busy are read in this turn's I/O phase: decide after it.
          pending.due = Infinity;
          const seen = news;
          setImmediate(() => {
            if (news === seen) expire();
          });
        },
        settle: (value) => {
          if (this.#pending.get(id) !== pending) return;
          this.#pending.delete(id);
          if (this.#pending.size === 0) this.#release();
          if (signal !== undefined) this.#unwatch(signal, pending);
          resolve(value);
        },
        extend: () => {
          extended = true;
          if (!restart()) return false;
          news++;
          return true;
        },
      };
      this.#pending.set(id, pending);
      this.#arm(pending.due);
      if (signal !== undefined) this.#watch(signal, pending);
    });
    return { id, answer };
  }

  /** Makes the table's timer due by `due` at the latest, and keeps the process alive while requests are in flight. */
  #arm(due: number): void {
    if (this.#sweeping) return;
    if (due < this.#timerDue) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timerDue = due;
      this.#timer = setTimeout(this.#onTimer, Math.max(1, due - performance.now()));
    } else if (this.#timer !== undefined && !this.#timer.hasRef()) {
      this.#timer.ref();
    }
  }

  /** The last request settled: the timer stays (set again it would cost the next request), but holds nothing up. */
  #release(): void {
    this.#timer?.unref();
  }

  /** The table's timer: every request due by now fires (restarts, or times out), then the timer is set for the next due. */
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerDue = Infinity;
    const at = performance.now();
    this.#sweeping = true;
    try {
      for (const pending of [...this.#pending.values()]) if (pending.due <= at) pending.fire(at);
    } finally {
      this.#sweeping = false;
    }
    let next = Infinity;
    for (const pending of this.#pending.values()) if (pending.due < next) next = pending.due;
    if (next !== Infinity) this.#arm(next);
  };

  /** Settles `pending` with 'aborted' when `signal` aborts: one listener per signal, shared by its requests. */
  #watch(signal: AbortSignal, pending: Pending): void {
    let waiters = this.#waiters.get(signal);
    if (waiters === undefined) {
      const set = new Set<Pending>();
      const onAbort = (): void => {
        this.#waiters.delete(signal);
        if (this.#idle === signal) this.#idle = undefined;
        for (const each of [...set]) each.settle({ kind: 'aborted' });
      };
      waiters = { pending: set, onAbort };
      this.#waiters.set(signal, waiters);
      signal.addEventListener('abort', onAbort, { once: true });
    } else if (this.#idle === signal) {
      this.#idle = undefined;
    }
    waiters.pending.add(pending);
  }

  /** `pending` settled: after the signal's last request, its listener is kept (the idle one), dropping the previous idle one's. */
  #unwatch(signal: AbortSignal, pending: Pending): void {
    const waiters = this.#waiters.get(signal);
    if (waiters === undefined || !waiters.pending.delete(pending) || waiters.pending.size > 0) return;
    if (this.#idle !== undefined && this.#idle !== signal) this.#forget(this.#idle);
    this.#idle = signal;
  }

  /** Removes `signal`'s listener (it has no request in flight). */
  #forget(signal: AbortSignal): void {
    const waiters = this.#waiters.get(signal);
    this.#waiters.delete(signal);
    if (this.#idle === signal) this.#idle = undefined;
    if (waiters !== undefined) signal.removeEventListener('abort', waiters.onAbort);
  }

  /** Whether request `id` is in flight. */
  has(id: number): boolean {
    return this.#pending.has(id);
  }

  /** Settles request `id` with `answer`. false when no such request is in flight (late or bogus answer). */
  settle(id: number, answer: Answer): boolean {
    const pending = this.#pending.get(id);
    if (pending === undefined) return false;
    pending.settle(answer);
    return true;
  }

  /** The other side sent something on the stream: it is alive (see the class comment). */
  heard(): void {
    this.#heardAt = performance.now();
  }

  /** The other side is still working on request `id`: restart its timeout (never past its maxWaitMs). */
  extend(id: number): boolean {
    return this.#pending.get(id)?.extend() ?? false;
  }

  /** Settles every request with 'closed' and refuses new ones. Idempotent. */
  closeAll(): void {
    this.#closed = true;
    for (const pending of [...this.#pending.values()]) pending.settle({ kind: 'closed' });
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
    for (const signal of [...this.#waiters.keys()]) this.#forget(signal);
  }
}
