import '../src/polyfills.js';
import { randomBytes } from 'node:crypto';
import { noise } from '@chainsafe/libp2p-noise';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { expect } from 'chai';
import { createLibp2p } from 'libp2p';
import { Uint8ArrayList } from 'uint8arraylist';
import { fleetNoiseCrypto, SODIUM_BELOW } from '../src/p2p/noise-crypto.js';
import { ECHO_SIZES, echoing, exchange } from './support/libp2p-echo.js';

/**
 * Noise's crypto for the fleet (noise-crypto.ts): libsodium's ChaCha20-Poly1305 on short messages gives the same
 * bytes as noise's own crypto, in both directions, for every size on both sides of the bound and of noise's own
 * 1,200-byte switch, from contiguous bytes and from lists of chunks, in place or not; a message altered anywhere
 * (ciphertext, tag, nonce, additional data, key) is refused and no plaintext comes back. Real libp2p nodes, one
 * with this crypto and one with noise's default, handshake and exchange messages both ways.
 */

const SIZES = [0, 1, 64, 1_199, 1_200, 4_862, SODIUM_BELOW - 17, SODIUM_BELOW - 16, SODIUM_BELOW - 1, SODIUM_BELOW, 40_000, 65_519];
const PROTOCOL = '/github-cache-spec/noise-crypto/1.0.0';

function crypto() {
  const made = fleetNoiseCrypto();
  if (made === undefined) throw new Error('sodium-native did not load: it is an optional dependency with a prebuild for this platform');
  return made;
}

const bytes = (data: Uint8Array | Uint8ArrayList): Buffer => Buffer.from(data.subarray());

/** The same bytes as a list of three chunks. */
function chunked(data: Uint8Array): Uint8ArrayList {
  const a = Math.floor(data.byteLength / 3);
  const b = Math.floor((2 * data.byteLength) / 3);
  return new Uint8ArrayList(data.subarray(0, a), data.subarray(a, b), data.subarray(b));
}

describe('noise crypto with libsodium (same AEAD as noise\'s own)', function () {
  this.timeout(60_000);
  const key = new Uint8Array(randomBytes(32));
  const nonce = new Uint8Array(randomBytes(12));
  const ad = new Uint8Array(randomBytes(32));

  it('loads where sodium-native is installed', () => {
    expect(fleetNoiseCrypto()).to.not.equal(undefined);
  });

  for (const size of SIZES) {
    it(`${size} B: encrypts to noise's own bytes, and each decrypts the other's (contiguous and chunked, in place and not)`, () => {
      const fleet = crypto();
      const plaintext = new Uint8Array(randomBytes(size));
      const ours = bytes(fleet.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key));
      const theirs = bytes(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key));
      expect(ours.equals(theirs), 'ciphertext').to.equal(true);
      expect(bytes(fleet.chaCha20Poly1305Encrypt(chunked(plaintext), nonce, ad, key)).equals(theirs), 'from chunks').to.equal(true);
      expect(bytes(defaultCrypto.chaCha20Poly1305Decrypt(ours, nonce, ad, key)).equals(Buffer.from(plaintext)), 'noise opens ours').to.equal(true);
      expect(bytes(fleet.chaCha20Poly1305Decrypt(theirs, nonce, ad, key)).equals(Buffer.from(plaintext)), 'we open noise\'s').to.equal(true);
      expect(bytes(fleet.chaCha20Poly1305Decrypt(chunked(theirs), nonce, ad, key)).equals(Buffer.from(plaintext)), 'from chunks').to.equal(true);
      // In place, as noise's stream decrypts: the destination is the ciphertext's own bytes without the tag.
      const own = new Uint8Array(theirs);
      const opened = fleet.chaCha20Poly1305Decrypt(own, nonce, ad, key, own.subarray(0, own.byteLength - 16));
      expect(bytes(opened).equals(Buffer.from(plaintext)), 'in place').to.equal(true);
    });
  }

  for (const size of [0, 4_862, SODIUM_BELOW + 100]) {
    it(`${size} B: refuses a message altered in its ciphertext, tag, nonce, additional data or key, and returns no plaintext`, () => {
      const fleet = crypto();
      const plaintext = new Uint8Array(randomBytes(size));
      const sealed = bytes(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, key));
      const flip = (data: Uint8Array, at: number) => {
        const copy = new Uint8Array(data);
        copy[at] = copy[at]! ^ 1;
        return copy;
      };
      const cases: Array<[string, () => unknown]> = [
        ['tag', () => fleet.chaCha20Poly1305Decrypt(flip(sealed, sealed.byteLength - 1), nonce, ad, key)],
        ['nonce', () => fleet.chaCha20Poly1305Decrypt(sealed, flip(nonce, 0), ad, key)],
        ['additional data', () => fleet.chaCha20Poly1305Decrypt(sealed, nonce, flip(ad, 5), key)],
        ['key', () => fleet.chaCha20Poly1305Decrypt(sealed, nonce, ad, flip(key, 31))],
        ['too short', () => fleet.chaCha20Poly1305Decrypt(sealed.subarray(0, 15), nonce, ad, key)],
      ];
      if (size > 0) {
        const altered = flip(sealed, 0);
        cases.push(['ciphertext, in place', () => fleet.chaCha20Poly1305Decrypt(altered, nonce, ad, key, altered.subarray(0, altered.byteLength - 16))]);
      }
      for (const [what, open] of cases) expect(open, what).to.throw(Error);
    });
  }

  describe('two libp2p nodes, one with this crypto, one with noise\'s own', () => {
    let nodes: Libp2p[] = [];
    afterEach(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      nodes = [];
    });

    const node = (withSodium: boolean) => createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [withSodium ? noise({ crypto: crypto() }) : noise()],
      streamMuxers: [yamux({ enableKeepAlive: false })],
      connectionMonitor: { enabled: false },
    });

    for (const dialer of ['libsodium', 'noise\'s own'] as const) {
      it(`handshake and exchange messages of 1 B to 1 MiB both ways, the node with ${dialer} crypto dialing`, async () => {
        const fleet = await node(true);
        const stock = await node(false);
        nodes = [fleet, stock];
        await Promise.all(nodes.map((n) => echoing(n, PROTOCOL)));
        const [from, to] = dialer === 'libsodium' ? [fleet, stock] : [stock, fleet];
        await exchange(from, to, PROTOCOL, [...ECHO_SIZES, 1_199, SODIUM_BELOW]);
      });
    }
  });
});
