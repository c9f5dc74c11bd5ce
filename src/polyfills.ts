/**
 * Runtime polyfills, loaded for their side effect before libp2p.
 *
 * Guarantee: after this module is evaluated, `Promise.withResolvers` exists. libp2p 3 (and its muxer and
 * encrypter) call it; Node 20 lacks it, and without it connections die with a misleading
 * `EncryptionFailedError`. The polyfill is installed only when the runtime has none (Node ≥ 22 keeps its own),
 * and it is not enumerable, like the built-in.
 *
 * Import it first (`import './polyfills.js'`) in every entry that may load libp2p: the package entry and
 * src/p2p/peer-network.ts both do.
 */

type WithResolvers = <T>() => { promise: Promise<T>; resolve: (value: T | PromiseLike<T>) => void; reject: (reason?: unknown) => void };

const promiseConstructor = Promise as unknown as { withResolvers?: WithResolvers };

if (typeof promiseConstructor.withResolvers !== 'function') {
  const withResolvers: WithResolvers = function withResolvers<T>() {
    let resolve!: (value: T | PromiseLike<T>) => void;
    let reject!: (reason?: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
  Object.defineProperty(Promise, 'withResolvers', { value: withResolvers, writable: true, configurable: true, enumerable: false });
}

export {};
