import { expect } from 'chai';
import { PromiseLock } from '../providers/promise-lock.js';

/** Lets every already-queued promise reaction run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('PromiseLock', () => {
  it('gives the lock at once when nobody holds it', async () => {
    const lock = new PromiseLock();
    expect(lock.held).to.equal(false);
    const release = await lock.acquire();
    expect(lock.held).to.equal(true);
    release();
    expect(lock.held).to.equal(false);
  });

  it('makes a second acquirer wait until the holder releases', async () => {
    const lock = new PromiseLock();
    const release = await lock.acquire();
    let acquired = false;
    const second = lock.acquire().then((releaseSecond) => {
      acquired = true;
      return releaseSecond;
    });
    await settle();
    expect(acquired).to.equal(false);
    expect(lock.queued).to.equal(1);
    release();
    const releaseSecond = await second;
    expect(acquired).to.equal(true);
    expect(lock.held).to.equal(true); // passed straight to the waiter, never free in between
    releaseSecond();
    expect(lock.held).to.equal(false);
  });

  it('grants waiters in the order they called acquire', async () => {
    const lock = new PromiseLock();
    const order: number[] = [];
    const release = await lock.acquire();
    const waiters = [1, 2, 3, 4, 5].map((n) => lock.acquire().then((r) => {
      order.push(n);
      r();
    }));
    expect(lock.queued).to.equal(5);
    release();
    await Promise.all(waiters);
    expect(order).to.deep.equal([1, 2, 3, 4, 5]);
    expect(lock.queued).to.equal(0);
    expect(lock.held).to.equal(false);
  });

  it('runs sections one at a time, never two overlapping', async () => {
    const lock = new PromiseLock();
    let inside = 0;
    let most = 0;
    const section = async () => {
      inside++;
      most = Math.max(most, inside);
      await settle();
      inside--;
    };
    await Promise.all(Array.from({ length: 20 }, () => lock.run(section)));
    expect(most).to.equal(1);
  });

  it('run returns the section\'s value', async () => {
    const lock = new PromiseLock();
    expect(await lock.run(() => 42)).to.equal(42);
    expect(await lock.run(async () => 'async')).to.equal('async');
  });

  it('run releases the lock when the section throws, and rethrows', async () => {
    const lock = new PromiseLock();
    const failure = new Error('section failed');
    let caught: unknown;
    await lock.run(() => {
      throw failure;
    }).catch((err: unknown) => {
      caught = err;
    });
    expect(caught).to.equal(failure);
    expect(lock.held).to.equal(false);
    expect(await lock.run(() => 'next')).to.equal('next');
  });

  it('ignores a second call of the same release function', async () => {
    const lock = new PromiseLock();
    const release = await lock.acquire();
    const second = lock.acquire();
    const third = lock.acquire();
    release();
    release(); // must not hand the lock on a second time
    const releaseSecond = await second;
    let thirdAcquired = false;
    void third.then(() => {
      thirdAcquired = true;
    });
    await settle();
    expect(thirdAcquired).to.equal(false);
    releaseSecond();
    (await third)();
    expect(lock.held).to.equal(false);
  });

  it('keeps working after its waiter queue drains and refills', async () => {
    const lock = new PromiseLock();
    for (let round = 0; round < 3; round++) {
      const order: number[] = [];
      await Promise.all([0, 1, 2].map((n) => lock.run(async () => {
        order.push(n);
        await settle();
      })));
      expect(order).to.deep.equal([0, 1, 2]);
      expect(lock.queued).to.equal(0);
      expect(lock.held).to.equal(false);
    }
  });
});
