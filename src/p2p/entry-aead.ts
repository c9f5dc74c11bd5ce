import { createCipheriv, createDecipheriv } from 'node:crypto';
import { hchacha } from '@noble/ciphers/chacha.js';
import { u32, u8 } from '@noble/ciphers/utils.js';
import { ImplementationChoice, SODIUM_BELOW, sodiumWith, type Implementation } from './sodium.js';

/**
 * The AEAD of sealed entries (envelope.ts): XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha: 32-byte key, 24-byte
 * nonce, 16-byte tag), i.e. RFC 8439's ChaCha20-Poly1305 under a subkey that HChaCha20 derives from the key and the
 * nonce's first 16 bytes, with the nonce's last 8 bytes (after 4 zero bytes) as its nonce.
 *
 * Guarantee: `aeadSeal` writes ciphertext ‖ tag, and `aeadOpen` returns the plaintext only when the tag
 * authenticates the ciphertext, nonce, additional data and key (else null, with nothing of the plaintext handed
 * out). Both give the same bytes whichever implementation runs: libsodium (the optional `sodium-native`) for
 * messages below SODIUM_BELOW bytes when it loads; otherwise HChaCha20 from @noble/ciphers and node:crypto's
 * (OpenSSL's) `chacha20-poly1305`. So members with and without sodium-native read each other's entries.
 *
 * Why XChaCha20: nonces are random. With 24 of their bytes, a repeat under one long-lived scope key stays
 * negligible however many entries a fleet seals (about n²/2^193 after n seals; with 12-byte nonces it was n²/2^97,
 * 2^-33 after 2^32 seals, which a busy scope reaches in weeks).
 *
 * Why libsodium: a peer hit seals one entry on the owner and opens it on the asker. Through node:crypto each is a
 * `createCipheriv`/`createDecipheriv`, and OpenSSL 3 looks the cipher up in its provider tables and builds a
 * context for every call; in the flow of a peer hit that was about 30 µs per seal or open on this machine, against
 * a few µs in a loop. libsodium's one call has no setup. From SODIUM_BELOW bytes up, OpenSSL's ChaCha20 is the
 * faster per byte and its setup no longer matters (the figures of noise-crypto.ts).
 * docs/benchmarks.md has the rows ("P2P codecs", crypto section; "Peer hits without OpenSSL's per-call setup").
 */

export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 24;
export const AEAD_TAG_BYTES = 16;
/** Plaintexts (or ciphertexts) below this many bytes go to libsodium when it loads (the bound noise-crypto.ts uses too). */
export { SODIUM_BELOW };

/** The part of sodium-native this module calls. */
interface SodiumAead {
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
}

let sodium: SodiumAead | null | undefined;

function loaded(): SodiumAead | null {
  if (sodium === undefined) sodium = sodiumWith<SodiumAead>('crypto_aead_xchacha20poly1305_ietf_encrypt', 'crypto_aead_xchacha20poly1305_ietf_decrypt');
  return sodium;
}

/** Which implementation seals and opens: 'auto' (libsodium below SODIUM_BELOW when it loads), or one of them (tests, benchmarks). */
export type AeadImplementation = Implementation;

const choice = new ImplementationChoice(() => loaded() !== null);

/**
 * Forces an implementation for this process (tests and benchmarks compare them; production never calls this).
 * 'sodium' throws when sodium-native does not load. Returns the previous setting.
 */
export function useAeadImplementation(implementation: AeadImplementation): AeadImplementation {
  return choice.use(implementation);
}

/** Whether libsodium would handle a message of `bytes` bytes. */
function viaSodium(bytes: number): SodiumAead | null {
  const forced = choice.current;
  if (forced === 'node') return null;
  const lib = loaded();
  if (forced === 'sodium') return lib;
  return bytes < SODIUM_BELOW ? lib : null;
}

/** "expand 32-byte k", ChaCha's constant, as @noble/ciphers takes it: words over the bytes, in this machine's order. */
const SIGMA = u32(new TextEncoder().encode('expand 32-byte k'));

