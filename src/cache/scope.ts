import { createHash, hkdfSync } from 'node:crypto';

/**
 * Token scopes. A scope id names "what this token can see" without revealing the token: it is a one-way,
 * domain-separated hash, safe to put in cache keys, stats, logs and messages to peers. The entry key is a
 * separate HKDF output of the same token: peers holding the token can decrypt a scope's entries, others
 * (even inside the private network) cannot. The token itself never leaves the process.
 */

/** The scope of requests made without a token. */
export const ANONYMOUS_SCOPE = 'anonymous';

const SCOPE_DOMAIN = 'github-p2p-cache/scope-id/v1\0';
const ENTRY_KEY_SALT = Buffer.from('github-p2p-cache/entry-key/v1', 'utf8');

/** A token's scope id: 32 hex characters (128 bits) of sha256 over a domain tag and the token. */
export function scopeIdOf(token: string | undefined): string {
  if (token === undefined || token === '') return ANONYMOUS_SCOPE;
  return createHash('sha256').update(SCOPE_DOMAIN).update(token, 'utf8').digest('hex').slice(0, 32);
}

/** The AEAD key (XChaCha20-Poly1305, entry-aead.ts) for a scope's entries on the wire, derived with HKDF-SHA256 from the token. */
export function entryKeyOf(token: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', Buffer.from(token, 'utf8'), ENTRY_KEY_SALT, Buffer.from(scopeIdOf(token), 'utf8'), 32));
}
