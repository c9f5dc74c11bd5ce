/**
 * PromiseLock: a FIFO mutual-exclusion lock for async code. `acquire()` resolves with a release function
 * once every earlier holder has released, so holders run one at a time in call order. `run(fn)` wraps
 * acquire/release around a section, releasing whether it returns or throws. Never hold it while awaiting
 * something that itself needs the lock.
 *
 * Waiters are kept as resolver functions in an array queue (one promise per waiter, no promise chain), so
 * ten thousand waiters cost little more than ten thousand resolved promises.
 */
export class PromiseLock {
  #held = false;
  readonly #waiters: Array<() => void> = [];
  #head = 0;

  /** Resolves with a release function when the lock is yours. Call release exactly once. */
  acquire(): Promise<() => void> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve) => {
      this.#waiters.push(() => resolve(this.#releaser()));
    });
  }

  /** Runs `section` holding the lock. */
  async run<T>(section: () => Promise<T> | T): Promise<T> {
    const release = await this.acquire();
    try {
      return await section();
    } finally {
      release();
    }
  }

  /** Whether a holder has the lock now. */
  get held(): boolean {
    return this.#held;
  }

  /** Waiters queued behind the holder. */
  get queued(): number {
    return this.#waiters.length - this.#head;
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (this.#head < this.#waiters.length) {
        const next = this.#waiters[this.#head]!;
        this.#waiters[this.#head++] = undefined as never;
        if (this.#head === this.#waiters.length) {
          this.#waiters.length = 0;
          this.#head = 0;
        }
        next(); // the lock passes straight to the next waiter: #held stays true
      } else {
        this.#held = false;
      }
    };
  }
}
