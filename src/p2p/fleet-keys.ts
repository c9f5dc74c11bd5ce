import { hkdfSync } from 'node:crypto';

/**
 * Keys derived from the fleet's shared secret (`p2p.sharedSecret`).
 *
 * Guarantee: each key is a separate, domain-separated HKDF-SHA256 output of the secret, so learning one of them
 * (e.g. the anonymous entry key, which every member holds) reveals neither the secret nor the other key. The
 * secret itself never leaves the process and is never logged.
 *
 * - the handshake prologue (`p2p.membership` 'handshake', the default): bytes both ends of every connection
 *   hash into noise's handshake before its first message (noise's prologue). Noise authenticates the whole
 *   transcript, prologue included, so ends with different prologues fail the handshake at its second message: a
 *   node without the secret cannot complete a connection to the fleet. The prologue itself is never sent.
 * - the private-network key (`p2p.membership` 'pnet'): the 32-byte pre-shared key of `@libp2p/pnet`, in the
 *   swarm.key text format it parses (`/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>`); a node without the secret
 *   cannot complete a connection to the fleet.
 * - the anonymous entry key: the AEAD key of entries in the anonymous scope (public data fetched
 *   without a token). Every member holds it; it keeps such entries unreadable and unforgeable outside the fleet.
 */

const PSK_SALT = Buffer.from('github-p2p-cache/pnet-psk/v1', 'utf8');
const PROLOGUE_SALT = Buffer.from('github-p2p-cache/noise-prologue/v1', 'utf8');
/** Names what the prologue binds, so that it can never equal another application's prologue of 32 random bytes. */
const PROLOGUE_LABEL = Buffer.from('github-p2p-cache fleet membership v1\n', 'utf8');
const ANONYMOUS_ENTRY_KEY_SALT = Buffer.from('github-p2p-cache/anonymous-entry-key/v1', 'utf8');

function derive(secret: string, salt: Buffer, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', Buffer.from(secret, 'utf8'), salt, Buffer.from(info, 'utf8'), 32));
}

/** The `@libp2p/pnet` pre-shared key of the fleet, as the swarm.key bytes `preSharedKey({ psk })` expects. */
export function swarmKeyOf(sharedSecret: string): Uint8Array {
  const hex = Buffer.from(derive(sharedSecret, PSK_SALT, 'pnet')).toString('hex');
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${hex}`);
}

/** The noise prologue of the fleet's connections: a label, then a 32-byte key derived from the secret. */
export function handshakePrologueOf(sharedSecret: string): Uint8Array {
  const key = derive(sharedSecret, PROLOGUE_SALT, 'noise prologue');
  const prologue = new Uint8Array(PROLOGUE_LABEL.byteLength + key.byteLength);
  prologue.set(PROLOGUE_LABEL, 0);
  prologue.set(key, PROLOGUE_LABEL.byteLength);
  return prologue;
}

/** The AEAD key (XChaCha20-Poly1305) of anonymous-scope entries on the wire. */
export function anonymousEntryKeyOf(sharedSecret: string): Uint8Array {
  return derive(sharedSecret, ANONYMOUS_ENTRY_KEY_SALT, 'anonymous');
}
