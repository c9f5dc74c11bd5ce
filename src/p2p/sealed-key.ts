import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { parseRequestKey } from '../cache/request-key.js';
import { PROTOCOL, WIRE_LIMITS } from './wire.js';

/**
 * A cache key sealed for an owner that has not proved the key's scope (a cold owner, see cold-owner.ts).
 *
 * Guarantee: the sealed form `sealed:<scopeId>:<base64url>` shows the scope id (which every member sees in
 * claims anyway) and the key's length, nothing else: the key is AES-256-GCM encrypted under a key derived (HKDF,
 * its own salt) from the scope's entry key, with the protocol and the scope id as additional data. So a member
 * without the scope learns no URL of it, and `openSealedKey` returns a key only to a holder of the scope, only
 * if it was sealed under that scope by a holder of it, and only if that key is of that scope.
 *
 * A sealed key goes with its tag (`keyTag`): HMAC-SHA256 of the key under a key derived (HKDF, its own salt) from
 * the scope's entry key. Every holder of the scope computes the same tag for a key, so an owner without the scope
 * (a blind owner, lease.ts) can tell that two asks are for the same key; it learns that equality and nothing else
 * (not the key, not its length: the tag is 32 bytes whatever the key), and cannot make a tag for a key of its own.
 */

const PREFIX = 'sealed:';
const SALT = Buffer.from('github-p2p-cache/sealed-key/v1', 'utf8');
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SEALED = /^sealed:(anonymous|[0-9a-f]{32}):([A-Za-z0-9_-]+)$/;

const keyKeys = new WeakMap<Uint8Array, Uint8Array>();
const TAG_SALT = Buffer.from('github-p2p-cache/key-tag/v1', 'utf8');
const tagKeys = new WeakMap<Uint8Array, Uint8Array>();

/** The tag of `key` (32 bytes), the same at every holder of its scope (`entryKey`: the scope's entry key). */
export function keyTag(key: string, entryKey: Uint8Array): Uint8Array {
  let tagKey = tagKeys.get(entryKey);
  if (tagKey === undefined) {
    tagKey = new Uint8Array(hkdfSync('sha256', entryKey, TAG_SALT, Buffer.from('tag', 'utf8'), 32));
    tagKeys.set(entryKey, tagKey);
  }
  return new Uint8Array(createHmac('sha256', tagKey).update(key, 'utf8').digest());
}

function keyKeyOf(entryKey: Uint8Array): Uint8Array {
  let keyKey = keyKeys.get(entryKey);
  if (keyKey === undefined) {
    keyKey = new Uint8Array(hkdfSync('sha256', entryKey, SALT, Buffer.from('key', 'utf8'), 32));
    keyKeys.set(entryKey, keyKey);
  }
  return keyKey;
}

function additionalData(scopeId: string): Buffer {
  return Buffer.from(`${PROTOCOL} sealed-key v1\0${scopeId}`, 'utf8');
}

/** Whether a `get`'s key is in the sealed form (not a request key: those never start with `sealed:`). */
export function isSealedKey(key: string): boolean {
  return key.startsWith(PREFIX);
}

/** The sealed form of `key` (of scope `scopeId`), or undefined when it would not fit a `get` frame. */
export function sealKey(key: string, scopeId: string, entryKey: Uint8Array): string | undefined {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyKeyOf(entryKey), nonce);
  cipher.setAAD(additionalData(scopeId));
  const body = Buffer.concat([nonce, cipher.update(key, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  const sealed = `${PREFIX}${scopeId}:${body.toString('base64url')}`;
  return sealed.length <= WIRE_LIMITS.keyLength ? sealed : undefined;
}

/** The scope id a sealed key names, or undefined when `sealed` is not well formed. */
export function sealedScopeOf(sealed: string): string | undefined {
  return SEALED.exec(sealed)?.[1];
}

/** The key inside `sealed`, or undefined when it does not open under `entryKey` (wrong scope, forged, malformed). */
export function openSealedKey(sealed: string, entryKey: Uint8Array): string | undefined {
  const match = SEALED.exec(sealed);
  if (match === null) return undefined;
  const scopeId = match[1]!;
  const body = Buffer.from(match[2]!, 'base64url');
  if (body.byteLength < NONCE_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyKeyOf(entryKey), body.subarray(0, NONCE_BYTES));
    decipher.setAAD(additionalData(scopeId));
    decipher.setAuthTag(body.subarray(body.byteLength - TAG_BYTES));
    const key = Buffer.concat([decipher.update(body.subarray(NONCE_BYTES, body.byteLength - TAG_BYTES)), decipher.final()]).toString('utf8');
    // The key must be a request key of the scope it was sealed under.
    return parseRequestKey(key)?.scopeId === scopeId ? key : undefined;
  } catch {
    return undefined;
  }
}
