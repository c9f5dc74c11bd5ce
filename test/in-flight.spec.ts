import { expect } from 'chai';
import { InFlight } from '../src/in-flight.js';

/** Timers pending in this process (Node's own accounting), to show idle() leaves none behind. */
function pendingTimeouts(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
}

/**
 * pendingTimeouts() once the test runner has armed its own timeout for the running test (it does so after
 * the test body's first synchronous run), so later counts differ only by the unit's timers.
 */
async function baselineTimeouts(): Promise<number> {
  await new Promise((resolve) => setImmediate(resolve));
  return pendingTimeouts();
}

describe('InFlight', () => {
  it('counts operations entered and not yet left', () => {
    const inFlight = new InFlight();
    inFlight.enter();
    inFlight.enter();
    expect(inFlight.count).to.equal(2);
    inFlight.leave();
    expect(inFlight.count).to.equal(1);
  });

  it('never counts below zero', () => {
    const inFlight = new InFlight();
    inFlight.leave();
    expect(inFlight.count).to.equal(0);
    inFlight.enter();
    expect(inFlight.count).to.equal(1);
  });

  it('idle resolves true at once when nothing is in flight', async () => {
    const inFlight = new InFlight();
    const started = Date.now();
    expect(await inFlight.idle(5_000)).to.equal(true);
    expect(Date.now() - started).to.be.lessThan(1_000);
  });

  it('idle resolves true when the count reaches 0, not before', async () => {
    const inFlight = new InFlight();
    inFlight.enter();
    inFlight.enter();
    let result: boolean | undefined;
    const idle = inFlight.idle(10_000).then((value) => {
      result = value;
    });
    inFlight.leave();
    await new Promise((resolve) => setImmediate(resolve));
    expect(result).to.equal(undefined);
    inFlight.leave();
    await idle;
    expect(result).to.equal(true);
  });

  it('wakes every waiter when the count reaches 0', async () => {
    const inFlight = new InFlight();
    inFlight.enter();
    const waiters = [inFlight.idle(10_000), inFlight.idle(10_000), inFlight.idle(10_000)];
    inFlight.leave();
    expect(await Promise.all(waiters)).to.deep.equal([true, true, true]);
  });

  it('idle resolves false after the timeout when work is still in flight', async () => {
    const inFlight = new InFlight();
    inFlight.enter();
    const started = Date.now();
    expect(await inFlight.idle(50)).to.equal(false);
    expect(Date.now() - started).to.be.at.least(40);
    expect(inFlight.count).to.equal(1);
  });

  it('leaves no timer behind when the work finishes before the timeout', async () => {
    const before = await baselineTimeouts();
    const inFlight = new InFlight();
    inFlight.enter();
    const idle = inFlight.idle(60_000);
    expect(pendingTimeouts()).to.equal(before + 1);
    inFlight.leave();
    expect(await idle).to.equal(true);
    expect(pendingTimeouts()).to.equal(before);
  });

  it('leaves no timer behind when it times out', async () => {
    const before = await baselineTimeouts();
    const inFlight = new InFlight();
    inFlight.enter();
    expect(await inFlight.idle(20)).to.equal(false);
    expect(pendingTimeouts()).to.equal(before);
  });
});
