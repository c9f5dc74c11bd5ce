/**
 * A read costs no write: reads are remembered in memory and written to `last_used` in batches (before every
 * eviction decision, about once a second in bounded slices, and at close), and a batch only ever moves
 * `last_used` forward, so a stale read never ages a newer write.
 */
import type { Logger } from '../log.js';
import { immediate, type Connection } from './connection.js';
import { encodeKey } from './schema.js';
import { describeError } from './store-errors.js';

/** Recency updates written per transaction by the background flush (the rest follow on the next turns). */
const TOUCH_BATCH = 250;
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
}

/** Reads not yet written to `last_used`: key → when it was read. */
export class RecencyBatch {
  readonly #pending = new Map<string, number>();
  readonly #file: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #connect: () => Connection;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** One warning per run of failures, not one per second. */
  #failureLogged = false;

  constructor(options: RecencyBatchOptions) {
    this.#file = options.file;
    this.#logger = options.logger;
    this.#now = options.now;
    this.#connect = options.connect;
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

  /** Drops every pending read (the entries are gone, or the database was replaced). */
  clear(): void {
    this.#pending.clear();
  }

  /** Writes up to `limit` pending reads. Must run inside a write transaction on `c`. */
  write(c: Connection, limit = Number.POSITIVE_INFINITY): void {
    let written = 0;
    for (const [key, at] of this.#pending) {
      if (written++ >= limit) break;
      c.touch.run(at, encodeKey(key), at);
      this.#pending.delete(key);
    }
  }

  /** Stops the timer and writes what is pending to `c` (if any) in one last transaction; never throws. */
  close(c: Connection | undefined): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      if (c !== undefined && this.#pending.size > 0) immediate(c, () => this.write(c));
    } catch (err) {
      // Losing some recency is harmless; closing must not fail.
      this.#logger.debug(`could not record recent reads in ${this.#file} before closing: ${describeError(err)}`);
    }
    this.#pending.clear();
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => this.#flushSoon(), ms);
    // Recency alone must never keep a process alive.
    this.#timer.unref();
  }

  #flushSoon(): void {
    this.#timer = undefined;
    if (this.#stopped || this.#pending.size === 0) return;
    try {
      // No recovery from a timer (it would warn with no caller to see the operation fail); the next call does it.
      const c = this.#connect();
      // A bounded batch per turn of the event loop, so thousands of hits never stall it for long.
      immediate(c, () => this.write(c, TOUCH_BATCH));
      this.#failureLogged = false;
      if (this.#pending.size > 0 && this.#timer === undefined) this.#schedule(0);
    } catch (err) {
      // Keep the reads for the next attempt (before the next set, or the next timer).
      if (!this.#failureLogged) {
        this.#failureLogged = true;
        this.#logger.warn(`could not record recent reads in ${this.#file} (retrying later): ${describeError(err)}`);
      }
    }
  }
}
