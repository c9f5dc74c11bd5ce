import { randomBytes } from 'node:crypto';
import { hchacha, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { u32, u8 } from '@noble/ciphers/utils.js';
import { expect } from 'chai';
import { AEAD_TAG_BYTES, aeadOpen, aeadSeal, SODIUM_BELOW, useAeadImplementation, type AeadImplementation } from '../src/p2p/entry-aead.js';

/**
 * The AEAD of sealed entries (entry-aead.ts): XChaCha20-Poly1305 as draft-irtf-cfrg-xchacha gives it (its AEAD test
 * vector, and its HChaCha20 vector for the derivation the node:crypto path builds on), the same bytes from libsodium,
 * from HChaCha20 + node:crypto and from @noble/ciphers' own XChaCha20-Poly1305 at every size on both sides of the
 * bound, each opening the others'; anything altered
 * (ciphertext, tag, nonce, additional data, key) opens to null; a key, nonce or output of the wrong size is refused
 * with a TypeError or RangeError.
 */

const hex = (s: string): Buffer => Buffer.from(s.replace(/[^0-9a-f]/g, ''), 'hex');

// draft-irtf-cfrg-xchacha-03, appendix A.3.1 (AEAD_XChaCha20_Poly1305).
const VECTOR = {
  key: hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
  nonce: hex('404142434445464748494a4b4c4d4e4f5051525354555657'),
  ad: hex('50515253c0c1c2c3c4c5c6c7'),
  plaintext: Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.", 'utf8'),
  ciphertext: hex(`bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e`),
  tag: hex('c0875924c1c7987947deafd8780acf49'),
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

describe('entry AEAD (XChaCha20-Poly1305, libsodium and node:crypto)', () => {
  for (const implementation of IMPLEMENTATIONS) {
    it(`${implementation}: seals the XChaCha20-Poly1305 test vector to its ciphertext and tag, and opens it`, () => {
      const sealed = sealWith(implementation, VECTOR.plaintext, VECTOR.ad, VECTOR.nonce, VECTOR.key);
      expect(Buffer.from(sealed).equals(Buffer.concat([VECTOR.ciphertext, VECTOR.tag]))).to.equal(true);
      expect(openWith(implementation, sealed, VECTOR.ad, VECTOR.nonce, VECTOR.key)?.equals(VECTOR.plaintext)).to.equal(true);
    });
  }

  it("@noble/ciphers' HChaCha20 gives the draft's test vector (section 2.2.1) from the words the node:crypto path passes it", () => {
    // As entry-aead.ts calls it: words over (aligned copies of) the bytes, and the output read back as bytes.
    const words = (bytes: Buffer) => u32(new Uint8Array(bytes));
    const out = new Uint32Array(8);
    hchacha(u32(new TextEncoder().encode('expand 32-byte k')), words(hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f')),
      words(hex('000000090000004a0000000031415927')), out);
    const bytes = Buffer.from(u8(out));
    expect(bytes.toString('hex')).to.equal('82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
  });

  for (const size of SIZES) {
    it(`${size} B: the same bytes from each implementation (and @noble/ciphers' own XChaCha20-Poly1305), each opening the others'`, () => {
      const key = randomBytes(32);
      const nonce = randomBytes(24);
      const ad = randomBytes(40);
      const plaintext = randomBytes(size);
      const expected = Buffer.from(xchacha20poly1305(key, nonce, ad).encrypt(plaintext));
      for (const sealer of IMPLEMENTATIONS) {
        const sealed = sealWith(sealer, plaintext, ad, nonce, key);
        expect(Buffer.from(sealed).equals(expected), `sealed by ${sealer}`).to.equal(true);
        for (const opener of IMPLEMENTATIONS) {
          expect(openWith(opener, sealed, ad, nonce, key)?.equals(plaintext), `sealed by ${sealer}, opened by ${opener}`).to.equal(true);
        }
      }
      // And @noble/ciphers' own XChaCha20-Poly1305 opens it: the format is plain XChaCha20-Poly1305.
      expect(Buffer.from(xchacha20poly1305(key, nonce, ad).decrypt(expected)).equals(plaintext)).to.equal(true);
    });
  }

  for (const implementation of IMPLEMENTATIONS) {
    for (const size of [0, 4_862, SODIUM_BELOW + 10]) {
      it(`${implementation}, ${size} B: opens to null when the ciphertext, tag, nonce, additional data or key is altered, or the input is short`, () => {
        const key = randomBytes(32);
        const nonce = randomBytes(24);
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
    expect(() => aeadSeal(new Uint8Array(26), plaintext, new Uint8Array(), randomBytes(24), randomBytes(16))).to.throw(TypeError, /32 bytes/);
    expect(() => aeadSeal(new Uint8Array(26), plaintext, new Uint8Array(), randomBytes(12), randomBytes(32))).to.throw(TypeError, /24 bytes/);
    expect(() => aeadSeal(new Uint8Array(25), plaintext, new Uint8Array(), randomBytes(24), randomBytes(32))).to.throw(RangeError);
    expect(() => aeadOpen(new Uint8Array(26), new Uint8Array(), randomBytes(24), randomBytes(31))).to.throw(TypeError, /32 bytes/);
    expect(() => aeadOpen(new Uint8Array(26), new Uint8Array(), randomBytes(12), randomBytes(32))).to.throw(TypeError, /24 bytes/);
  });
});
