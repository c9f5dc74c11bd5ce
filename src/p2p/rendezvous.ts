import { hash } from 'node:crypto';
import { ImplementationChoice, sodiumWith, type Implementation } from './sodium.js';

/**
 * The owner of a key among candidate peers, by highest-random-weight (rendezvous) hashing.
 *
 * Guarantee: every node that sees the same candidate set picks the same owner for a key (the choice depends
 * only on the key and the set, never on the order of the candidates). Keys spread evenly over the candidates,
 * and when a candidate leaves or joins, only the keys it owned (or comes to own) move: every other key keeps
 * its owner. Ties (never seen in practice) go to the smaller peer id.
 *
 * A key's weight for a peer is fmix64(K xor P), compared as unsigned 64-bit integers: K is the first 8 bytes of
 * sha256(key) and P the first 8 bytes of sha256(peerId), each read big-endian, and fmix64 is MurmurHash3's 64-bit
 * finalizer (a bijection whose every output bit depends on every input bit). So one SHA-256 per key, whatever
 * the number of candidates (a peer's P is computed once and kept), where protocol 1.4.0 hashed the key once per
 * candidate: 2.3 µs each, 150 µs per miss in a fleet of 64 (docs/p2p-protocol.md, "A fleet of 64 or 256").
 *
 * Pure and synchronous: no I/O; the only state is the memo of the peers' P, which changes no result.
 *
 * K is hashed by libsodium's SHA-256 when the optional `sodium-native` loads, else by node:crypto's `hash`: the
 * same digest. In the flow of a peer hit (the asker's first request of a key, its process just woken) choosing the
 * owner took 6.2–7.5 µs of the asker's turn with the one-shot `hash`, 5.3–6.0 with libsodium's (docs/benchmarks.md,
 * "The 1-in-flight cycle, stage by stage"); in a warm loop both hashes take under 1 µs.
 */

/** A 64-bit value as two unsigned 32-bit halves. */
interface U64 {
  hi: number;
  lo: number;
}

interface SodiumSha256 {
  crypto_hash_sha256(out: Uint8Array, input: Uint8Array): void;
}

let sodium: SodiumSha256 | null | undefined;

function loaded(): SodiumSha256 | null {
  if (sodium === undefined) sodium = sodiumWith<SodiumSha256>('crypto_hash_sha256');
  return sodium;
}

const choice = new ImplementationChoice(() => loaded() !== null);

/** Forces the SHA-256 implementation for this process (tests and benchmarks); returns the previous one. */
export function useRendezvousHashImplementation(implementation: Implementation): Implementation {
  return choice.use(implementation);
}

/** libsodium's digest lands here (read at once, never handed out). */
const digestOut = Buffer.alloc(32);

/** The first 8 bytes of sha256(text), big-endian. */
function sha256Prefix(text: string): U64 {
  const lib = choice.current === 'node' ? null : loaded();
  let digest: Buffer = digestOut;
  if (lib === null) digest = hash('sha256', text, 'buffer');
  else lib.crypto_hash_sha256(digestOut, Buffer.from(text, 'utf8'));
  return { hi: digest.readUInt32BE(0), lo: digest.readUInt32BE(4) };
}

/** P of each peer id seen (a fleet has few); emptied when it grows past MAX_PEER_MEMO (ids are never secret). */
const peerMemo = new Map<string, U64>();
const MAX_PEER_MEMO = 4096;

function peerPrefix(peerId: string): U64 {
  let p = peerMemo.get(peerId);
  if (p === undefined) {
    if (peerMemo.size >= MAX_PEER_MEMO) peerMemo.clear();
    p = sha256Prefix(peerId);
    peerMemo.set(peerId, p);
  }
  return p;
}

/** The 64-bit product of two unsigned 32-bit values, into `out` (exact: each partial product stays below 2^53). */
function mulHiLo(a: number, b: number, out: U64): void {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  out.lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  out.hi = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

const C1_HI = 0xff51afd7;
const C1_LO = 0xed558ccd;
const C2_HI = 0xc4ceb9fe;
const C2_LO = 0x1a85ec53;
const product: U64 = { hi: 0, lo: 0 };

/** h = h * c mod 2^64, in place. */
function mul64(h: U64, cHi: number, cLo: number): void {
  mulHiLo(h.lo, cLo, product);
  h.hi = (product.hi + Math.imul(h.hi, cLo) + Math.imul(h.lo, cHi)) >>> 0;
  h.lo = product.lo;
}

/** MurmurHash3's fmix64, in place: h ^= h >> 33; h *= C1; h ^= h >> 33; h *= C2; h ^= h >> 33. */
function fmix64(h: U64): void {
  h.lo = (h.lo ^ (h.hi >>> 1)) >>> 0;
  mul64(h, C1_HI, C1_LO);
  h.lo = (h.lo ^ (h.hi >>> 1)) >>> 0;
  mul64(h, C2_HI, C2_LO);
  h.lo = (h.lo ^ (h.hi >>> 1)) >>> 0;
}

function weightOf(k: U64, peerId: string, out: U64): void {
  const p = peerPrefix(peerId);
  out.hi = (k.hi ^ p.hi) >>> 0;
  out.lo = (k.lo ^ p.lo) >>> 0;
  fmix64(out);
}

/**
 * The weight of `key` for `peerId` as an unsigned 64-bit integer (see the module comment). Exported for tests,
 * benchmarks and other implementations of the protocol.
 */
export function rendezvousWeight(peerId: string, key: string): bigint {
  const w: U64 = { hi: 0, lo: 0 };
  weightOf(sha256Prefix(key), peerId, w);
  return (BigInt(w.hi) << 32n) | BigInt(w.lo);
}

/** The candidate that owns `key`, or undefined when there is no candidate. */
export function rendezvousOwner(key: string, candidates: Iterable<string>): string | undefined {
  let k: U64 | undefined;
  let best: string | undefined;
  let bestHi = 0;
  let bestLo = 0;
  const w: U64 = { hi: 0, lo: 0 };
  for (const candidate of candidates) {
    k ??= sha256Prefix(key);
    weightOf(k, candidate, w);
    const order = best === undefined ? 1 : w.hi !== bestHi ? w.hi - bestHi : w.lo - bestLo;
    if (order > 0 || (order === 0 && candidate < best!)) {
      best = candidate;
      bestHi = w.hi;
      bestLo = w.lo;
    }
  }
  return best;
}
