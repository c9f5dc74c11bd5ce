import { CacheCreationError, CacheError } from '../src/errors.js';
import { PromiseLock } from './promise-lock.js';

/** What the provider needs of the instances it owns. */
export interface Closeable {
  readonly closed: boolean;
  close(): Promise<void>;
}

/** Counters that let specs and operators prove "one instance". */
export interface SingletonProviderStats {
  /** Factory calls (successful or not). */
  factoryCalls: number;
  /** Instances created successfully. */
  created: number;
  /** Instances the provider closed (replaced by configure, or shut down). */
  closed: number;
  /** Creations that failed. */
  failures: number;
  /** Whether an open instance is published right now. */
  hasInstance: boolean;
}

const SUPERSEDED = Symbol('superseded');

/**
 * SingletonProvider: one instance of T at a time, created by an async factory behind a double-checked
 * promise lock.
 *
 * Guarantees:
 * - First check without the lock: with an open instance published, `current` returns it synchronously and
 *   `get()` returns an already-resolved promise of it; no lock is taken.
 * - Second check under the lock: of any number of concurrent first callers, one runs the factory and all the
 *   others receive its instance (or its error). A failed creation is not remembered: the callers that waited
 *   for that attempt get its error, the next call tries again.
 * - `configure(options)` takes the same lock, after a creation in flight; it closes the old instance (and
 *   awaits that) before the factory creates the new one. Calls apply in call order; a configure overtaken by
 *   a later one skips its own creation and answers with the later one's instance. A `get()` that starts after
 *   a `configure()` call never returns the instance that configure replaces.
 * - No caller is ever handed an instance that the provider has already begun to close.
 */
export class SingletonProvider<T extends Closeable, O> {
  #factory: (options: O) => Promise<T>;
  #options: O;
  readonly #lock = new PromiseLock();

  /** Fast path: the published instance and a resolved promise of it (awaiting it costs one tick). */
  #instance: T | undefined;
  #resolved: Promise<T> | undefined;

  /** Instances taken off the fast path, waiting to be closed under the lock. */
  readonly #retiring = new Set<T>();
  /** Bumped by every configure call; a configure whose number is no longer the latest is superseded. */
  #configureSeq = 0;
  /** The latest configure's outcome while it is queued or running. */
  #latestConfigure: Promise<T> | undefined;

  /** Creation attempts started, the one running (0 if none), and the last failure. */
  #attempts = 0;
  #running = 0;
  #lastFailure: { attempt: number; error: Error } | undefined;

  /** The slow path cold get() callers share while it runs; dropped by configure so later callers see the new one. */
  #sharedSlow: Promise<T> | undefined;

  readonly #stats = { factoryCalls: 0, created: 0, closed: 0, failures: 0 };

  /** True from shutdown() until an instance is published again. */
  #shutDown = false;

  constructor(factory: (options: O) => Promise<T>, options: O) {
    this.#factory = factory;
    this.#options = options;
  }

  /** The open instance, or undefined. Synchronous, lock-free. */
  get current(): T | undefined {
    const instance = this.#instance;
    return instance !== undefined && !instance.closed ? instance : undefined;
  }

  /** Whether shutdown() closed the instance and none has been created since (callers may refuse to re-create one). */
  get shutDown(): boolean {
    return this.#shutDown && this.#instance === undefined;
  }

  /** The options the next creation uses (the last configure's, or the initial ones). */
  get options(): O {
    return this.#options;
  }

