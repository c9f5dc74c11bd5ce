import { isUtf8 } from 'node:buffer';
import { decode as cborgDecode } from 'cborg';
import { STRICT_CBOR_DECODE } from './strict-cbor.js';

/**
 * Strict CBOR decoding for frames and sealed payloads: cborg's values, read directly for the plain values this
 * protocol is made of (the encoding side is cbor.ts).
 *
 * Guarantee: `decodeStrictCbor(bytes)` returns a value deep-equal to cborg's `decode(bytes, STRICT_CBOR_DECODE)`,
 * or throws what cborg throws. Input is read directly only when it is, byte for byte, strict CBOR made of
 * definite-length maps with distinct text keys, arrays, valid UTF-8 text, byte strings and integers in the safe
 * range, all of them in shortest form, with no trailing byte; anything else (including everything cborg refuses)
 * is handed to cborg, which decides. So the direct path never accepts what cborg would refuse, and the validators
 * that run on the result (wire.ts, envelope.ts) see the same values either way.
 *
 * Why hand-written rather than cborg alone: docs/benchmarks.md, section "P2P codecs", CBOR rows "decode entry"
 * (cborg 2.7x slower: wire.ts takes the sealed bytes as a view, cborg copies them) and "decode get" (1.4x).
 * bench/p2p-codec.ts measures it.
 */

const MAX_DEPTH = 32;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO_32 = 0x1_0000_0000;

/** Marks "not for the direct path": the caller falls back to cborg. */
class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported('unsupported by the direct path');

interface Cursor {
  readonly data: Uint8Array;
  readonly view: Buffer;
  /** Byte strings at least this long are views of `data`, not copies. */
  readonly viewFrom: number;
  at: number;
}

export interface DecodeOptions {
  /**
   * Byte strings of at least this many bytes come back as views of the input (plain Uint8Arrays over its memory)
   * instead of copies: for input that nothing writes to afterwards (a received frame), this spares copying a
   * large payload. Default: every byte string is a copy, as cborg makes.
   */
  viewBytesFrom?: number;
}

/** The argument of a head byte (`minor`), in shortest form and within the safe range; else UNSUPPORTED. */
function argument(c: Cursor, minor: number): number {
  if (minor < 24) return minor;
  const { data, view } = c;
  const at = c.at;
  let value: number;
  switch (minor) {
    case 24:
      if (at + 1 > data.byteLength) throw UNSUPPORTED;
      value = data[at]!;
      c.at = at + 1;
      if (value < 24) throw UNSUPPORTED;
      return value;
    case 25:
      if (at + 2 > data.byteLength) throw UNSUPPORTED;
      value = view.readUInt16BE(at);
      c.at = at + 2;
      if (value < 0x100) throw UNSUPPORTED;
      return value;
    case 26:
      if (at + 4 > data.byteLength) throw UNSUPPORTED;
      value = view.readUInt32BE(at);
      c.at = at + 4;
      if (value < 0x1_0000) throw UNSUPPORTED;
      return value;
    case 27: {
      if (at + 8 > data.byteLength) throw UNSUPPORTED;
      const high = view.readUInt32BE(at);
      if (high === 0 || high > 0x1f_ffff) throw UNSUPPORTED; // shortest form; at most 2^53 - 1
      value = high * TWO_32 + view.readUInt32BE(at + 4);
      c.at = at + 8;
      return value;
    }
    default:
      throw UNSUPPORTED; // 28-30 reserved, 31 indefinite length
  }
}

function text(c: Cursor, length: number): string {
  const { data, view } = c;
  const start = c.at;
  const end = start + length;
  if (end > data.byteLength) throw UNSUPPORTED;
  c.at = end;
  if (length < 256) {
    // Short text (keys, ids, header values, cache keys): plain ASCII needs no UTF-8 validation.
    let i = start;
    while (i < end && data[i]! < 0x80) i++;
    if (i === end) return view.toString('latin1', start, end);
  }
  const bytes = data.subarray(start, end);
  // cborg decodes text with TextDecoder, which drops a leading BOM: leave such text (and invalid UTF-8) to it.
  if (!isUtf8(bytes) || (length >= 3 && data[start] === 0xef && data[start + 1] === 0xbb && data[start + 2] === 0xbf)) throw UNSUPPORTED;
  return view.toString('utf8', start, end);
}

