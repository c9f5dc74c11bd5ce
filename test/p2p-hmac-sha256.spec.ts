import { createHmac, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { hmacSha256, useHmacImplementation, type HmacImplementation } from '../src/p2p/hmac-sha256.js';
import { getProof, proofKeyOf, verifyGetProof } from '../src/p2p/scope-proof.js';
import { loadSodium } from '../src/p2p/sodium.js';

/**
 * HMAC-SHA256 of the scope proofs (hmac-sha256.ts): RFC 4231's test vectors and node:crypto's createHmac on random
 * keys (shorter than, equal to and longer than a block) and messages, from libsodium's SHA-256 states and from
 * createHmac alike; a key's states are reused across messages without one message leaking into the next.
 */

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

// RFC 4231, test cases 1, 2, 4, 6 and 7 (HMAC-SHA-256).
const VECTORS: Array<{ key: Buffer; data: Buffer; mac: string }> = [
  { key: Buffer.alloc(20, 0x0b), data: Buffer.from('Hi There'), mac: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7' },
  { key: Buffer.from('Jefe'), data: Buffer.from('what do ya want for nothing?'), mac: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843' },
  { key: hex('0102030405060708090a0b0c0d0e0f10111213141516171819'), data: Buffer.alloc(50, 0xcd), mac: '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b' },
  { key: Buffer.alloc(131, 0xaa), data: Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'), mac: '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54' },
  {
    key: Buffer.alloc(131, 0xaa),
    data: Buffer.from('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'),
    mac: '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
  },
];

const IMPLEMENTATIONS: HmacImplementation[] = ['sodium', 'node', 'auto'];

function using<T>(implementation: HmacImplementation, run: () => T): T {
  const previous = useHmacImplementation(implementation);
  try {
    return run();
  } finally {
    useHmacImplementation(previous);
  }
}

describe('HMAC-SHA256 of the scope proofs (libsodium states and node:crypto)', () => {
  for (const implementation of IMPLEMENTATIONS) {
    it(`${implementation}: gives RFC 4231's MACs`, () => {
      using(implementation, () => {
        for (const { key, data, mac } of VECTORS) expect(Buffer.from(hmacSha256(new Uint8Array(key), data)).toString('hex')).to.equal(mac);
      });
    });

    it(`${implementation}: equals createHmac on random keys of 0 to 200 bytes and messages of 0 to 300 bytes, a key reused across messages`, () => {
      using(implementation, () => {
        for (const keyBytes of [0, 1, 32, 63, 64, 65, 128, 200]) {
          const key = new Uint8Array(randomBytes(keyBytes));
          for (const messageBytes of [0, 1, 55, 56, 64, 119, 300]) {
            const message = randomBytes(messageBytes);
            const expected = createHmac('sha256', key).update(message).digest('hex');
            expect(Buffer.from(hmacSha256(key, message)).toString('hex'), `key ${keyBytes} B, message ${messageBytes} B`).to.equal(expected);
          }
        }
      });
    });
  }

  it('follows a key whose bytes change in place (its kept states are made again)', () => {
    for (const implementation of IMPLEMENTATIONS) {
      using(implementation, () => {
        const key = new Uint8Array(randomBytes(32));
        const message = Buffer.from('same message');
        expect(Buffer.from(hmacSha256(key, message)).equals(createHmac('sha256', key).update(message).digest())).to.equal(true);
        key[5] = key[5]! ^ 0x10;
        expect(Buffer.from(hmacSha256(key, message)).equals(createHmac('sha256', key).update(message).digest()), implementation).to.equal(true);
        // A Buffer key too (Buffer#slice is a view, not a copy: the kept bytes must be a copy).
        const bufferKey = randomBytes(32);
        expect(Buffer.from(hmacSha256(bufferKey, message)).equals(createHmac('sha256', bufferKey).update(message).digest())).to.equal(true);
        bufferKey[0] = bufferKey[0]! ^ 0x01;
        expect(Buffer.from(hmacSha256(bufferKey, message)).equals(createHmac('sha256', bufferKey).update(message).digest()), `${implementation}, Buffer key`).to.equal(true);
      });
    }
  });

  it('returns a fresh array each time (a caller keeping one proof does not see the next)', () => {
    for (const implementation of IMPLEMENTATIONS) {
      using(implementation, () => {
        const key = new Uint8Array(randomBytes(32));
        const first = hmacSha256(key, Buffer.from('one'));
        const kept = Buffer.from(first).toString('hex');
        const second = hmacSha256(key, Buffer.from('two'));
        expect(first).to.not.equal(second);
        expect(Buffer.from(first).toString('hex'), implementation).to.equal(kept);
      });
    }
  });

  it('get proofs made with one implementation verify with the other', () => {
    const proofKey = proofKeyOf(new Uint8Array(randomBytes(32)));
    const challenge = new Uint8Array(randomBytes(32));
    const parties = { prover: 'asker-peer-id', verifier: 'owner-peer-id' };
    for (const [maker, checker] of [['sodium', 'node'], ['node', 'sodium']] as const) {
      const proof = using(maker, () => getProof(proofKey, challenge, 7, 'GET https://api.github.com/x', parties));
      expect(using(checker, () => verifyGetProof(proofKey, challenge, 7, 'GET https://api.github.com/x', parties, proof))).to.equal(true);
      expect(using(checker, () => verifyGetProof(proofKey, challenge, 8, 'GET https://api.github.com/x', parties, proof))).to.equal(false);
    }
  });
});

describe('Get proofs hash what is the same on a stream once (scope-proof.ts, PrefixedHmac)', () => {
  /** The proof's message as the protocol defines it (docs/p2p-protocol.md), built here independently of the module. */
  function message(domain: string, challenge: Uint8Array, prover: string, verifier: string, id: number, last: string): Buffer {
    const part = (bytes: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 0].map((_, i) => (bytes.byteLength >>> (24 - 8 * i)) & 0xff)), bytes]);
    const idBytes = Buffer.alloc(8);
    idBytes.writeBigUInt64BE(BigInt(id));
    return Buffer.concat([Buffer.from(`${domain}\0`), challenge, part(Buffer.from(prover)), part(Buffer.from(verifier)), part(idBytes), part(Buffer.from(last))]);
  }
  const expected = (proofKey: Uint8Array, challenge: Uint8Array, id: number, key: string, prover: string, verifier: string): string =>
    createHmac('sha256', proofKey).update(message('get opener->acceptor', challenge, prover, verifier, id, key)).digest('hex');

  for (const implementation of IMPLEMENTATIONS) {
    it(`${implementation}: every get proof is the HMAC of its whole message, as the stream, parties, key or challenge change`, () => {
      using(implementation, () => {
        const proofKey = proofKeyOf(new Uint8Array(randomBytes(32)));
        const otherKey = proofKeyOf(new Uint8Array(randomBytes(32)));
        const challenge = new Uint8Array(randomBytes(32));
        const A = 'asker-peer-id';
        const B = 'owner-peer-id';
        const check = (key: Uint8Array, id: number, cacheKey: string, prover: string, verifier: string): void => {
          const proof = getProof(key, challenge, id, cacheKey, { prover, verifier });
          expect(Buffer.from(proof).toString('hex'), `${id} ${cacheKey} ${prover}->${verifier}`).to.equal(expected(key, challenge, id, cacheKey, prover, verifier));
          expect(verifyGetProof(key, challenge, id, cacheKey, { prover, verifier }, proof)).to.equal(true);
        };
        // Many gets on one stream, keys of every length around a block, ids up to 2^32 - 1.
        for (let i = 0; i < 70; i++) check(proofKey, i * 61_356_675, `GET https://api.github.com/${'x'.repeat(i * 3)}ü`, A, B);
        check(proofKey, 0xffff_ffff, 'GET https://api.github.com/max', A, B);
        // Another scope, and the parties swapped (a reflected proof), on the same stream.
        check(otherKey, 1, 'GET https://api.github.com/a', A, B);
        check(proofKey, 1, 'GET https://api.github.com/a', B, A);
        expect(verifyGetProof(proofKey, challenge, 1, 'GET https://api.github.com/a', { prover: A, verifier: B },
          getProof(proofKey, challenge, 1, 'GET https://api.github.com/a', { prover: B, verifier: A }))).to.equal(false);
        // The challenge and the proof key changed in place: the proofs follow the new bytes.
        challenge[0] = (challenge[0]! + 1) & 0xff;
        check(proofKey, 2, 'GET https://api.github.com/b', A, B);
        proofKey[5] = (proofKey[5]! + 1) & 0xff;
        check(proofKey, 3, 'GET https://api.github.com/c', A, B);
      });
    });
  }

  it('hashes a get\'s id and key alone: the challenge and the peer ids once per stream and scope', () => {
    const sodium = loadSodium() as Record<string, (...args: Uint8Array[]) => void> | null;
    if (sodium === null) return; // the node fallback has no state to keep
    const update = sodium.crypto_hash_sha256_update!;
    let absorbed = 0;
    sodium.crypto_hash_sha256_update = (state: Uint8Array, input: Uint8Array) => {
      absorbed += input.byteLength;
      update(state, input);
    };
    try {
      using('sodium', () => {
        const proofKey = proofKeyOf(new Uint8Array(randomBytes(32)));
        const challenge = new Uint8Array(randomBytes(32));
        const parties = { prover: '12D3KooWAskerAskerAskerAskerAskerAskerAskerAskerAsker', verifier: '12D3KooWOwnerOwnerOwnerOwnerOwnerOwnerOwnerOwnerOwner' };
        const key = 'GET https://api.github.com/repos/o/r';
        getProof(proofKey, challenge, 0, key, parties); // the stream's first get: the key's blocks and the prefix
        absorbed = 0;
        for (let id = 1; id <= 10; id++) getProof(proofKey, challenge, id, key, parties);
        // Per proof: the id and key (4 + 8 + 4 + 36 bytes) into the inner hash, the 32-byte inner digest into the outer.
        expect(absorbed / 10).to.equal(16 + key.length + 32);
      });
    } finally {
      sodium.crypto_hash_sha256_update = update;
    }
  });
});
