import { expect } from 'chai';
import { Singleflight } from '../src/cache/singleflight.js';

/** A promise with its settle functions outside, so a spec decides when a run ends. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (reason: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every already-queued promise reaction run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Singleflight', () => {
  it('runs fn once for callers that arrive while it runs, and they all get its result', async () => {
    const flight = new Singleflight<string>();
    const run = deferred<string>();
    let calls = 0;
    const fn = () => {
      calls++;
      return run.promise;
    };
    const first = flight.do('k', fn);
    const joiners = [flight.do('k', fn), flight.do('k', fn), flight.do('k', fn)];
    expect(calls).to.equal(1);
    expect(first.shared).to.equal(false);
    expect(joiners.map((j) => j.shared)).to.deep.equal([true, true, true]);
    run.resolve('answer');
    const results = await Promise.all([first.promise, ...joiners.map((j) => j.promise)]);
    expect(results).to.deep.equal(['answer', 'answer', 'answer', 'answer']);
    expect(calls).to.equal(1);
  });

  it('gives the same error to the caller that started the run and to every caller that joined it', async () => {
    const flight = new Singleflight<string>();
    const run = deferred<string>();
    const failure = new Error('upstream down');
    const first = flight.do('k', () => run.promise);
    const joiner = flight.do('k', () => Promise.resolve('never used'));
    run.reject(failure);
    const outcomes = await Promise.allSettled([first.promise, joiner.promise]);
    expect(outcomes.map((o) => o.status)).to.deep.equal(['rejected', 'rejected']);
    expect((outcomes[0] as PromiseRejectedResult).reason).to.equal(failure);
    expect((outcomes[1] as PromiseRejectedResult).reason).to.equal(failure);
  });

  it('runs other keys independently: they neither join nor wait for a run in flight', async () => {
    const flight = new Singleflight<string>();
    const slow = deferred<string>();
    const a = flight.do('a', () => slow.promise);
    let bCalls = 0;
    const b = flight.do('b', async () => {
      bCalls++;
      return 'b';
    });
    expect(b.shared).to.equal(false);
    expect(bCalls).to.equal(1);
    expect(await b.promise).to.equal('b');
    expect(flight.size).to.equal(1); // a is still in flight while b has finished
    slow.resolve('a');
    expect(await a.promise).to.equal('a');
  });

  it('frees the key once the run succeeds, so the next call runs fn again', async () => {
    const flight = new Singleflight<number>();
    let calls = 0;
    const fn = async () => ++calls;
    expect(await flight.do('k', fn).promise).to.equal(1);
    await settle();
    expect(flight.size).to.equal(0);
    const again = flight.do('k', fn);
    expect(again.shared).to.equal(false);
    expect(await again.promise).to.equal(2);
  });

  it('frees the key once the run fails, so a failure is never remembered', async () => {
    const flight = new Singleflight<string>();
    await flight.do('k', () => Promise.reject(new Error('first try fails'))).promise.catch(() => undefined);
    await settle();
    expect(flight.size).to.equal(0);
    const retry = flight.do('k', async () => 'second try works');
    expect(retry.shared).to.equal(false);
    expect(await retry.promise).to.equal('second try works');
  });

  // Failed before the fix: the run's `finally` deleted the key before do() stored it, so a run whose fn threw
  // at once stayed stored for good and every later caller joined its failure.
  it('frees the key when fn throws synchronously, and rejects with that error', async () => {
    const flight = new Singleflight<string>();
    const failure = new Error('thrown before any await');
    const run = flight.do('k', () => {
      throw failure;
    });
    let caught: unknown;
    await run.promise.catch((err: unknown) => {
      caught = err;
    });
    expect(caught).to.equal(failure);
    expect(flight.size).to.equal(0);
  });

  it('counts the keys with a run in flight', async () => {
    const flight = new Singleflight<string>();
    const a = deferred<string>();
    const b = deferred<string>();
    flight.do('a', () => a.promise);
    flight.do('b', () => b.promise);
    flight.do('a', () => a.promise);
    expect(flight.size).to.equal(2);
    a.resolve('a');
    b.resolve('b');
    await settle();
    expect(flight.size).to.equal(0);
  });
});
