import { encode as cborgEncode } from 'cborg';

export { decodeDirect, decodeStrictCbor, NOT_DIRECT, type DecodeOptions } from './cbor-decode.js';

/**
 * CBOR for frames and sealed payloads: cborg's bytes and cborg's values, at a fraction of cborg's cost for the
 * plain values this protocol is made of. This file encodes; cbor-decode.ts decodes (re-exported here).
 *
 * Guarantee: `encodeCbor(v)` returns exactly the bytes of cborg's `encode(v)` (its default, canonical options:
 * shortest integers and lengths, map keys ordered by encoded length then bytewise). Values are written directly
 * when they are made only of plain objects with string keys, arrays, well-formed strings, safe integers and
 * Uint8Arrays; anything else (floats, undefined, booleans, null, BigInt, Maps, other objects) goes to cborg.
 *
 * Why hand-written rather than cborg alone: docs/benchmarks.md, section "P2P codecs", CBOR rows "encode entry"
 * (cborg 1.7x slower) and "encode get" (1.5x). bench/p2p-codec.ts measures it.
 */

const MAX_DEPTH = 32;
const TWO_32 = 0x1_0000_0000;

/** Marks "not for the direct path": the caller falls back to cborg. */
class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported('unsupported by the direct path');

// ---------------------------------------------------------------- encoding

class Writer {
  buf = Buffer.allocUnsafe(64 * 1024);
  at = 0;

  ensure(bytes: number): void {
    if (this.at + bytes <= this.buf.byteLength) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.byteLength * 2, this.at + bytes));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }

  head(major: number, value: number): void {
    this.ensure(9);
    const buf = this.buf;
    if (value < 24) {
      buf[this.at++] = major | value;
    } else if (value < 0x100) {
      buf[this.at++] = major | 24;
      buf[this.at++] = value;
    } else if (value < 0x1_0000) {
      buf[this.at++] = major | 25;
      buf.writeUInt16BE(value, this.at);
      this.at += 2;
    } else if (value < TWO_32) {
      buf[this.at++] = major | 26;
      buf.writeUInt32BE(value, this.at);
      this.at += 4;
    } else {
      buf[this.at++] = major | 27;
      buf.writeUInt32BE(Math.floor(value / TWO_32), this.at);
      buf.writeUInt32BE(value % TWO_32, this.at + 4);
      this.at += 8;
    }
  }

  bytes(data: Uint8Array): void {
    this.head(0x40, data.byteLength);
    this.ensure(data.byteLength);
    this.buf.set(data, this.at);
    this.at += data.byteLength;
  }

  string(text: string): void {
    const length = text.length;
    if (length < 256) {
      // Short text (keys, ids, header values, cache keys): ASCII byte by byte, cheaper than Buffer#write's checks.
      const start = this.at;
      this.head(0x60, length);
      this.ensure(length);
      const buf = this.buf;
      let at = this.at;
      for (let i = 0; i < length; i++) {
        const code = text.charCodeAt(i);
        if (code > 0x7f) {
          this.at = start;
          return this.#utf8(text);
        }
        buf[at++] = code;
      }
      this.at = at;
      return;
    }
    this.#utf8(text);
  }

  #utf8(text: string): void {
    const length = Buffer.byteLength(text, 'utf8');
    this.head(0x60, length);
    this.ensure(length);
    this.at += this.buf.write(text, this.at, length, 'utf8');
  }
}

const writer = new Writer();

