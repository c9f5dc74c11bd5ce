/**
 * What the fake GitHub counts, and the guarantee behind every number a spec asserts on: each request is
 * counted once when it arrives (`requests`, `byPath`, `byToken`, `inFlight`) and once when it is answered or
 * dropped (`byStatus` or `resets`/`hangs`, one request-log entry), and waiters are told after every change,
 * so `waitFor(s => s.inFlight >= 10)` resolves without polling.
 *
 * Tokens never appear here: requests are named by token label (`anonymous`, `invalid`, `token#<n>`).
 */

export interface FakeGitHubStats {
  /** Every request received, whatever became of it. */
  requests: number;
  /** Answers by status code (resets and hangs have no status and are counted apart). */
  byStatus: Record<number, number>;
  /** Rate-limit units spent, over all tokens. */
  charged: number;
  /** 304 answers. */
  notModified: number;
  /** Writes (POST/PATCH/PUT/DELETE) that reached the API (each costs 5 secondary points on GitHub). */
  writes: number;
  /** Requests by path with its query, as received (each page of a collection is its own key). */
  byPath: Record<string, number>;
  /** Requests by token label; `anonymous` and `invalid` (unknown token) besides the configured labels. */
  byToken: Record<string, number>;
  /** Connections destroyed without an answer by `resetNext`. */
  resets: number;
  /** Requests left unanswered by `hangNext`. */
  hangs: number;
  /** The most requests in flight at once (received, not yet answered). */
  maxConcurrent: number;
  /** Requests in flight now. */
  inFlight: number;
}

export interface RequestLogEntry {
  method: string;
  /** Path with its query. */
  path: string;
  /** 0 for a reset or a hang. */
  status: number;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  tokenLabel: string;
  /** Whether this answer spent a rate-limit unit. */
  charged: boolean;
  /** The clock (`now`) when answered. */
  at: number;
}

/** The log keeps the last 10,000 answers; it is trimmed in batches so recording stays O(1) amortized. */
const REQUEST_LOG_LIMIT = 10_000;

type Waiter = { predicate: (stats: Readonly<FakeGitHubStats>) => boolean; resolve: () => void };

function emptyStats(): FakeGitHubStats {
  return {
    requests: 0, byStatus: {}, charged: 0, notModified: 0, writes: 0, byPath: {}, byToken: {},
    resets: 0, hangs: 0, maxConcurrent: 0, inFlight: 0,
  };
}

function bump(record: Record<string | number, number>, key: string | number): void {
  record[key] = (record[key] ?? 0) + 1;
}

/** The counters, the request log and the waiters of one fake GitHub. */
export class RequestCounters {
  #counters: FakeGitHubStats = emptyStats();
  #log: RequestLogEntry[] = [];
  #waiters: Waiter[] = [];

  /** A request arrived (counted before any latency, pause or fault). */
  received(fullPath: string, tokenLabel: string): void {
    const counters = this.#counters;
    counters.requests += 1;
    counters.inFlight += 1;
    counters.maxConcurrent = Math.max(counters.maxConcurrent, counters.inFlight);
    bump(counters.byPath, fullPath);
    bump(counters.byToken, tokenLabel);
    this.#notify();
  }

  /** A request's response closed (answered, reset, or cut by close()). */
  closed(): void {
    this.#counters.inFlight = Math.max(0, this.#counters.inFlight - 1);
    this.#notify();
  }

  /** An answer (status 0: a reset or a hang) goes into the log and `byStatus`. */
  record(entry: RequestLogEntry): void {
    if (entry.status !== 0) bump(this.#counters.byStatus, entry.status);
    this.#log.push(entry);
    if (this.#log.length > REQUEST_LOG_LIMIT * 1.1) this.#log = this.#log.slice(-REQUEST_LOG_LIMIT);
    this.#notify();
  }

  countCharge(): void {
    this.#counters.charged += 1;
  }

  countNotModified(): void {
    this.#counters.notModified += 1;
  }

  countWrite(): void {
    this.#counters.writes += 1;
  }

  countReset(): void {
    this.#counters.resets += 1;
  }

  countHang(): void {
    this.#counters.hangs += 1;
  }

  /** A snapshot (safe to keep and compare with a later one). */
  snapshot(): FakeGitHubStats {
    return structuredClone(this.#counters);
  }

  /** The last 10,000 answers, oldest first (a copy). */
  logCopy(): RequestLogEntry[] {
    return [...this.#log];
  }

  /** Zero the counters and empty the log; `inFlight` keeps counting the requests still open. */
  reset(): void {
    const inFlight = this.#counters.inFlight;
    this.#counters = emptyStats();
    this.#counters.inFlight = inFlight;
    this.#counters.maxConcurrent = inFlight;
    this.#log = [];
  }

  /** Resolve once `predicate(stats)` holds (checked now and after every change). */
  waitFor(predicate: (stats: Readonly<FakeGitHubStats>) => boolean): Promise<void> {
    if (predicate(this.#counters)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ predicate, resolve }));
  }

  /** Release every waiter, held or not (the server is closing). */
  releaseAll(): void {
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters = [];
  }

  #notify(): void {
    if (this.#waiters.length === 0) return;
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiting) {
      if (waiter.predicate(this.#counters)) waiter.resolve();
      else this.#waiters.push(waiter);
    }
  }
}