/**
 * XChaCha20's ChaCha20 key and nonce: HChaCha20(key, nonce[0..16]), and 4 zero bytes ‖ nonce[16..24]. @noble/ciphers'
 * `hchacha` takes words over the bytes and gives its output so (it swaps on big-endian machines), as its own
 * XChaCha20 calls it; the inputs are copied first, as `u32` needs aligned bytes.
 */
function derive(key: Uint8Array, nonce: Uint8Array): { subkey: Buffer; chachaNonce: Buffer } {
  const keyBytes = new Uint8Array(key);
  const words = new Uint32Array(8);
  hchacha(SIGMA, u32(keyBytes), u32(new Uint8Array(nonce.subarray(0, 16))), words);
  const subkey = Buffer.from(u8(words));
  words.fill(0);
  keyBytes.fill(0);
  const chachaNonce = Buffer.alloc(12);
  chachaNonce.set(nonce.subarray(16, 24), 4);
  return { subkey, chachaNonce };
}

function checkInputs(key: Uint8Array, nonce: Uint8Array): void {
  if (key.byteLength !== AEAD_KEY_BYTES) throw new TypeError(`an entry key must be ${AEAD_KEY_BYTES} bytes, got ${key.byteLength}`);
  if (nonce.byteLength !== AEAD_NONCE_BYTES) throw new TypeError(`a nonce must be ${AEAD_NONCE_BYTES} bytes, got ${nonce.byteLength}`);
}

/** Encrypts `plaintext` into `out`, which must be exactly plaintext.byteLength + AEAD_TAG_BYTES long: ciphertext ‖ tag. */
export function aeadSeal(out: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): void {
  checkInputs(key, nonce);
  if (out.byteLength !== plaintext.byteLength + AEAD_TAG_BYTES) throw new RangeError('the output must hold the ciphertext and the tag exactly');
  const lib = viaSodium(plaintext.byteLength);
  if (lib !== null) {
    lib.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce, key);
    return;
  }
  const { subkey, chachaNonce } = derive(key, nonce);
  const cipher = createCipheriv('chacha20-poly1305', subkey, chachaNonce, { authTagLength: AEAD_TAG_BYTES });
  subkey.fill(0); // the cipher holds its own copy
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength });
  const body = cipher.update(plaintext);
  out.set(body, 0);
  const final = cipher.final(); // a stream cipher: nothing is held back
  out.set(final, body.byteLength);
  out.set(cipher.getAuthTag(), plaintext.byteLength);
}

/**
 * Decrypts ciphertext ‖ tag (`sealed`) and returns the plaintext in a Buffer of its own, or null when it does not
 * authenticate under `key` with `nonce` and `ad` (or is shorter than a tag).
 */
export function aeadOpen(sealed: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer | null {
  checkInputs(key, nonce);
  if (sealed.byteLength < AEAD_TAG_BYTES) return null;
  const plaintextBytes = sealed.byteLength - AEAD_TAG_BYTES;
  const lib = viaSodium(plaintextBytes);
  if (lib !== null) {
    // Its own memory (not the pool's): a large body decoded from it is kept as a view of it.
    const plaintext = Buffer.allocUnsafeSlow(plaintextBytes);
    try {
      lib.crypto_aead_xchacha20poly1305_ietf_decrypt(plaintext, null, sealed, ad, nonce, key);
    } catch {
      plaintext.fill(0);
      return null;
    }
    return plaintext;
  }
  let updated: Buffer | undefined;
  try {
    const { subkey, chachaNonce } = derive(key, nonce);
    const decipher = createDecipheriv('chacha20-poly1305', subkey, chachaNonce, { authTagLength: AEAD_TAG_BYTES });
    subkey.fill(0);
    decipher.setAAD(ad, { plaintextLength: plaintextBytes });
    decipher.setAuthTag(sealed.subarray(plaintextBytes));
    updated = decipher.update(sealed.subarray(0, plaintextBytes));
    const final = decipher.final(); // authenticates; a stream cipher gives no bytes here
    return final.byteLength === 0 ? updated : Buffer.concat([updated, final]);
  } catch {
    updated?.fill(0); // deciphered but not authentic: not left readable
    return null;
  }
}