  /** The instance, created on first call. */
  get(): Promise<T> {
    const instance = this.#instance; // first check: no lock
    if (instance !== undefined && !instance.closed) return this.#resolved!;
    // Concurrent cold callers share one trip through the lock: they would all find the same answer there.
    let shared = this.#sharedSlow;
    if (shared === undefined) {
      shared = this.#getSlow();
      this.#sharedSlow = shared;
      const clear = (): void => {
        if (this.#sharedSlow === shared) this.#sharedSlow = undefined;
      };
      shared.then(clear, clear);
    }
    return shared;
  }

  /**
   * Like get(), but the options are used if this call is the one that creates the instance.
   * Returns `{ instance, created }` so callers can tell whether their options were applied.
   */
  async getWith(options: O): Promise<{ instance: T; applied: boolean }> {
    const instance = this.current;
    if (instance !== undefined) return { instance, applied: false };
    let applied = false;
    const result = await this.#getSlow(() => {
      this.#options = options;
      applied = true;
    });
    return { instance: result, applied };
  }

  /** Replaces the instance: closes the old one, then creates one with `options`. */
  configure(options: O): Promise<T> {
    const seq = ++this.#configureSeq;
    this.#retire(); // a get() starting from now on must not see the old instance
    const outcome = (async (): Promise<T> => {
      const result = await this.#lock.run(async (): Promise<T | typeof SUPERSEDED> => {
        if (seq !== this.#configureSeq) return SUPERSEDED; // a later configure will apply its own options
        this.#retire();
        await this.#closeRetiring();
        this.#options = options;
        const created = await this.#create();
        if (seq !== this.#configureSeq) {
          this.#retiring.add(created); // overtaken while creating: the later configure closes it
          return SUPERSEDED;
        }
        this.#publish(created);
        return created;
      });
      if (result === SUPERSEDED) return this.#latestConfigure ?? this.get();
      return result;
    })();
    this.#latestConfigure = outcome;
    const clear = (): void => {
      if (this.#configureSeq === seq) this.#latestConfigure = undefined;
    };
    outcome.then(clear, clear);
    return outcome;
  }

  /** Closes and forgets the instance (under the lock); the next get() creates a new one. */
  async shutdown(): Promise<void> {
    this.#shutDown = true;
    this.#retire();
    await this.#lock.run(async () => {
      this.#retire();
      await this.#closeRetiring();
    });
  }

  /**
   * Sets the options of the first creation, if nothing exists yet and no configure is pending; otherwise
   * ignored. Returns whether they were taken.
   */
  preferOptions(options: O): boolean {
    if (this.#instance !== undefined || this.#latestConfigure !== undefined || this.#running !== 0) return false;
    this.#options = options;
    return true;
  }

  /** Replaces the factory (tests, or a subclass of the instance type). Takes effect at the next creation. */
  useFactory(factory: (options: O) => Promise<T>): void {
    this.#factory = factory;
  }

  stats(): SingletonProviderStats {
    return { ...this.#stats, hasInstance: this.current !== undefined };
  }

  async #getSlow(beforeCreate?: () => void): Promise<T> {
    const arrival = this.#attempts;
    const runningAtArrival = this.#running;
    for (;;) {
      const pending = this.#latestConfigure;
      if (pending !== undefined) return pending; // a configure is queued: its instance is the answer
      const release = await this.#lock.acquire();
      const published = this.current; // second check, under the lock; synchronous in the common case
      if (published !== undefined) {
        release();
        return published;
      }
      let result: T | typeof SUPERSEDED;
      try {
        result = await this.#underLock(arrival, runningAtArrival, beforeCreate);
      } finally {
        release();
      }
      if (result !== SUPERSEDED) return result;
    }
  }

  /** The second check and, if still needed, the creation. Runs holding the lock. */
  async #underLock(arrival: number, runningAtArrival: number, beforeCreate: (() => void) | undefined): Promise<T | typeof SUPERSEDED> {
    const instance = this.current; // second check: under the lock
    if (instance !== undefined) return instance;
    if (this.#latestConfigure !== undefined) return SUPERSEDED;
    const failure = this.#lastFailure;
    // Waiters of an attempt share its outcome: only a call arriving after it failed tries again.
    if (failure !== undefined && (failure.attempt > arrival || failure.attempt === runningAtArrival)) throw failure.error;
    await this.#closeRetiring();
    beforeCreate?.();
    const created = await this.#create();
    if (this.#latestConfigure !== undefined) {
      this.#retiring.add(created); // configure was called meanwhile: it closes this one
      return SUPERSEDED;
    }
    this.#publish(created);
    return created;
  }

  async #create(): Promise<T> {
    const attempt = ++this.#attempts;
    this.#running = attempt;
    this.#stats.factoryCalls++;
    try {
      const instance = await this.#factory(this.#options);
      this.#stats.created++;
      this.#lastFailure = undefined;
      return instance;
    } catch (err) {
      this.#stats.failures++;
      const error = err instanceof CacheError && err.code === 'ERR_CACHE_CONFIG' ? err : new CacheCreationError(err);
      this.#lastFailure = { attempt, error };
      throw error;
    } finally {
      this.#running = 0;
    }
  }

  #publish(instance: T): void {
    this.#shutDown = false;
    this.#instance = instance;
    this.#resolved = Promise.resolve(instance);
  }

  #retire(): void {
    this.#sharedSlow = undefined;
    const instance = this.#instance;
    if (instance !== undefined) this.#retiring.add(instance);
    this.#instance = undefined;
    this.#resolved = undefined;
  }

  async #closeRetiring(): Promise<void> {
    const instances = [...this.#retiring];
    this.#retiring.clear();
    for (const instance of instances) {
      if (!instance.closed) this.#stats.closed++;
      await instance.close();
    }
  }
}