/** Map keys of this protocol's frames and payloads, by length: read as these very strings (no new string to intern). */
const KNOWN_KEYS: ReadonlyMap<number, ReadonlyArray<readonly [Uint8Array, string]>> = (() => {
  const keys = ['type', 'id', 'key', 'proof', 'sealed', 'version', 'challenge', 'addrs', 'peers', 'scopes', 'reason', 'message', 'body', 'digest',
    'storedAt', 'expiresAt', 'status', 'headers', 'etag', 'lastModified', 'content-type', 'cache-control', 'vary', 'date', 'last-modified',
    'x-github-media-type', 'content-length', 'link', 'x-accepted-oauth-scopes', 'x-oauth-scopes', 'content-encoding',
    // The other headers api.github.com puts on most answers (@octokit/fixtures' recorded traffic), which entries keep.
    'connection', 'content-security-policy', 'strict-transport-security', 'x-content-type-options', 'x-frame-options',
    'x-github-request-id', 'x-xss-protection', 'access-control-allow-origin', 'access-control-expose-headers', 'referrer-policy',
    'location', 'server', 'x-github-api-version-selected', 'github-authentication-token-expiration', 'accept-ranges', 'transfer-encoding'];
  const byLength = new Map<number, Array<readonly [Uint8Array, string]>>();
  for (const key of keys) {
    const list = byLength.get(key.length) ?? [];
    list.push([Buffer.from(key, 'latin1'), key]);
    byLength.set(key.length, list);
  }
  return byLength;
})();

function mapKey(c: Cursor, length: number): string {
  const known = KNOWN_KEYS.get(length);
  if (known !== undefined && c.at + length <= c.data.byteLength) {
    const { data, at } = c;
    outer: for (const [bytes, key] of known) {
      for (let i = 0; i < length; i++) if (data[at + i] !== bytes[i]) continue outer;
      c.at = at + length;
      return key;
    }
  }
  return text(c, length);
}

function read(c: Cursor, depth: number): unknown {
  if (depth > MAX_DEPTH || c.at >= c.data.byteLength) throw UNSUPPORTED;
  const head = c.data[c.at++]!;
  const major = head >> 5;
  const minor = head & 0x1f;
  switch (major) {
    case 0:
      return argument(c, minor);
    case 1: {
      const n = argument(c, minor);
      if (n >= MAX_SAFE) throw UNSUPPORTED; // -1 - n must stay safe
      return -1 - n;
    }
    case 2: {
      const length = argument(c, minor);
      const end = c.at + length;
      if (end > c.data.byteLength) throw UNSUPPORTED;
      // a copy (a plain Uint8Array), as cborg makes; or a view, when asked for
      const bytes = length >= c.viewFrom ? c.data.subarray(c.at, end) : c.data.slice(c.at, end);
      c.at = end;
      return bytes;
    }
    case 3:
      return text(c, argument(c, minor));
    case 4: {
      const length = argument(c, minor);
      if (length > c.data.byteLength - c.at) throw UNSUPPORTED;
      const items: unknown[] = [];
      for (let i = 0; i < length; i++) items.push(read(c, depth + 1));
      return items;
    }
    case 5: {
      const length = argument(c, minor);
      if (length * 2 > c.data.byteLength - c.at) throw UNSUPPORTED;
      const record: Record<string, unknown> = {};
      for (let i = 0; i < length; i++) {
        if (c.at >= c.data.byteLength) throw UNSUPPORTED;
        const keyHead = c.data[c.at++]!;
        if (keyHead >> 5 !== 3) throw UNSUPPORTED; // only text keys
        const key = mapKey(c, argument(c, keyHead & 0x1f));
        if (key === '__proto__' || Object.hasOwn(record, key)) throw UNSUPPORTED;
        record[key] = read(c, depth + 1);
      }
      return record;
    }
    default:
      throw UNSUPPORTED; // tags, floats, simple values
  }
}

/** Returned by decodeDirect for input left to cborg. */
export const NOT_DIRECT: unique symbol = Symbol('not direct');

/** The direct path of decodeStrictCbor alone: the value, or NOT_DIRECT when the input is left to cborg. Exported for specs. */
export function decodeDirect(bytes: Uint8Array, options: DecodeOptions = {}): unknown {
  // A plain Uint8Array over the input, so that slice() copies (Buffer#slice would make a view).
  const data = Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
  const view = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const c: Cursor = { data, view, viewFrom: options.viewBytesFrom ?? Infinity, at: 0 };
  try {
    const value = read(c, 0);
    return c.at === bytes.byteLength ? value : NOT_DIRECT;
  } catch (err) {
    if (err !== UNSUPPORTED) throw err;
    return NOT_DIRECT;
  }
}

/** cborg's `decode(bytes, STRICT_CBOR_DECODE)`: the same value, or the same error. */
export function decodeStrictCbor(bytes: Uint8Array, options: DecodeOptions = {}): unknown {
  const value = decodeDirect(bytes, options);
  return value !== NOT_DIRECT ? value : cborgDecode(bytes, STRICT_CBOR_DECODE);
}
