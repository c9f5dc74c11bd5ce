import { randomFillSync } from 'node:crypto';
import { sha256Hex, viewAsBuffer, type CacheEntry } from '../cache/entry.js';
import { shareHeaderValues } from '../cache/header-values.js';
import { CacheError } from '../errors.js';
import { decodeStrictCbor, withCbor } from './cbor.js';
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES, aeadOpen, aeadSeal } from './entry-aead.js';
import { isHeaderName, isHeaderValue, isResolvedHeaders, isWireHeader, MAX_HEADERS, type HeaderTableWriter } from './header-table.js';
import { PROTOCOL } from './wire.js';

/**
 * An entry sealed for the wire: XChaCha20-Poly1305 (entry-aead.ts) under the scope's entry key.
 *
 * Guarantee: `openEntry` returns an entry only if all of these hold, checked in this order, and otherwise throws
 * `PeerEntryRejected` naming the first that failed:
 *   1. 'decrypt'  it authenticates and decrypts under the scope's key, with the asked cache key and this protocol
 *                 version as additional data (so an entry sealed for another key, scope or version fails here);
 *   2. 'schema'   the plaintext is a CBOR map with exactly the CacheEntry fields, each of the right type and size;
 *   3. 'digest'   sha256(body) equals its digest;
 *   4. 'key'      the key inside the plaintext is the key that was asked;
 *   5. 'future'   storedAt is not later than now + the allowed clock skew (default 30 s);
 *   6. 'ttl'      expiresAt - storedAt is between 0 and maxEntryTtl.
 * A peer without the scope's entry key can neither read nor forge an entry; a peer with it cannot make us store
 * a body that does not match its digest, an entry for another key, or one that lives longer than allowed.
 *
 * Unsealed: `openPlainEntry` takes the same payload as a CBOR map carried in the `entry` frame itself (`payload`),
 * for an asker whose `get` asked for it (`plain`) of an owner that proved the scope to it on that stream
 * (asking.ts): both ends hold the scope's key, and the stream between them is noise's, so the seal would only
 * encrypt and authenticate again what noise already does between the two. Checks 2 to 6 hold the same; the body is
 * copied out of the received frame. Its headers travel indexed (header-table.ts) and reach `openPlainEntry` resolved
 * to a map by the stream's HeaderTableReader, which checked each pair against the header rules of check 2 as it built
 * it: for such a map (`isResolvedHeaders`) check 2 does not check them again.
 *
 * Layout: version byte (2) | 24-byte random nonce | ciphertext | 16-byte Poly1305 tag. The plaintext is canonical
 * CBOR. Version 1 (protocol 1.4.0 and before: a 12-byte nonce, AES-256-GCM) is refused ('decrypt').
 */

/** Version byte of the sealed layout (2: XChaCha20-Poly1305; 1 was AES-256-GCM). */
export const ENVELOPE_VERSION = 2;
/** Clock skew tolerated on a peer's storedAt, in ms. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 30_000;

const NONCE_BYTES = AEAD_NONCE_BYTES;
const TAG_BYTES = AEAD_TAG_BYTES;
const HEADER_BYTES = 1 + NONCE_BYTES;
/** Bodies of at least this many bytes are kept as views of the decrypted payload, smaller ones are copied out of it. */
const VIEW_BODY_FROM = 64 * 1024;

/** 'unsealed': an unsealed entry (`payload`) answered a get that did not ask for one. */
export type PeerEntryRejectionReason = 'decrypt' | 'schema' | 'digest' | 'key' | 'future' | 'ttl' | 'unsealed';

/** An entry from a peer failed verification; it was not used. `reason` says which check failed. */
export class PeerEntryRejected extends CacheError {
  readonly reason: PeerEntryRejectionReason;
  constructor(reason: PeerEntryRejectionReason, detail: string) {
    super('ERR_PEER_ENTRY_REJECTED', `Rejected an entry from a peer (${reason}): ${detail}. The entry was dropped; the request goes upstream instead.`);
    this.reason = reason;
  }
}

export interface OpenEntryOptions {
  /** Largest TTL (expiresAt - storedAt) accepted, in seconds (`p2p.maxEntryTtl`). */
  maxEntryTtlSeconds: number;
  /** Clock in ms since the epoch. Default: Date.now. */
  now?: () => number;
  /** How far in the future storedAt may be, in ms. Default: 30 000. */
  maxClockSkewMs?: number;
}

