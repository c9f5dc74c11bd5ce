import { hash, hkdfSync, timingSafeEqual } from 'node:crypto';

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
 * output, never the AES key itself.
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

/** SHA-256's block size: an HMAC key is padded (or, when longer, hashed) to it (RFC 2104). */
const BLOCK_BYTES = 64;
const DIGEST_BYTES = 32;

/** A proof key's HMAC pads, made once per key (the key object of a scope lives as long as the scope is held). */
interface Pads {
  /** The key's bytes when the pads were made: a key changed in place afterwards gets new pads. */
  readonly key: Buffer;
  /** key XOR 0x36, one block. */
  readonly inner: Buffer;
  /** key XOR 0x5c, one block. */
  readonly outer: Buffer;
}

const padsByKey = new WeakMap<Uint8Array, Pads>();

function padsOf(proofKey: Uint8Array): Pads {
  const known = padsByKey.get(proofKey);
  if (known !== undefined && known.key.equals(proofKey)) return known;
  const key = proofKey.byteLength > BLOCK_BYTES ? hash('sha256', proofKey, 'buffer') : proofKey;
  const inner = Buffer.alloc(BLOCK_BYTES, 0x36);
  const outer = Buffer.alloc(BLOCK_BYTES, 0x5c);
  for (let i = 0; i < key.byteLength; i++) {
    inner[i]! ^= key[i]!;
    outer[i]! ^= key[i]!;
  }
  const pads: Pads = { key: Buffer.from(proofKey), inner, outer };
  padsByKey.set(proofKey, pads);
  return pads;
}

/**
 * HMAC-SHA256 under `proofKey` of one message: `${domain}\0`, the challenge, then each part with its length as a
 * 32-bit big-endian integer before it (so that no two different part lists hash alike); strings as UTF-8. The
 * same bytes as updating an Hmac part by part. Computed as RFC 2104 defines it, H(key ^ opad || H(key ^ ipad ||
 * message)), with two one-shot hashes and the key's pads made once: an Hmac object set up its key on every proof
 * (about a third of a proof's cost, two proofs per peer hit). Strings are written straight into the message (no
 * Buffer per part), and the request id of a get in place (`id`: a 64-bit big-endian part after the two peer ids;
 * -1: none).
 */
function hmac(proofKey: Uint8Array, domain: string, challenge: Uint8Array, prover: string, verifier: string, id: number, last: string): Uint8Array {
  const pads = padsOf(proofKey);
  const proverBytes = Buffer.byteLength(prover, 'utf8');
  const verifierBytes = Buffer.byteLength(verifier, 'utf8');
  const lastBytes = Buffer.byteLength(last, 'utf8');
  const total = BLOCK_BYTES + Buffer.byteLength(domain, 'utf8') + 1 + challenge.byteLength + 4 + proverBytes + 4 + verifierBytes
    + (id < 0 ? 0 : 4 + 8) + 4 + lastBytes;
  const message = Buffer.allocUnsafe(total);
  message.set(pads.inner, 0);
  let offset = BLOCK_BYTES + message.write(domain, BLOCK_BYTES, 'utf8');
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
  const outer = Buffer.allocUnsafe(BLOCK_BYTES + DIGEST_BYTES);
  outer.set(pads.outer, 0);
  outer.set(hash('sha256', message, 'buffer'), BLOCK_BYTES);
  return new Uint8Array(hash('sha256', outer, 'buffer'));
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
