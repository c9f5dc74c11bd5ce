/**
 * Singleflight: at most one execution of `fn` is in flight for a given key at a time. Callers that arrive
 * while it runs join it and get the same result (or the same error); other keys never wait for it.
 * After it settles the key is free again, so a failure is never remembered.
 * (After groupcache's singleflight.)
 */
export class Singleflight<T> {
  readonly #inFlight = new Map<string, Promise<T>>();

  /**
   * Runs `fn` for `key` unless a run is already in flight, in which case it joins that run.
   * `shared` is false for the caller that started the run and true for callers that joined it.
   */
  do(key: string, fn: () => Promise<T>): { promise: Promise<T>; shared: boolean } {
    const running = this.#inFlight.get(key);
    if (running !== undefined) return { promise: running, shared: true };
    // The run is stored before fn starts (fn starts in this same turn): a fn that throws at once still frees the key.
    let resolve!: (value: T | PromiseLike<T>) => void;
    let reject!: (reason: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#inFlight.set(key, promise);
    const free = () => this.#inFlight.delete(key);
    try {
      fn().then((value) => {
        free();
        resolve(value);
      }, (err: unknown) => {
        free();
        reject(err);
      });
    } catch (err) {
      free();
      reject(err);
    }
    return { promise, shared: false };
  }

  /** Keys with a run in flight. */
  get size(): number {
    return this.#inFlight.size;
  }
}