function additionalData(key: string): Buffer {
  return Buffer.from(`${PROTOCOL} entry v${ENVELOPE_VERSION}\0${key}`, 'utf8');
}

function checkEntryKey(entryKey: Uint8Array): void {
  if (entryKey.byteLength !== AEAD_KEY_BYTES) throw new TypeError(`an entry key must be 32 bytes, got ${entryKey.byteLength}`);
}

/** Random bytes drawn ahead for nonces: one CSPRNG call per 341 nonces instead of one per nonce. */
const noncePool = Buffer.alloc(NONCE_BYTES * 341);
let noncePoolAt = noncePool.byteLength;

/** A fresh random nonce. Each pooled byte is handed out once; the view is used (copied) before the pool refills. */
function freshNonce(): Uint8Array {
  if (noncePoolAt + NONCE_BYTES > noncePool.byteLength) {
    randomFillSync(noncePool);
    noncePoolAt = 0;
  }
  const nonce = noncePool.subarray(noncePoolAt, noncePoolAt + NONCE_BYTES);
  noncePoolAt += NONCE_BYTES;
  return nonce;
}

/**
 * Seals any CBOR-encodable payload for `key`. Low level: production code calls `sealEntry`; tests use this to
 * play a peer that holds the key but sends a malformed entry.
 */
export function sealPayload(payload: unknown, key: string, entryKey: Uint8Array): Uint8Array {
  checkEntryKey(entryKey);
  const nonce = freshNonce();
  // The CBOR plaintext is encrypted straight from the encoder's buffer (no copy of it is made) into one buffer of
  // the layout's exact size; every byte of it is written, so it need not be zeroed first.
  return withCbor(payload, (plaintext) => {
    const size = HEADER_BYTES + plaintext.byteLength + TAG_BYTES;
    const buffer = Buffer.allocUnsafeSlow(size);
    const out = new Uint8Array(buffer.buffer, buffer.byteOffset, size);
    out[0] = ENVELOPE_VERSION;
    out.set(nonce, 1);
    aeadSeal(out.subarray(HEADER_BYTES), plaintext, additionalData(key), nonce, entryKey);
    return out;
  });
}

const REQUIRED_FIELDS = ['key', 'body', 'digest', 'storedAt', 'expiresAt', 'status', 'headers'] as const;
const OPTIONAL_FIELDS = ['etag', 'lastModified'] as const;
const ALLOWED_FIELDS = new Set<string>([...REQUIRED_FIELDS, ...OPTIONAL_FIELDS]);
const MAX_KEY = 8 * 1024;
const MAX_VALIDATOR = 1024;

/** The entry's body as the payload carries it. The one place that knows the body's type. */
function bodyForWire(entry: CacheEntry): unknown {
  return entry.body;
}

/**
 * The headers an asker's schema accepts (see toEntryPayload): lowercase token names, single-line values of at
 * most 16 KiB, at most 256 of them, in the entry's order; the others are dropped, never sent.
 */
function headersForWire(headers: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const entries = Object.entries(headers);
  // Most often every header passes: the entry's own (frozen) headers are sent as they are. A copy built key by key
  // (an entry has some 25 headers) was most of the cost of an owner's answer before it was encoded.
  if (entries.length <= MAX_HEADERS && entries.every(([name, value]) => isWireHeader(name, value))) return headers;
  const kept: Record<string, string> = {};
  let count = 0;
  for (const [name, value] of entries) {
    if (count >= MAX_HEADERS) break;
    if (!isWireHeader(name, value)) continue;
    kept[name] = value;
    count++;
  }
  return kept;
}

/** A validator (etag, lastModified) the schema accepts, or undefined (left out) when it is too long. */
function validatorForWire(value: string | undefined): string | undefined {
  return typeof value === 'string' && value.length <= MAX_VALIDATOR ? value : undefined;
}

/**
 * Seals `entry`, the answer for cache key `key`, under the scope's entry key. What an asker's schema
 * would refuse is trimmed first (headers it does not accept, a validator over 1 KiB), so an honest owner never
 * sends an entry that gets it struck; the digest covers the body only, which is sent whole.
 */
export function sealEntry(entry: CacheEntry, key: string, entryKey: Uint8Array): Uint8Array {
  return sealPayload(entryPayload(entry, key), key, entryKey);
}

