import { normalizeUrl } from '../cache/request-key.js';
import { CacheError } from '../errors.js';
import { decodeStrictCbor } from './cbor.js';
import { errorMessage } from './limits.js';

/**
 * The notice of `/github-cache/invalidate/1.0.0` (invalidation.ts): one length-prefixed CBOR map on a peer's
 * notice stream, its limits, and its strict decoder.
 *
 * Guarantee: `decodeNotices` returns well-typed notices or throws, whatever the bytes: not strict canonical CBOR,
 * another shape, an extra or missing field, a field above its limit, a URL that is not a normalized written
 * resource (absolute http(s), no query, fragment or trailing slash), or a scope that is not a scope id
 * (NoticeFormatError, nothing else). It never
 * returns a partly checked value. A notice names URLs and scope ids only: never a token or a cache key.
 */

export const INVALIDATE_PROTOCOL = '/github-cache/invalidate/1.0.0';
/** Largest notice, in bytes (after its length prefix). */
export const MAX_NOTICE_BYTES = 64 * 1024;
export const MAX_URLS_PER_NOTICE = 32;
export const MAX_URL_LENGTH = 2048;
export const MAX_SCOPES_PER_URL = 16;
/** URLs a peer may have this node apply at once, and per second after that. */
export const NOTICE_BURST = 256;
export const NOTICE_RATE_PER_SECOND = 8;
/** URLs queued for one peer while its stream opens. */
export const MAX_QUEUED_PER_PEER = 1024;

/** Bytes of a length prefix (an unsigned varint) of any notice up to MAX_NOTICE_BYTES. */
export const MAX_PREFIX_BYTES = 3;

/** The length prefix at the start of `data`: its value and size; undefined if incomplete; 'bad' if longer than MAX_PREFIX_BYTES. */
export function readLengthPrefix(data: Uint8Array): { length: number; bytes: number } | undefined | 'bad' {
  let length = 0;
  let scale = 1;
  for (let at = 0; at < data.byteLength; at++) {
    if (at >= MAX_PREFIX_BYTES) return 'bad';
    const byte = data[at]!;
    length += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return { length, bytes: at + 1 };
    scale *= 128;
  }
  return data.byteLength >= MAX_PREFIX_BYTES ? 'bad' : undefined;
}

/** One written resource and the scopes whose entries of it the receiver should drop. */
export interface Notice {
  readonly url: string;
  readonly scopes: readonly string[];
}

/** A notice from a peer is not a valid notice of this protocol. Nothing in it was used. */
export class NoticeFormatError extends CacheError {
  constructor(detail: string) {
    super('ERR_P2P_NOTICE_FORMAT', `Invalid ${INVALIDATE_PROTOCOL} notice from a peer: ${detail}. Nothing of it was invalidated; the stream is closed.`);
  }
}

const SCOPE_ID = /^(anonymous|[0-9a-f]{32})$/;

/**
 * Decodes and checks one notice (the bytes after its length prefix): `{ notices: [{ url, scopes }] }` in strict canonical CBOR, within
 * the limits above, each URL an absolute http(s) URL already normalized, without query, fragment or trailing
 * slash. Throws NoticeFormatError on anything else; never returns a partly checked value.
 */
export function decodeNotices(bytes: Uint8Array): Notice[] {
  let value: unknown;
  try {
    value = decodeStrictCbor(bytes);
  } catch (err) {
    throw new NoticeFormatError(`not canonical CBOR (${errorMessage(err).slice(0, 120)})`);
  }
  if (!isMap(value) || Object.keys(value).length !== 1 || !Array.isArray(value.notices)) throw new NoticeFormatError('a notice must be a map with exactly notices (an array)');
  const list = value.notices as unknown[];
  if (list.length === 0 || list.length > MAX_URLS_PER_NOTICE) throw new NoticeFormatError(`notices must hold 1 to ${MAX_URLS_PER_NOTICE} items`);
  return list.map((item, i) => {
    if (!isMap(item) || Object.keys(item).length !== 2 || typeof item.url !== 'string' || !Array.isArray(item.scopes)) {
      throw new NoticeFormatError(`notices[${i}] must have exactly url (a string) and scopes (an array)`);
    }
    const url = item.url;
    if (url.length > MAX_URL_LENGTH || !isResourceUrl(url)) throw new NoticeFormatError(`notices[${i}].url is not a normalized resource URL`);
    const scopes = item.scopes as unknown[];
    if (scopes.length === 0 || scopes.length > MAX_SCOPES_PER_URL) throw new NoticeFormatError(`notices[${i}].scopes must hold 1 to ${MAX_SCOPES_PER_URL} items`);
    for (const scope of scopes) if (typeof scope !== 'string' || !SCOPE_ID.test(scope)) throw new NoticeFormatError(`notices[${i}].scopes holds something that is not a scope id`);
    return { url, scopes: scopes as string[] };
  });
}

/** Whether `url` is what local invalidation computes as a written resource: normalized, no query, fragment or trailing slash. */
export function isResourceUrl(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return false;
  if (parsed.search !== '' || parsed.hash !== '' || url.includes('?') || url.includes('#') || url.endsWith('/')) return false;
  try {
    return normalizeUrl(url) === url;
  } catch {
    return false;
  }
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}
