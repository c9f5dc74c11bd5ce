import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { AEAD_TAG_BYTES, aeadOpen, aeadSeal, SODIUM_BELOW, useAeadImplementation, type AeadImplementation } from '../src/p2p/entry-aead.js';

/**
 * The AEAD of sealed entries (entry-aead.ts): ChaCha20-Poly1305 as RFC 8439 gives it, the same bytes from libsodium
 * and from node:crypto at every size on both sides of the bound, each opening the other's; anything altered
 * (ciphertext, tag, nonce, additional data, key) opens to null; a key, nonce or output of the wrong size is refused
 * with a TypeError or RangeError.
 */

const hex = (s: string): Buffer => Buffer.from(s.replace(/[^0-9a-f]/g, ''), 'hex');

// RFC 8439, section 2.8.2.
const RFC = {
  key: hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
  nonce: hex('070000004041424344454647'),
  ad: hex('50515253c0c1c2c3c4c5c6c7'),
  plaintext: Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.", 'utf8'),
  ciphertext: hex(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116`),
  tag: hex('1ae10b594f09e26a7e902ecbd0600691'),
};

const SIZES = [0, 1, 64, 4_862, SODIUM_BELOW - 17, SODIUM_BELOW - 16, SODIUM_BELOW - 1, SODIUM_BELOW, 40_000, 300_000];
const IMPLEMENTATIONS: AeadImplementation[] = ['sodium', 'node', 'auto'];

function sealWith(implementation: AeadImplementation, plaintext: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
  const previous = useAeadImplementation(implementation);
  try {
    const out = new Uint8Array(plaintext.byteLength + AEAD_TAG_BYTES);
    aeadSeal(out, plaintext, ad, nonce, key);
    return out;
  } finally {
    useAeadImplementation(previous);
  }
}

function openWith(implementation: AeadImplementation, sealed: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer | null {
  const previous = useAeadImplementation(implementation);
  try {
    return aeadOpen(sealed, ad, nonce, key);
  } finally {
    useAeadImplementation(previous);
  }
}

describe('entry AEAD (ChaCha20-Poly1305, libsodium and node:crypto)', () => {
  for (const implementation of IMPLEMENTATIONS) {
    it(`${implementation}: seals RFC 8439's test vector to its ciphertext and tag, and opens it`, () => {
      const sealed = sealWith(implementation, RFC.plaintext, RFC.ad, RFC.nonce, RFC.key);
      expect(Buffer.from(sealed).equals(Buffer.concat([RFC.ciphertext, RFC.tag]))).to.equal(true);
      expect(openWith(implementation, sealed, RFC.ad, RFC.nonce, RFC.key)?.equals(RFC.plaintext)).to.equal(true);
    });
  }

  for (const size of SIZES) {
    it(`${size} B: the same bytes from each implementation (and node:crypto's own cipher), each opening the others'`, () => {
      const key = randomBytes(32);
      const nonce = randomBytes(12);
      const ad = randomBytes(40);
      const plaintext = randomBytes(size);
      const reference = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      reference.setAAD(ad, { plaintextLength: size });
      const expected = Buffer.concat([reference.update(plaintext), reference.final(), reference.getAuthTag()]);
      for (const sealer of IMPLEMENTATIONS) {
        const sealed = sealWith(sealer, plaintext, ad, nonce, key);
        expect(Buffer.from(sealed).equals(expected), `sealed by ${sealer}`).to.equal(true);
        for (const opener of IMPLEMENTATIONS) {
          expect(openWith(opener, sealed, ad, nonce, key)?.equals(plaintext), `sealed by ${sealer}, opened by ${opener}`).to.equal(true);
        }
      }
      // And node:crypto's own decipher reads it: the format is plain RFC 8439.
      const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      decipher.setAAD(ad, { plaintextLength: size });
      decipher.setAuthTag(expected.subarray(size));
      expect(Buffer.concat([decipher.update(expected.subarray(0, size)), decipher.final()]).equals(plaintext)).to.equal(true);
    });
  }

  for (const implementation of IMPLEMENTATIONS) {
    for (const size of [0, 4_862, SODIUM_BELOW + 10]) {
      it(`${implementation}, ${size} B: opens to null when the ciphertext, tag, nonce, additional data or key is altered, or the input is short`, () => {
        const key = randomBytes(32);
        const nonce = randomBytes(12);
        const ad = randomBytes(40);
        const sealed = sealWith('auto', randomBytes(size), ad, nonce, key);
        const flip = (bytes: Uint8Array, at: number): Uint8Array => {
          const copy = new Uint8Array(bytes);
          copy[at] = copy[at]! ^ 0x01;
          return copy;
        };
        const cases: Array<[string, () => Buffer | null]> = [
          ['tag', () => openWith(implementation, flip(sealed, sealed.byteLength - 1), ad, nonce, key)],
          ['nonce', () => openWith(implementation, sealed, ad, flip(nonce, 0), key)],
          ['additional data', () => openWith(implementation, sealed, flip(ad, 39), nonce, key)],
          ['key', () => openWith(implementation, sealed, ad, nonce, flip(key, 31))],
          ['truncated', () => openWith(implementation, sealed.subarray(0, sealed.byteLength - 1), ad, nonce, key)],
          ['shorter than a tag', () => openWith(implementation, sealed.subarray(0, AEAD_TAG_BYTES - 1), ad, nonce, key)],
        ];
        if (size > 0) cases.push(['ciphertext', () => openWith(implementation, flip(sealed, 0), ad, nonce, key)]);
        for (const [what, open] of cases) expect(open(), what).to.equal(null);
      });
    }
  }

  it('refuses a key or nonce of the wrong size, and an output of the wrong size, with a TypeError or RangeError', () => {
    const plaintext = randomBytes(10);
    expect(() => aeadSeal(new Uint8Array(26), plaintext, new Uint8Array(), randomBytes(12), randomBytes(16))).to.throw(TypeError, /32 bytes/);
    expect(() => aeadSeal(new Uint8Array(26), plaintext, new Uint8Array(), randomBytes(24), randomBytes(32))).to.throw(TypeError, /12 bytes/);
    expect(() => aeadSeal(new Uint8Array(25), plaintext, new Uint8Array(), randomBytes(12), randomBytes(32))).to.throw(RangeError);
    expect(() => aeadOpen(new Uint8Array(26), new Uint8Array(), randomBytes(12), randomBytes(31))).to.throw(TypeError, /32 bytes/);
    expect(() => aeadOpen(new Uint8Array(26), new Uint8Array(), randomBytes(8), randomBytes(32))).to.throw(TypeError, /12 bytes/);
  });
});