/**
 * The payload of `entry` as the answer for `key`: what `sealEntry` seals, and what an unsealed `entry` frame carries
 * (`payload`) to an asker that asked for it. Trimmed to the schema as `sealEntry` says. With `headerTable` (an
 * unsealed answer, on the stream that writer belongs to) the headers go indexed (header-table.ts): the payload must
 * then be sent on that stream before the writer encodes another.
 */
export function entryPayload(entry: CacheEntry, key: string, headerTable?: HeaderTableWriter): Record<string, unknown> {
  // The fields in canonical CBOR order (by length, then bytewise: key, body, etag, digest, status, headers, storedAt,
  // expiresAt, lastModified), which the encoder then only checks instead of sorting.
  const etag = validatorForWire(entry.etag);
  const payload: Record<string, unknown> = etag === undefined ? { key, body: bodyForWire(entry) } : { key, body: bodyForWire(entry), etag };
  payload.digest = entry.digest;
  payload.status = entry.status;
  payload.headers = headerTable === undefined ? headersForWire(entry.headers) : headerTable.encode(entry.headers);
  payload.storedAt = entry.storedAt;
  payload.expiresAt = entry.expiresAt;
  const lastModified = validatorForWire(entry.lastModified);
  if (lastModified !== undefined) payload.lastModified = lastModified;
  return payload;
}

/**
 * An upper bound of the bytes `entryPayload(entry, key)` encodes to (every character counted as 3 UTF-8 bytes, plus
 * the map's framing): whether an unsealed answer fits in one frame is decided without encoding it.
 */
export function payloadBytesBound(entry: CacheEntry, key: string): number {
  let chars = key.length + (entry.etag?.length ?? 0) + (entry.lastModified?.length ?? 0);
  let count = 0;
  for (const name in entry.headers) {
    chars += name.length + (entry.headers[name]?.length ?? 0);
    count++;
  }
  return entry.body.byteLength + 3 * chars + 9 * count + 256;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/**
 * Validates the decrypted payload's shape; throws PeerEntryRejected('schema'). Returns the key it names and the
 * entry as `openEntry` returns it (not frozen yet): built once, its headers the decoded map itself (a fresh object
 * of the decoder's, frozen by `checked` once its values are shared), its body a view of the plaintext.
 */
function toEntryPayload(value: unknown): { key: string; entry: Mutable<CacheEntry> } {
  const fail = (detail: string): never => {
    throw new PeerEntryRejected('schema', detail);
  };
  if (!isPlainObject(value)) return fail('the payload is not a map');
  for (const field of Object.keys(value)) if (!ALLOWED_FIELDS.has(field)) fail(`unexpected field ${JSON.stringify(field.slice(0, 40))}`);
  for (const field of REQUIRED_FIELDS) if (!Object.hasOwn(value, field)) fail(`missing field ${field}`);
  const { key, body, digest, storedAt, expiresAt, status, headers, etag, lastModified } = value;
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY) fail('key is not a string of 1 to 8192 characters');
  if (!(body instanceof Uint8Array)) fail('body is not a byte string');
  if (typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest)) fail('digest is not 64 lowercase hex characters');
  if (!Number.isSafeInteger(storedAt) || (storedAt as number) < 0) fail('storedAt is not a non-negative integer');
  if (!Number.isSafeInteger(expiresAt) || (expiresAt as number) < 0) fail('expiresAt is not a non-negative integer');
  if (!Number.isInteger(status) || (status as number) < 100 || (status as number) > 599) fail('status is not an HTTP status');
  if (!isPlainObject(headers)) return fail('headers is not a map');
  // Headers resolved from a stream's header table (header-table.ts) were checked against these rules as they came.
  if (!isResolvedHeaders(headers)) {
    const names = Object.keys(headers);
    if (names.length > MAX_HEADERS) fail(`more than ${MAX_HEADERS} headers`);
    for (const name of names) {
      const v = headers[name];
      if (!isHeaderName(name)) fail(`header name ${JSON.stringify(name.slice(0, 40))} is not a lowercase token`);
      if (!isHeaderValue(v)) fail(`header ${name} is not a single-line string`);
    }
  }
  if (etag !== undefined && (typeof etag !== 'string' || etag.length > MAX_VALIDATOR)) fail('etag is not a short string');
  if (lastModified !== undefined && (typeof lastModified !== 'string' || lastModified.length > MAX_VALIDATOR)) fail('lastModified is not a short string');
  const entry: Mutable<CacheEntry> = {
    body: viewAsBuffer(body as Uint8Array), // a view of the decrypted plaintext, as a Buffer like every other tier's
    digest: digest as string,
    storedAt: storedAt as number,
    expiresAt: expiresAt as number,
    status: status as number,
    // A plain object the decoder made for this payload alone (never a prototype but Object's): frozen by `checked`.
    headers: headers as Record<string, string>,
  };
  if (etag !== undefined) entry.etag = etag as string;
  if (lastModified !== undefined) entry.lastModified = lastModified as string;
  return { key: key as string, entry };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Opens and verifies a sealed entry received as the answer for `key` (see the module guarantee for the checks
 * and their order). Throws PeerEntryRejected; never anything else.
 */
