import { hkdfSync } from 'node:crypto';

/**
 * Keys derived from the fleet's shared secret (`p2p.sharedSecret`).
 *
 * Guarantee: each key is a separate, domain-separated HKDF-SHA256 output of the secret, so learning one of them
 * (e.g. the anonymous entry key, which every member holds) reveals neither the secret nor the other key. The
 * secret itself never leaves the process and is never logged.
 *
 * - the private-network key: the 32-byte pre-shared key of `@libp2p/pnet`, in the swarm.key text format it
 *   parses (`/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>`); a node without the secret cannot complete a
 *   connection to the fleet.
 * - the anonymous entry key: the AEAD key of entries in the anonymous scope (public data fetched
 *   without a token). Every member holds it; it keeps such entries unreadable and unforgeable outside the fleet.
 */

const PSK_SALT = Buffer.from('github-p2p-cache/pnet-psk/v1', 'utf8');
const ANONYMOUS_ENTRY_KEY_SALT = Buffer.from('github-p2p-cache/anonymous-entry-key/v1', 'utf8');

function derive(secret: string, salt: Buffer, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', Buffer.from(secret, 'utf8'), salt, Buffer.from(info, 'utf8'), 32));
}

/** The `@libp2p/pnet` pre-shared key of the fleet, as the swarm.key bytes `preSharedKey({ psk })` expects. */
export function swarmKeyOf(sharedSecret: string): Uint8Array {
  const hex = Buffer.from(derive(sharedSecret, PSK_SALT, 'pnet')).toString('hex');
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${hex}`);
}

/** The AEAD key (XChaCha20-Poly1305) of anonymous-scope entries on the wire. */
export function anonymousEntryKeyOf(sharedSecret: string): Uint8Array {
  return derive(sharedSecret, ANONYMOUS_ENTRY_KEY_SALT, 'anonymous');
}
