/**
 * Clocks moved by hand, for anything that takes `now: () => number`: TTLs, rate-limit windows and recency
 * then never depend on how fast the machine is or on waiting. Time moves only when the caller says so.
 * Both hand out `now` as a bound function, safe to pass as an option or to install as `Date.now`.
 */

/** A clock that stands still until advanced; for specs. */
export class FakeClock {
  constructor(public ms = Date.UTC(2026, 0, 1)) {}
  readonly now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/**
 * Real time plus an offset: runs like the wall clock, and jumps ahead when told (an idle period in a demo
 * or benchmark without the wait). It reads the `Date.now` there was when it was made, so it can itself be
 * installed as `Date.now`.
 */
export class OffsetClock {
  offsetMs = 0;
  readonly #realNow = Date.now.bind(Date);
  readonly now = (): number => this.#realNow() + this.offsetMs;
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
