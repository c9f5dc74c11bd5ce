import { hkdfSync, timingSafeEqual } from 'node:crypto';
import { hmacSha256, PrefixedHmac } from './hmac-sha256.js';

/**
 * Proofs that a peer holds a scope, i.e. knows the scope's entry key (which only holders of a token of that
 * scope can derive; for the anonymous scope, only fleet members).
 *
 * Guarantee: a peer that does not know a scope's entry key can neither make an owner serve it a key of that
 * scope (`get` proof) nor become a candidate owner of that scope for another node (`scopes` claim proof), so
 * it never sees the scope's cache keys or entries. Each proof is HMAC-SHA256, under a key derived from the
 * entry key, over a domain tag naming its direction, the verifier's random per-stream challenge, the peer id of
 * the prover and the peer id of the verifier (both as the noise handshake authenticated them; plus, for a `get`,
 * the request id and cache key): a proof is good for one stream, one purpose, one request, one direction and
 * one pair of peers. It is useless if replayed, relayed to a third peer (the ids differ) or reflected back to
 * its maker (prover and verifier swap). It reveals nothing about the entry key; the HMAC key is a separate HKDF
 * output, never the entry key itself.
 *
 * Cost: the part of a get's message that is the same for every get of one direction on one stream (the domain, the
 * challenge, the two peer ids) is hashed once per stream and scope (hmac-sha256.ts, PrefixedHmac), so each proof
 * made or checked hashes its request id and cache key only. The proofs are the same bytes either way.
 */

/** Who made a proof and who checks it: peer ids as the noise handshake authenticated them. */
export interface ProofParties {
  readonly prover: string;
  readonly verifier: string;
}

/** Bytes of a challenge (sent in `hello`) and of a proof. */
export const CHALLENGE_BYTES = 32;
export const PROOF_BYTES = 32;

const PROOF_SALT = Buffer.from('github-p2p-cache/scope-proof/v1', 'utf8');

/** The HMAC key of a scope's proofs, derived from its entry key. Pure: cache it per scope. */
export function proofKeyOf(entryKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', entryKey, PROOF_SALT, Buffer.from('proof', 'utf8'), 32));
}

/**
 * The message of a proof is `${domain}\0`, the challenge, then each part with its length as a 32-bit big-endian
 * integer before it (so that no two different part lists hash alike); strings as UTF-8: the prover, the verifier,
 * for a get its request id (a 64-bit big-endian part), and last the cache key or scope id. This is its first part,
 * the same for every proof of one direction on one stream, written into one buffer (strings straight into it).
 */
function messagePrefix(domain: string, challenge: Uint8Array, prover: string, verifier: string): Buffer {
  const proverBytes = Buffer.byteLength(prover, 'utf8');
  const verifierBytes = Buffer.byteLength(verifier, 'utf8');
  const message = Buffer.allocUnsafe(Buffer.byteLength(domain, 'utf8') + 1 + challenge.byteLength + 4 + proverBytes + 4 + verifierBytes);
  let offset = message.write(domain, 0, 'utf8');
  message[offset++] = 0;
  message.set(challenge, offset);
  offset += challenge.byteLength;
  offset = message.writeUInt32BE(proverBytes, offset);
  offset += message.write(prover, offset, 'utf8');
  offset = message.writeUInt32BE(verifierBytes, offset);
  message.write(verifier, offset, 'utf8');
  return message;
}

/** The rest of the message after messagePrefix: the request id (`id`; -1: none), then `last`. */
function messageRest(id: number, last: string): Buffer {
  const lastBytes = Buffer.byteLength(last, 'utf8');
  const message = Buffer.allocUnsafe((id < 0 ? 0 : 4 + 8) + 4 + lastBytes);
  let offset = 0;
  if (id >= 0) {
    // A 64-bit big-endian integer (ids are below 2^32, so the high half is 0).
    offset = message.writeUInt32BE(8, offset);
    offset = message.writeUInt32BE(Math.floor(id / 0x1_0000_0000), offset);
    offset = message.writeUInt32BE(id % 0x1_0000_0000, offset);
  }
  offset = message.writeUInt32BE(lastBytes, offset);
  message.write(last, offset, 'utf8');
  return message;
}

const GET_DOMAIN = 'get opener->acceptor';
const CLAIM_DOMAIN = 'scope acceptor->opener';

/** The HMAC of a stream's get proofs under one proof key, with the message's first part absorbed once. */
interface GetPrefix {
  /** A copy of the challenge's bytes and the parties the prefix was made for (anything else: a new prefix). */
  readonly challenge: Buffer;
  readonly prover: string;
  readonly verifier: string;
  readonly hmac: PrefixedHmac;
}

/** Per stream (its challenge, the object both ends keep for the stream's life) and proof key (per scope). */
const getPrefixes = new WeakMap<Uint8Array, Map<Uint8Array, GetPrefix>>();
/** Proof keys kept per stream at most (a stream serves a few scopes; past this the stream's are made again). */
const MAX_PREFIXES_PER_STREAM = 64;

function getHmacOf(proofKey: Uint8Array, challenge: Uint8Array, { prover, verifier }: ProofParties): PrefixedHmac {
  let byKey = getPrefixes.get(challenge);
  if (byKey === undefined) {
    byKey = new Map();
    getPrefixes.set(challenge, byKey);
  }
  let kept = byKey.get(proofKey);
  if (kept === undefined || kept.prover !== prover || kept.verifier !== verifier || !kept.challenge.equals(challenge)) {
    if (byKey.size >= MAX_PREFIXES_PER_STREAM) byKey.clear();
    kept = { challenge: Buffer.from(challenge), prover, verifier, hmac: new PrefixedHmac(proofKey, messagePrefix(GET_DOMAIN, challenge, prover, verifier)) };
    byKey.set(proofKey, kept);
  }
  return kept.hmac;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === PROOF_BYTES && b.byteLength === PROOF_BYTES && timingSafeEqual(a, b);
}

/**
 * Proof for a `get` of `key` with request `id`, made by the asker (the stream's opener, `prover`) for the owner
 * (the acceptor, `verifier`), on a stream whose owner sent `challenge`.
 */
export function getProof(proofKey: Uint8Array, challenge: Uint8Array, id: number, key: string, parties: ProofParties): Uint8Array {
  return getHmacOf(proofKey, challenge, parties).mac(messageRest(id, key));
}

export function verifyGetProof(proofKey: Uint8Array, challenge: Uint8Array, id: number, key: string, parties: ProofParties, proof: Uint8Array): boolean {
  return same(getProof(proofKey, challenge, id, key, parties), proof);
}

/**
 * Proof that `prover` (the stream's acceptor, which sends `scopes`) holds `scopeId`, for `verifier` (the
 * opener), on a stream whose opener sent `challenge`.
 */
export function scopeClaimProof(proofKey: Uint8Array, challenge: Uint8Array, scopeId: string, parties: ProofParties): Uint8Array {
  const message = Buffer.concat([messagePrefix(CLAIM_DOMAIN, challenge, parties.prover, parties.verifier), messageRest(-1, scopeId)]);
  return hmacSha256(proofKey, message);
}

export function verifyScopeClaim(proofKey: Uint8Array, challenge: Uint8Array, scopeId: string, parties: ProofParties, proof: Uint8Array): boolean {
  return same(scopeClaimProof(proofKey, challenge, scopeId, parties), proof);
}