export function openEntry(sealed: Uint8Array, key: string, entryKey: Uint8Array, options: OpenEntryOptions): CacheEntry {
  checkEntryKey(entryKey);
  if (sealed.byteLength < HEADER_BYTES + TAG_BYTES) throw new PeerEntryRejected('decrypt', `${sealed.byteLength} bytes is too short for a sealed entry`);
  if (sealed[0] !== ENVELOPE_VERSION) throw new PeerEntryRejected('decrypt', `unknown envelope version ${sealed[0]}`);
  const plaintext = aeadOpen(sealed.subarray(HEADER_BYTES), additionalData(key), sealed.subarray(1, HEADER_BYTES), entryKey);
  if (plaintext === null) throw new PeerEntryRejected('decrypt', 'it does not authenticate under this scope\'s key for this cache key');

  let decoded: unknown;
  try {
    // The plaintext is this call's own buffer: a large body comes back as a view of it, not a copy (the rest of
    // the plaintext, its headers, then stays in memory with it: a small body is copied rather than carry that).
    decoded = decodeStrictCbor(plaintext, { viewBytesFrom: VIEW_BODY_FROM });
  } catch (err) {
    throw new PeerEntryRejected('schema', `the payload is not canonical CBOR (${err instanceof Error ? err.message.slice(0, 120) : 'decode failed'})`);
  }
  return checked(toEntryPayload(decoded), key, options);
}

/**
 * Verifies an unsealed payload (the `payload` of an `entry` frame, decoded with the frame) received as the answer for
 * `key`: checks 2 to 6 of the module guarantee, in that order. The body is copied, so the entry holds none of the
 * received message. Throws PeerEntryRejected; never anything else.
 */
export function openPlainEntry(payload: unknown, key: string, options: OpenEntryOptions): CacheEntry {
  const opened = toEntryPayload(payload);
  // A buffer of its own (not a slice of Buffer's shared pool, nor a view of the frame): an entry lives long.
  const body = Buffer.allocUnsafeSlow(opened.entry.body.byteLength);
  body.set(opened.entry.body);
  opened.entry.body = body;
  return checked(opened, key, options);
}

/** Checks 3 to 6 of the module guarantee on a payload that passed the schema; the entry, frozen. */
function checked({ key: payloadKey, entry }: { key: string; entry: Mutable<CacheEntry> }, key: string, options: OpenEntryOptions): CacheEntry {
  if (sha256Hex(entry.body) !== entry.digest) throw new PeerEntryRejected('digest', 'sha256 of the body does not match its digest');
  if (payloadKey !== key) throw new PeerEntryRejected('key', 'it is the answer for another cache key');
  const now = (options.now ?? Date.now)();
  const skew = options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
  if (entry.storedAt > now + skew) {
    throw new PeerEntryRejected('future', `storedAt is ${entry.storedAt - now} ms in the future (at most ${skew} ms of clock skew is allowed)`);
  }
  const ttlMs = entry.expiresAt - entry.storedAt;
  if (ttlMs < 0 || ttlMs > options.maxEntryTtlSeconds * 1000) {
    throw new PeerEntryRejected('ttl', `its TTL of ${ttlMs / 1000} s is outside 0..${options.maxEntryTtlSeconds} s (p2p.maxEntryTtl)`);
  }
  // Only an entry that passed every check shares its header values (header-values.ts): refused ones never churn the table.
  // Resolved headers hold shared values already (the stream's table took them from it).
  const headers = entry.headers as Record<string, string>;
  entry.headers = Object.freeze(isResolvedHeaders(headers) ? headers : shareHeaderValues(headers));
  return Object.freeze(entry);
}
