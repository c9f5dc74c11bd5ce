import { createHmac } from 'node:crypto';
import { ImplementationChoice, sodiumWith, type Implementation } from './sodium.js';

/**
 * HMAC-SHA256 (RFC 2104) for the scope proofs of every `get` (scope-proof.ts).
 *
 * Guarantee: `hmacSha256(key, message)` returns the same 32 bytes as node:crypto's
 * `createHmac('sha256', key).update(message).digest()`, for every key and message. When the optional
 * `sodium-native` loads, it is computed from libsodium's SHA-256 with the key's two padded blocks absorbed once
 * per key object (kept in a WeakMap, so they go with the key; a caller caches its key per scope already), checked
 * against a copy of the key's bytes on each use, so a key changed in place gets new states: one state copy, update
 * and final for the inner hash and again for the outer. Otherwise it is `createHmac`.
 *
 * Why: each peer hit makes a proof on the asker and checks it on the owner. `createHmac` builds an OpenSSL 3 MAC
 * context per call (a provider lookup, the key schedule); in the flow of a peer hit that was 13 to 18 µs per proof
 * on this machine against about 3 µs in a loop, and the key's padded blocks are the same for every proof of a
 * scope. docs/benchmarks.md has the rows ("P2P codecs", crypto section; "Peer hits, one harness for two builds").
 *
 * `PrefixedHmac(key, prefix).mac(rest)` returns the same 32 bytes as `hmacSha256(key, prefix ‖ rest)`. With
 * libsodium the prefix is absorbed once, after the key's inner block, into a state of its own (made on the first
 * MAC, made again if the key's bytes changed in place), so each MAC hashes `rest` alone: a get's proof hashes its
 * id and key, not again the stream's challenge and the two peer ids (scope-proof.ts). Otherwise it is `createHmac`
 * over both parts.
 */

const BLOCK_BYTES = 64;
const DIGEST_BYTES = 32;

/** The part of sodium-native this module calls. */
interface SodiumSha256 {
  crypto_hash_sha256_STATEBYTES: number;
  crypto_hash_sha256(out: Uint8Array, input: Uint8Array): void;
  crypto_hash_sha256_init(state: Uint8Array): void;
  crypto_hash_sha256_update(state: Uint8Array, input: Uint8Array): void;
  crypto_hash_sha256_final(state: Uint8Array, out: Uint8Array): void;
}

let sodium: SodiumSha256 | null | undefined;

function loaded(): SodiumSha256 | null {
  if (sodium === undefined) {
    sodium = sodiumWith<SodiumSha256>('crypto_hash_sha256_init', 'crypto_hash_sha256_update', 'crypto_hash_sha256_final', 'crypto_hash_sha256',
      'crypto_hash_sha256_STATEBYTES');
  }
  return sodium;
}

/** A key's SHA-256 states after its inner and outer padded blocks, and scratch space for one computation. */
interface KeyStates {
  /** A copy of the key's bytes when the states were made. */
  readonly key: Buffer;
  readonly inner: Uint8Array;
  readonly outer: Uint8Array;
  readonly work: Uint8Array;
  readonly innerDigest: Uint8Array;
}

const statesByKey = new WeakMap<Uint8Array, KeyStates>();

function statesOf(lib: SodiumSha256, key: Uint8Array): KeyStates {
  let states = statesByKey.get(key);
  if (states !== undefined && states.key.equals(key)) return states;
  const block = new Uint8Array(BLOCK_BYTES);
  if (key.byteLength > BLOCK_BYTES) lib.crypto_hash_sha256(block.subarray(0, DIGEST_BYTES), key);
  else block.set(key);
  const padded = new Uint8Array(BLOCK_BYTES);
  const absorb = (pad: number): Uint8Array => {
    for (let i = 0; i < BLOCK_BYTES; i++) padded[i] = block[i]! ^ pad;
    const state = new Uint8Array(lib.crypto_hash_sha256_STATEBYTES);
    lib.crypto_hash_sha256_init(state);
    lib.crypto_hash_sha256_update(state, padded);
    return state;
  };
  states = { key: Buffer.from(key), inner: absorb(0x36), outer: absorb(0x5c), work: new Uint8Array(lib.crypto_hash_sha256_STATEBYTES), innerDigest: new Uint8Array(DIGEST_BYTES) };
  block.fill(0);
  padded.fill(0);
  statesByKey.set(key, states);
  return states;
}

/** Which implementation runs: 'auto' (libsodium when it loads), or one of them (tests, benchmarks). */
export type HmacImplementation = Implementation;

const choice = new ImplementationChoice(() => loaded() !== null);

/** Forces an implementation for this process (tests and benchmarks; 'sodium' throws where it does not load). Returns the previous one. */
export function useHmacImplementation(implementation: HmacImplementation): HmacImplementation {
  return choice.use(implementation);
}

/** HMAC-SHA256 of `message` under `key`: 32 bytes of a fresh Uint8Array. */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  const lib = choice.current === 'node' ? null : loaded();
  if (lib === null) return new Uint8Array(createHmac('sha256', key).update(message).digest());
  const states = statesOf(lib, key);
  return finish(lib, states, states.inner, message);
}

/** The HMAC from an inner state (the key's, or one that absorbed more after it): `message` into it, then the outer hash. */
function finish(lib: SodiumSha256, { outer, work, innerDigest }: KeyStates, inner: Uint8Array, message: Uint8Array): Uint8Array {
  work.set(inner);
  lib.crypto_hash_sha256_update(work, message);
  lib.crypto_hash_sha256_final(work, innerDigest);
  work.set(outer);
  lib.crypto_hash_sha256_update(work, innerDigest);
  const out = new Uint8Array(DIGEST_BYTES);
  lib.crypto_hash_sha256_final(work, out);
  return out;
}

/** HMAC-SHA256 of messages that all begin with the same bytes (see the module comment). */
export class PrefixedHmac {
  readonly #key: Uint8Array;
  readonly #prefix: Buffer;
  /** The key's inner state after the prefix, and the key's states it was made from (new ones: the key changed). */
  #state: { readonly from: KeyStates; readonly inner: Uint8Array } | undefined;

  /** `prefix` is copied: changing it afterwards changes no MAC. */
  constructor(key: Uint8Array, prefix: Uint8Array) {
    this.#key = key;
    this.#prefix = Buffer.from(prefix);
  }

  /** hmacSha256(key, prefix ‖ rest): 32 bytes of a fresh Uint8Array. */
  mac(rest: Uint8Array): Uint8Array {
    const lib = choice.current === 'node' ? null : loaded();
    if (lib === null) return new Uint8Array(createHmac('sha256', this.#key).update(this.#prefix).update(rest).digest());
    const states = statesOf(lib, this.#key);
    let state = this.#state;
    if (state === undefined || state.from !== states) {
      const inner = new Uint8Array(lib.crypto_hash_sha256_STATEBYTES);
      inner.set(states.inner);
      lib.crypto_hash_sha256_update(inner, this.#prefix);
      state = { from: states, inner };
      this.#state = state;
    }
    return finish(lib, states, state.inner, rest);
  }
}
