/**
 * A read costs no write: reads are remembered in memory and written to `last_used` in batches (about once a
 * second, in slices of at most SLICE_MS each so the event loop never waits long, and at close), and a batch only
 * ever moves `last_used` forward, so a stale read never ages a newer write. An eviction takes the pending read
 * of the one candidate it is about to evict (`take`) instead of writing every pending read first.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { immediate, type Connection } from './connection.js';
import { encodeKey } from './schema.js';
import { describeError } from './store-errors.js';

/** Longest a background slice writes before yielding to the event loop (the rest follow on the next turns). */
export const SLICE_MS = 4;
/**
 * Most rows a background slice writes: the commit that ends a slice writes every page the slice dirtied, and
 * recency rows are scattered, so the commit, not the loop, is what a large slice pays for.
 */
export const SLICE_ROWS = 64;
/** How long reads are remembered in memory before their recency is written, so a read costs no write. */
const TOUCH_FLUSH_MS = 1000;

export interface RecencyBatchOptions {
  /** The database file, for log messages. */
  readonly file: string;
  readonly logger: Logger;
  /** The clock for recency (ms since the epoch). */
  readonly now: () => number;
  /** The connection for a background flush; throws when the store is closed or the database unavailable. */
  readonly connect: () => Connection;
  /** Told after each background slice committed on `c`. */
  readonly committed?: (c: Connection) => void;
}

/** Reads not yet written to `last_used`: key → when it was read. */
export class RecencyBatch {
  readonly #pending = new Map<string, number>();
  readonly #file: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #connect: () => Connection;
  readonly #committed: ((c: Connection) => void) | undefined;
  /** The pending flush: a timer, or the next slice (an immediate); one at a time. */
  #timer: { cancel(): void } | undefined;
  #stopped = false;
  /** One warning per run of failures, not one per second. */
  #failureLogged = false;

  constructor(options: RecencyBatchOptions) {
    this.#file = options.file;
    this.#logger = options.logger;
    this.#now = options.now;
    this.#connect = options.connect;
    this.#committed = options.committed;
  }

  /** Remembers a read of `key` now; written with the next batch. */
  note(key: string): void {
    if (this.#stopped) return;
    this.#pending.set(key, this.#now());
    if (this.#timer !== undefined) return;
    this.#schedule(TOUCH_FLUSH_MS);
  }

  /** Drops the pending read of a key that no longer exists. */
  forget(key: string): void {
    this.#pending.delete(key);
  }

  /** The time of the pending read of `key`, which is taken out of the batch (the caller writes it), or undefined. */
  take(key: string): number | undefined {
    const at = this.#pending.get(key);
    if (at !== undefined) this.#pending.delete(key);
    return at;
  }

  /** Drops every pending read (the entries are gone, or the database was replaced). */
  clear(): void {
    this.#pending.clear();
  }

  /**
   * Writes pending reads, oldest first, until `deadline` (a performance.now() time; at least one is written).
   * Must run inside a write transaction on `c`. Returns the keys written, so the caller can drop them once the
   * transaction committed (a rolled back slice leaves them pending).
   */
  write(c: Connection, deadline = Number.POSITIVE_INFINITY, maxRows = Number.POSITIVE_INFINITY): Array<readonly [string, number]> {
    const written: Array<readonly [string, number]> = [];
    for (const [key, at] of this.#pending) {
      if (written.length >= maxRows) break;
      // The clock is read every 16 rows: a row costs a few microseconds, a clock read about 0.1.
      if ((written.length & 15) === 15 && performance.now() > deadline) break;
      c.touch.run(at, encodeKey(key), at);
      written.push([key, at]);
    }
    return written;
  }

  /** Drops reads written by a committed slice, unless the key was read again since. */
  #settle(written: ReadonlyArray<readonly [string, number]>): void {
    for (const [key, at] of written) if (this.#pending.get(key) === at) this.#pending.delete(key);
  }

  /** Stops the timer and writes what is pending to `c` (if any) in one last transaction; never throws. */
  close(c: Connection | undefined): void {
    this.#stopped = true;
    this.#cancel();
    try {
      if (c !== undefined && this.#pending.size > 0) immediate(c, () => this.write(c));
    } catch (err) {
      // Losing some recency is harmless; closing must not fail.
      this.#logger.debug(`could not record recent reads in ${this.#file} before closing: ${describeError(err)}`);
    }
    this.#pending.clear();
  }

  #cancel(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #schedule(ms: number): void {
    const timer = setTimeout(() => this.#flushSoon(), ms);
    // Recency alone must never keep a process alive.
    timer.unref();
    this.#timer = { cancel: () => clearTimeout(timer) };
  }

  /** The next slice, after whatever else is waiting on the event loop (I/O included). */
  #continueSoon(): void {
    const next = setImmediate(() => this.#flushSoon());
    next.unref();
    this.#timer = { cancel: () => clearImmediate(next) };
  }

  #flushSoon(): void {
    this.#timer = undefined;
    if (this.#stopped || this.#pending.size === 0) return;
    try {
      // No recovery from a timer (it would warn with no caller to see the operation fail); the next call does it.
      const c = this.#connect();
      // A time-bounded slice per turn of the event loop, so thousands of hits never stall it for long.
      const written = immediate(c, () => this.write(c, performance.now() + SLICE_MS, SLICE_ROWS));
      this.#settle(written);
      this.#committed?.(c);
      this.#failureLogged = false;
      if (this.#pending.size > 0 && this.#timer === undefined) this.#continueSoon();
    } catch (err) {
      // Keep the reads for the next attempt (before the next set, or the next timer).
      if (!this.#failureLogged) {
        this.#failureLogged = true;
        this.#logger.warn(`could not record recent reads in ${this.#file} (retrying later): ${describeError(err)}`);
      }
    }
  }
}
