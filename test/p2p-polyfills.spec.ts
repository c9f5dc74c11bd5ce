import '../src/polyfills.js';
import { expect } from 'chai';

describe('polyfills', () => {
  it('provide Promise.withResolvers (libp2p 3 calls it; Node 20 lacks it), not enumerable like the built-in', async () => {
    const PromiseWithResolvers = Promise as unknown as { withResolvers: <T>() => { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } };
    expect(PromiseWithResolvers.withResolvers).to.be.a('function');
    // Called on Promise, as callers do: Node 22's built-in throws "called on non-object" when called unbound.
    const withResolvers = <T>() => PromiseWithResolvers.withResolvers<T>();
    expect(Object.keys(Promise)).to.not.include('withResolvers');
    const resolved = withResolvers<number>();
    resolved.resolve(42);
    expect(await resolved.promise).to.equal(42);
    const rejected = withResolvers<number>();
    rejected.reject(new Error('no'));
    let error: unknown;
    try {
      await rejected.promise;
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(Error).with.property('message', 'no');
  });
});
