/**
 * A clock moved by hand, for anything that takes `now: () => number`: TTLs, rate-limit windows and recency
 * then never depend on how fast the machine is. Time moves only when the caller says so.
 */

/** A controllable clock; `now` is a bound function, safe to pass as an option. */
export class FakeClock {
  constructor(public ms = Date.UTC(2026, 0, 1)) {}
  readonly now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}
