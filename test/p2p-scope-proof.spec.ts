import { createHmac, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { getProof, proofKeyOf, scopeClaimProof, verifyGetProof, verifyScopeClaim } from '../src/p2p/scope-proof.js';

/** The proofs as first written (one update per piece): peers running that code must keep accepting ours. */
function referenceHmac(proofKey: Uint8Array, domain: string, challenge: Uint8Array, ...parts: Array<Uint8Array | string>): Uint8Array {
  const mac = createHmac('sha256', proofKey).update(`${domain}\0`, 'utf8').update(challenge);
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.byteLength);
    mac.update(length).update(bytes);
  }
  return new Uint8Array(mac.digest());
}

function referenceId(id: number): Uint8Array {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(id));
  return out;
}

describe('scope proofs (wire-compatible bytes)', () => {
  const proofKey = proofKeyOf(new Uint8Array(randomBytes(32)));
  const challenge = new Uint8Array(randomBytes(32));
  const keys = ['https://api.github.com/repos/o/r GET anonymous application/vnd.github+json', 'k', '', 'ünïcødé 🚀 key', 'x'.repeat(9000)];
  const ids = [0, 1, 255, 65_536, 0x7fff_ffff, 0xffff_ffff];

  const A = '12D3KooWAskerAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
  const B = '12D3KooWOwnerBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
  const C = '12D3KooWThirdCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC';

  it('get proofs are byte for byte the HMAC of the documented layout, and verify', () => {
    for (const key of keys) {
      for (const id of ids) {
        const proof = getProof(proofKey, challenge, id, key, { prover: A, verifier: B });
        const reference = referenceHmac(proofKey, 'get opener->acceptor', challenge, A, B, referenceId(id), key);
        expect(Buffer.from(proof).equals(Buffer.from(reference)), `${id} ${key.slice(0, 20)}`).to.equal(true);
        expect(verifyGetProof(proofKey, challenge, id, key, { prover: A, verifier: B }, proof)).to.equal(true);
        expect(verifyGetProof(proofKey, challenge, id + 1, key, { prover: A, verifier: B }, proof)).to.equal(false);
        expect(verifyGetProof(proofKey, challenge, id, `${key}x`, { prover: A, verifier: B }, proof)).to.equal(false);
      }
    }
  });

  it('scope claims are byte for byte the HMAC of the documented layout, and verify', () => {
    for (const scopeId of ['anonymous', '0123456789abcdef0123456789abcdef']) {
      const proof = scopeClaimProof(proofKey, challenge, scopeId, { prover: B, verifier: A });
      expect(Buffer.from(proof).equals(Buffer.from(referenceHmac(proofKey, 'scope acceptor->opener', challenge, B, A, scopeId)))).to.equal(true);
      expect(verifyScopeClaim(proofKey, challenge, scopeId, { prover: B, verifier: A }, proof)).to.equal(true);
      expect(verifyScopeClaim(proofKey, new Uint8Array(32), scopeId, { prover: B, verifier: A }, proof)).to.equal(false);
    }
  });

  it('proofs stay the HMAC of the layout for keys of any length, and follow a key whose bytes change in place', () => {
    for (const length of [1, 16, 32, 63, 64, 65, 100, 200]) {
      const key = new Uint8Array(randomBytes(length));
      const proof = getProof(key, challenge, 7, keys[0]!, { prover: A, verifier: B });
      expect(Buffer.from(proof).equals(Buffer.from(referenceHmac(key, 'get opener->acceptor', challenge, A, B, referenceId(7), keys[0]!))), `${length} bytes`).to.equal(true);
    }
    const key = new Uint8Array(randomBytes(32));
    const before = getProof(key, challenge, 1, 'k', { prover: A, verifier: B });
    key[0] = key[0]! ^ 0xff;
    const after = getProof(key, challenge, 1, 'k', { prover: A, verifier: B });
    expect(Buffer.from(after).equals(Buffer.from(before))).to.equal(false);
    expect(Buffer.from(after).equals(Buffer.from(referenceHmac(key, 'get opener->acceptor', challenge, A, B, referenceId(1), 'k')))).to.equal(true);
  });

  it('a proof is bound to its prover, its verifier and its direction: relayed, reflected or turned around, it fails', () => {
    const claim = scopeClaimProof(proofKey, challenge, 'anonymous', { prover: B, verifier: C });
    expect(verifyScopeClaim(proofKey, challenge, 'anonymous', { prover: C, verifier: A }, claim), 'relayed by C to A').to.equal(false);
    expect(verifyScopeClaim(proofKey, challenge, 'anonymous', { prover: C, verifier: B }, claim), 'reflected by C to B').to.equal(false);
    const get = getProof(proofKey, challenge, 7, 'k', { prover: B, verifier: C });
    expect(verifyGetProof(proofKey, challenge, 7, 'k', { prover: C, verifier: B }, get), 'a get reflected to its maker').to.equal(false);
    expect(verifyGetProof(proofKey, challenge, 7, 'k', { prover: C, verifier: A }, get), 'a get relayed to a third peer').to.equal(false);
    // The same bytes as a claim and as a get never verify as the other (the domains differ).
    expect(Buffer.from(scopeClaimProof(proofKey, challenge, 'k', { prover: B, verifier: C })).equals(Buffer.from(get))).to.equal(false);
  });
});
