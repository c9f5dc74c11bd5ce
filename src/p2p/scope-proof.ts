import { hkdfSync, timingSafeEqual } from 'node:crypto';
import { hmacSha256 } from './hmac-sha256.js';

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
 * HMAC-SHA256 under `proofKey` of one message: `${domain}\0`, the challenge, then each part with its length as a
 * 32-bit big-endian integer before it (so that no two different part lists hash alike); strings as UTF-8. The
 * message is written into one buffer (strings straight into it, no Buffer per part; the request id of a get in
 * place: `id`, a 64-bit big-endian part after the two peer ids; -1: none) and hashed in one call (hmac-sha256.ts).
 */
function hmac(proofKey: Uint8Array, domain: string, challenge: Uint8Array, prover: string, verifier: string, id: number, last: string): Uint8Array {
  const proverBytes = Buffer.byteLength(prover, 'utf8');
  const verifierBytes = Buffer.byteLength(verifier, 'utf8');
  const lastBytes = Buffer.byteLength(last, 'utf8');
  const total = Buffer.byteLength(domain, 'utf8') + 1 + challenge.byteLength + 4 + proverBytes + 4 + verifierBytes
    + (id < 0 ? 0 : 4 + 8) + 4 + lastBytes;
  const message = Buffer.allocUnsafe(total);
  let offset = message.write(domain, 0, 'utf8');
  message[offset++] = 0;
  message.set(challenge, offset);
  offset += challenge.byteLength;
  offset = message.writeUInt32BE(proverBytes, offset);
  offset += message.write(prover, offset, 'utf8');
  offset = message.writeUInt32BE(verifierBytes, offset);
  offset += message.write(verifier, offset, 'utf8');
  if (id >= 0) {
    // A 64-bit big-endian integer (ids are below 2^32, so the high half is 0).
    offset = message.writeUInt32BE(8, offset);
    offset = message.writeUInt32BE(Math.floor(id / 0x1_0000_0000), offset);
    offset = message.writeUInt32BE(id % 0x1_0000_0000, offset);
  }
  offset = message.writeUInt32BE(lastBytes, offset);
  message.write(last, offset, 'utf8');
  return hmacSha256(proofKey, message);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === PROOF_BYTES && b.byteLength === PROOF_BYTES && timingSafeEqual(a, b);
}

/**
 * Proof for a `get` of `key` with request `id`, made by the asker (the stream's opener, `prover`) for the owner
 * (the acceptor, `verifier`), on a stream whose owner sent `challenge`.
 */
export function getProof(proofKey: Uint8Array, challenge: Uint8Array, id: number, key: string, parties: ProofParties): Uint8Array {
  return hmac(proofKey, 'get opener->acceptor', challenge, parties.prover, parties.verifier, id, key);
}

export function verifyGetProof(proofKey: Uint8Array, challenge: Uint8Array, id: number, key: string, parties: ProofParties, proof: Uint8Array): boolean {
  return same(getProof(proofKey, challenge, id, key, parties), proof);
}

/**
 * Proof that `prover` (the stream's acceptor, which sends `scopes`) holds `scopeId`, for `verifier` (the
 * opener), on a stream whose opener sent `challenge`.
 */
export function scopeClaimProof(proofKey: Uint8Array, challenge: Uint8Array, scopeId: string, parties: ProofParties): Uint8Array {
  return hmac(proofKey, 'scope acceptor->opener', challenge, parties.prover, parties.verifier, -1, scopeId);
}

export function verifyScopeClaim(proofKey: Uint8Array, challenge: Uint8Array, scopeId: string, parties: ProofParties, proof: Uint8Array): boolean {
  return same(scopeClaimProof(proofKey, challenge, scopeId, parties), proof);
}
