import { expect } from 'chai';
import { RateLimitTracker } from '../src/github/rate-limits.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

/** A tracker on a clock the spec moves by hand. */
function trackerAt(start = T0): { tracker: RateLimitTracker; clock: { now: number } } {
  const clock = { now: start };
  return { tracker: new RateLimitTracker(() => clock.now), clock };
}

/** x-ratelimit-* headers as GitHub sends them (reset in epoch seconds). */
function limitHeaders(remaining: number, resetAt: number, resource = 'core'): Record<string, string> {
  return {
    'x-ratelimit-limit': '5000',
    'x-ratelimit-remaining': String(remaining),
    'x-ratelimit-used': String(5000 - remaining),
    'x-ratelimit-reset': String(Math.floor(resetAt / 1000)),
    'x-ratelimit-resource': resource,
  };
}

describe('RateLimitTracker', () => {
  describe('isRateLimited', () => {
    it('treats every 429 as a rate-limit refusal', () => {
      expect(RateLimitTracker.isRateLimited(429, {}, undefined)).to.equal(true);
    });

    it('treats a 403 as a rate-limit refusal only with retry-after, remaining 0 or a rate-limit message', () => {
      expect(RateLimitTracker.isRateLimited(403, { 'retry-after': '30' }, undefined)).to.equal(true);
      expect(RateLimitTracker.isRateLimited(403, { 'x-ratelimit-remaining': '0' }, undefined)).to.equal(true);
      expect(RateLimitTracker.isRateLimited(403, {}, 'You have exceeded a secondary rate limit.')).to.equal(true);
      expect(RateLimitTracker.isRateLimited(403, { 'x-ratelimit-remaining': '12' }, 'Resource not accessible by integration')).to.equal(false);
    });

    it('never treats other statuses as rate-limit refusals, whatever their headers say', () => {
      for (const status of [200, 304, 401, 404, 500, 503]) {
        expect(RateLimitTracker.isRateLimited(status, { 'retry-after': '30', 'x-ratelimit-remaining': '0' }, 'rate limit'), String(status)).to.equal(false);
      }
    });
  });

  it('does not block a scope it has never heard of, nor one whose responses are fine', () => {
    const { tracker } = trackerAt();
    expect(tracker.blockedUntil('scope-a')).to.equal(0);
    tracker.record('scope-a', 200, limitHeaders(4999, T0 + 3_600_000));
    expect(tracker.blockedUntil('scope-a')).to.equal(0);
  });

  it('honours retry-after (seconds) on a refusal', () => {
    const { tracker, clock } = trackerAt();
    tracker.record('scope-a', 429, { 'retry-after': '30' });
    expect(tracker.blockedUntil('scope-a')).to.equal(T0 + 30_000);
    clock.now = T0 + 29_999;
    expect(tracker.blockedUntil('scope-a')).to.equal(T0 + 30_000);
    clock.now = T0 + 30_000;
    expect(tracker.blockedUntil('scope-a')).to.equal(0);
  });

  it('prefers retry-after to the window reset when GitHub sends both', () => {
    const { tracker } = trackerAt();
    tracker.record('scope-a', 403, { ...limitHeaders(0, T0 + 40 * MINUTE), 'retry-after': '5' });
    expect(tracker.blockedUntil('scope-a')).to.equal(T0 + 5_000);
  });

  it('blocks until x-ratelimit-reset when remaining is 0 and no retry-after is given', () => {
    const { tracker, clock } = trackerAt();
    const reset = T0 + 17 * MINUTE;
    tracker.record('scope-a', 403, limitHeaders(0, reset));
    expect(tracker.blockedUntil('scope-a')).to.equal(reset);
    clock.now = reset - 1;
    expect(tracker.blockedUntil('scope-a')).to.equal(reset);
    clock.now = reset;
    expect(tracker.blockedUntil('scope-a')).to.equal(0);
  });

  it('backs off a minute on a secondary limit without a hint, doubling while it repeats', () => {
    const { tracker, clock } = trackerAt();
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      tracker.record('scope-a', 403, {}, 'You have exceeded a secondary rate limit');
      const until = tracker.blockedUntil('scope-a');
      waits.push(until - clock.now);
      clock.now = until; // the block has passed; the next request is refused again
    }
    expect(waits).to.deep.equal([1, 2, 4, 8].map((m) => m * MINUTE));
  });

  it('caps the secondary-limit backoff at 64 minutes', () => {
    const { tracker, clock } = trackerAt();
    let wait = 0;
    for (let i = 0; i < 10; i++) {
      tracker.record('scope-a', 429, {});
      const until = tracker.blockedUntil('scope-a');
      wait = until - clock.now;
      clock.now = until;
    }
    expect(wait).to.equal(64 * MINUTE);
  });

  it('starts the backoff over after a successful response', () => {
    const { tracker, clock } = trackerAt();
    tracker.record('scope-a', 429, {});
    clock.now = tracker.blockedUntil('scope-a');
    tracker.record('scope-a', 429, {});
    clock.now = tracker.blockedUntil('scope-a');
    tracker.record('scope-a', 200, {});
    tracker.record('scope-a', 429, {});
    expect(tracker.blockedUntil('scope-a') - clock.now).to.equal(MINUTE);
  });

  it('keeps the backoff growing across other errors that are not rate limits', () => {
    const { tracker, clock } = trackerAt();
    tracker.record('scope-a', 429, {});
    clock.now = tracker.blockedUntil('scope-a');
    tracker.record('scope-a', 404, {}, 'Not Found');
    tracker.record('scope-a', 429, {});
    expect(tracker.blockedUntil('scope-a') - clock.now).to.equal(2 * MINUTE);
  });

  it('never shortens a block: a later, shorter retry-after leaves the longer one in place', () => {
    const { tracker } = trackerAt();
    tracker.record('scope-a', 429, { 'retry-after': '120' });
    tracker.record('scope-a', 429, { 'retry-after': '10' });
    expect(tracker.blockedUntil('scope-a')).to.equal(T0 + 120_000);
  });

  it('keeps each key apart: a spent search window does not block the same token\'s REST calls', () => {
    const { tracker } = trackerAt();
    const reset = T0 + MINUTE;
    tracker.record('scope-a/search', 403, limitHeaders(0, reset, 'search'));
    expect(tracker.blockedUntil('scope-a/search')).to.equal(reset);
    expect(tracker.blockedUntil('scope-a')).to.equal(0);
    expect(tracker.blockedUntil('scope-b/search')).to.equal(0);
  });

  it('snapshots what GitHub last said per key, with the reset in ms and no internal counters', () => {
    const { tracker, clock } = trackerAt();
    const reset = T0 + 30 * MINUTE;
    tracker.record('scope-a', 200, limitHeaders(4200, reset));
    tracker.record('scope-a/search', 429, { 'retry-after': '60' });
    const snapshot = tracker.snapshot();
    expect(snapshot['scope-a']).to.deep.equal({
      limit: 5000, remaining: 4200, used: 800, reset: Math.floor(reset / 1000) * 1000, resource: 'core', blockedUntil: 0, limited: 0,
    });
    expect(snapshot['scope-a/search']).to.include({ blockedUntil: T0 + 60_000, limited: 1 });
    expect(snapshot['scope-a/search']).to.not.have.property('backoffs');
    clock.now = T0 + 60_000;
    expect(tracker.snapshot()['scope-a/search']!.blockedUntil).to.equal(0);
  });

  it('keeps the last known limits when a response carries no x-ratelimit headers', () => {
    const { tracker } = trackerAt();
    tracker.record('scope-a', 200, limitHeaders(10, T0 + MINUTE));
    tracker.record('scope-a', 304, {});
    expect(tracker.snapshot()['scope-a']!.remaining).to.equal(10);
  });
});