/** String.prototype.isWellFormed (Node 20; not in the ES2023 typings): no lone surrogate. */
function isWellFormed(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Map keys in cborg's order: by UTF-8 length, then bytewise (for ASCII keys: by length, then as strings). */
function asciiKeyOrder(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

function utf8KeyOrder(a: string, b: string): number {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return ab.byteLength !== bb.byteLength ? ab.byteLength - bb.byteLength : Buffer.compare(ab, bb);
}

/**
 * Puts map keys in cborg's order, in place. Keys already in that order (the frames the protocol builds list their
 * fields so) are only checked, in one pass: no sort, and none of the work arrays a sort allocates.
 */
function sortKeys(keys: string[]): void {
  let ascii = isAscii(keys[0]!);
  let ordered = true;
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    if (!isAscii(key)) ascii = false;
    if (ordered && asciiKeyOrder(keys[i - 1]!, key) > 0) ordered = false;
  }
  if (ascii && ordered) return;
  keys.sort(ascii ? asciiKeyOrder : utf8KeyOrder);
}

function write(value: unknown, depth: number): void {
  if (depth > MAX_DEPTH) throw UNSUPPORTED;
  switch (typeof value) {
    case 'string':
      if (!isWellFormed(value)) throw UNSUPPORTED;
      writer.string(value);
      return;
    case 'number':
      if (!Number.isSafeInteger(value)) throw UNSUPPORTED;
      if (value >= 0) writer.head(0x00, value);
      else writer.head(0x20, -1 - value);
      return;
    case 'object': {
      if (value instanceof Uint8Array) {
        if (value.constructor !== Uint8Array && !Buffer.isBuffer(value)) throw UNSUPPORTED;
        writer.bytes(value);
        return;
      }
      if (Array.isArray(value)) {
        writer.head(0x80, value.length);
        for (const item of value) write(item, depth + 1);
        return;
      }
      if (value === null) throw UNSUPPORTED;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw UNSUPPORTED;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      if (keys.length > 1) sortKeys(keys);
      writer.head(0xa0, keys.length);
      for (const key of keys) {
        if (!isWellFormed(key)) throw UNSUPPORTED;
        writer.string(key);
        write(record[key], depth + 1);
      }
      return;
    }
    default:
      throw UNSUPPORTED;
  }
}

/** While a view of the writer is lent out (withCbor), direct encoding is off: nothing may overwrite it. */
let lent = false;

/** Writes the CBOR of `value` into the writer from offset `start`; false when the value is left to cborg. */
function writeDirect(value: unknown, start: number): boolean {
  if (lent) return false;
  writer.at = start;
  try {
    write(value, 0);
    return true;
  } catch (err) {
    if (err !== UNSUPPORTED) throw err;
    return false;
  }
}

/** Copies writer bytes [from, writer.at) out, and does not keep a huge buffer alive for the sake of one huge value. */
function takeWritten(from: number): Uint8Array {
  const out = new Uint8Array(writer.at - from);
  out.set(writer.buf.subarray(from, writer.at));
  if (writer.buf.byteLength > 1024 * 1024) writer.buf = Buffer.allocUnsafe(64 * 1024);
  return out;
}

/** The direct path of encodeCbor alone: the bytes, or undefined when the value is left to cborg. Exported for specs. */
export function encodeDirect(value: unknown): Uint8Array | undefined {
  return writeDirect(value, 0) ? takeWritten(0) : undefined;
}

/** cborg's `encode(value)`, byte for byte. */
export function encodeCbor(value: unknown): Uint8Array {
  return encodeDirect(value) ?? cborgEncode(value);
}

/** Bytes of the unsigned varint (LEB128) that encodes `value`. */
export function varintLength(value: number): number {
  let bytes = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    bytes++;
  }
  return bytes;
}

/** Writes `value` as an unsigned varint at `offset`; returns the offset after it. */
export function writeVarint(value: number, into: Uint8Array, offset: number): number {
  while (value >= 128) {
    into[offset++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  into[offset++] = value;
  return offset;
}

/** Room left in front of a value for its varint length (enough for any safe integer). */
const PREFIX_ROOM = 8;

/** encodeCbor(value) preceded by its length as an unsigned varint (a length-prefixed frame), in one buffer. */
export function encodeCborLengthPrefixed(value: unknown): Uint8Array {
  if (writeDirect(value, PREFIX_ROOM)) {
    const length = writer.at - PREFIX_ROOM;
    const from = PREFIX_ROOM - varintLength(length);
    writeVarint(length, writer.buf, from);
    return takeWritten(from);
  }
  const encoded = cborgEncode(value);
  const out = new Uint8Array(varintLength(encoded.byteLength) + encoded.byteLength);
  out.set(encoded, writeVarint(encoded.byteLength, out, 0));
  return out;
}

/**
 * Calls `use` with encodeCbor(value) and returns what it returns. The bytes are a view that is valid only during
 * the call (no copy is made): `use` must consume them at once (e.g. encrypt them), not keep them.
 */
export function withCbor<T>(value: unknown, use: (bytes: Uint8Array) => T): T {
  if (!writeDirect(value, 0)) return use(cborgEncode(value));
  lent = true;
  try {
    return use(writer.buf.subarray(0, writer.at));
  } finally {
    lent = false;
    if (writer.buf.byteLength > 1024 * 1024) writer.buf = Buffer.allocUnsafe(64 * 1024);
  }
}
