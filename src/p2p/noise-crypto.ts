import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import { SODIUM_BELOW, sodiumWith } from './sodium.js';

/**
 * Noise's crypto for the fleet: `@chainsafe/libp2p-noise`'s own (`defaultCrypto`), with ChaCha20-Poly1305 on
 * messages below SODIUM_BELOW bytes done by libsodium when the optional `sodium-native` package loads.
 *
 * Guarantee: the same AEAD (ChaCha20-Poly1305, RFC 8439, 12-byte nonce, 16-byte tag) on the same inputs, so the
 * same bytes on the wire as noise's own crypto, and members with and without sodium-native talk to each other. A
 * message that does not authenticate is refused with an Error, as noise's own refuses it, and its plaintext is
 * never returned. Every other primitive (X25519, SHA-256, HKDF) and every message from SODIUM_BELOW bytes up is
 * noise's own. Without sodium-native, `fleetNoiseCrypto()` is undefined and noise uses its default.
 *
 * Why: noise's default enciphers a message below 1,200 bytes in WebAssembly and a larger one through a
 * `createCipheriv` per message; both cost a fixed few microseconds per message that libsodium does not pay. A
 * peer hit is four noise messages (the get and the entry, each encrypted once and decrypted once). Measured on
 * this machine (µs per message, noise's default / libsodium): 64 B: encrypt 2.8 / 0.8, decrypt 2.1 / 0.6;
 * 1,000 B: 12.6 / 2.3, 11.2 / 1.5; 4,000 B: 9.8 / 5.2, 6.0 / 3.1; 16,000 B: 13.5 / 11.0, 10.4 / 9.4; 32,000 B:
 * 22.2 / 20.9, 17.5 / 21.6 (OpenSSL's ChaCha20 is faster per byte on long messages, hence the bound).
 */

/** Messages (plaintext or ciphertext bytes) below this go to libsodium; from it up, to noise's own crypto. */
export { SODIUM_BELOW };

const TAG_BYTES = 16;

/** The part of sodium-native this module calls. */
interface SodiumAead {
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
}

let made: ICryptoInterface | null | undefined;

/** Noise's crypto with libsodium's ChaCha20-Poly1305 on short messages, or undefined without sodium-native. */
export function fleetNoiseCrypto(): ICryptoInterface | undefined {
  if (made === undefined) {
    const lib = sodiumWith<SodiumAead>('crypto_aead_chacha20poly1305_ietf_decrypt', 'crypto_aead_chacha20poly1305_ietf_encrypt');
    made = lib === null ? null : withSodium(lib);
  }
  return made ?? undefined;
}

/** What noise hands its cipher: bytes, or a list of chunks (a Uint8ArrayList, whose `subarray()` joins them). */
type Message = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0];

function contiguous(data: Message): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray();
}

function withSodium(sodium: SodiumAead): ICryptoInterface {
  return {
    ...defaultCrypto,
    chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
      if (plaintext.byteLength >= SODIUM_BELOW) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k);
      const m = contiguous(plaintext);
      const c = Buffer.allocUnsafe(m.byteLength + TAG_BYTES);
      sodium.crypto_aead_chacha20poly1305_ietf_encrypt(c, m, ad, null, nonce, k);
      return c;
    },
    chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
      if (ciphertext.byteLength >= SODIUM_BELOW) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst);
      if (ciphertext.byteLength < TAG_BYTES) throw new Error('Invalid chacha20poly1305 decryption');
      const c = contiguous(ciphertext);
      // In place when noise offers the ciphertext's own bytes as the destination (libsodium allows m == c: it
      // checks the tag before it writes any plaintext); else a fresh buffer.
      const length = c.byteLength - TAG_BYTES;
      const m = dst !== undefined && dst.byteLength === length && dst.buffer === c.buffer && dst.byteOffset === c.byteOffset
        ? dst
        : Buffer.allocUnsafe(length);
      try {
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, c, ad, nonce, k);
      } catch {
        throw new Error('Invalid chacha20poly1305 decryption');
      }
      return m;
    },
  };
}
