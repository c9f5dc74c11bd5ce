import { ANSWER_SPECIFIC, sharedHeaderValue } from '../cache/header-values.js';

/**
 * Header pairs sent once per stream: an owner's unsealed `entry` names a pair it sent before on the same stream by
 * its index, instead of sending the name and value again.
 *
 * Guarantee: `HeaderTableReader.resolve` returns exactly the headers (names, values and order) that the peer's
 * `HeaderTableWriter.encode` encoded, provided the reader resolves every indexed `headers` of the stream in the
 * order the writer encoded them (one stream: frames arrive in the order they were sent, none lost or skipped;
 * cache-protocol.ts resolves each `entry` as it arrives, before looking at its request). Each side's table is
 * bounded (MAX_PAIRS pairs, MAX_TABLE_CHARS characters), appended to and never changed. Whatever a peer sends, the
 * reader either returns headers that pass the entry schema (lowercase token names, single-line values of at most
 * MAX_HEADER_VALUE characters, at most MAX_HEADERS of them, no name twice) or throws `HeaderTableError`, and then
 * the stream must be closed: its table is no longer known.
 *
 * Encoding (`headers` of a payload, instead of a map):
 *   an array of elements, each one of
 *     uint i                 the pair defined at index i (defined earlier on this stream, or earlier in this array)
 *     [name, value]          a pair sent as it is, not kept
 *     [name, value, 1]       a pair defined here: appended to both tables (index = the table's length before)
 * The writer defines a pair when its value recurs across answers (not ANSWER_SPECIFIC, at most MAX_VALUE_CHARS
 * characters) and the table has room; the answer-specific ones (ETag, date, request id, rate limit) go as they are.
 *
 * Why: GitHub sends some 25 headers on every answer, and most of their values are the same on every answer. Sent as a
 * map, each was encoded by the owner, and decoded and checked against the schema by the asker, on every peer hit
 * (docs/benchmarks.md, "Peer hits under concurrency"): with the table, an answer's repeated pairs are one small integer
 * each, checked once per stream, and the asker's values are the shared strings of header-values.ts.
 */

/** Pairs a table holds at most (one GitHub token's answers repeat some 20 pairs; a fleet's routes a few hundred). */
export const MAX_PAIRS = 1024;
/** Characters of names and values a table holds at most. */
export const MAX_TABLE_CHARS = 256 * 1024;
/** A longer value is never defined (sent as it is). */
const MAX_VALUE_CHARS = 1024;

/** The entry schema's header rules (envelope.ts checks a map against the same). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]{1,256}$/;
export const MAX_HEADERS = 256;
const MAX_HEADER_VALUE = 16 * 1024;
const BAD_HEADER_VALUE = /[\r\n\0]/;

/** A header name the schema accepts: a lowercase token (never `__proto__`, which the CBOR decoder refuses too). */
export function isHeaderName(name: string): boolean {
  return HEADER_NAME.test(name) && name !== '__proto__';
}

/** A header value the schema accepts: a single-line string of at most 16 KiB. */
export function isHeaderValue(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_HEADER_VALUE && !BAD_HEADER_VALUE.test(value);
}

/** A header the schema accepts: a lowercase token name, a single-line string value of at most 16 KiB. */
export function isWireHeader(name: string, value: unknown): value is string {
  return isHeaderName(name) && isHeaderValue(value);
}

/** A peer's indexed headers broke the encoding or the schema; the stream's table is unknown from here on. */
export class HeaderTableError extends Error {
  override name = 'HeaderTableError';
}

/** The objects `HeaderTableReader.resolve` returned: checked against the schema as they were built. */
const resolvedHeaders = new WeakSet<object>();

/** Whether `headers` is an object `HeaderTableReader.resolve` returned (so the schema holds for it). */
export function isResolvedHeaders(headers: object): boolean {
  return resolvedHeaders.has(headers);
}

/** An element of an indexed `headers` array. */
type Element = number | [string, string] | [string, string, 1];

/** The owner's side: encodes each answer's headers against the pairs this stream's reader already holds. */
export class HeaderTableWriter {
  /** name → value → index. */
  readonly #index = new Map<string, Map<string, number>>();
  #pairs = 0;
  #chars = 0;

  /**
   * `headers` (an entry's, in its order) as an indexed array; a pair the schema refuses is left out, as is every
   * pair past the MAX_HEADERS-th, as an owner sending a map does. Defines new pairs: send the result, on this
   * writer's stream, before encoding another.
   */
  encode(headers: Readonly<Record<string, string>>): Element[] {
    const out: Element[] = [];
    for (const name in headers) {
      if (out.length >= MAX_HEADERS) break;
      const value = headers[name]!;
      const known = this.#index.get(name)?.get(value);
      if (known !== undefined) {
        out.push(known);
        continue;
      }
      if (!isWireHeader(name, value)) continue;
      if (!definable(name, value) || this.#pairs >= MAX_PAIRS || this.#chars + name.length + value.length > MAX_TABLE_CHARS) {
        out.push([name, value]);
        continue;
      }
      let values = this.#index.get(name);
      if (values === undefined) this.#index.set(name, (values = new Map()));
      values.set(value, this.#pairs++);
      this.#chars += name.length + value.length;
      out.push([name, value, 1]);
    }
    return out;
  }

  /** Pairs defined so far (specs). */
  get size(): number {
    return this.#pairs;
  }
}

/** The asker's side: resolves the indexed headers of each `entry` on its stream, in order. */
export class HeaderTableReader {
  readonly #names: string[] = [];
  readonly #values: string[] = [];
  #chars = 0;

  /**
   * The headers `encoded` stands for, as a fresh plain object in the encoded order whose values the schema accepts
   * (envelope.ts takes it as checked). Defines the pairs it carries. Throws HeaderTableError.
   */
  resolve(encoded: readonly unknown[]): Record<string, string> {
    if (encoded.length > MAX_HEADERS) throw new HeaderTableError(`more than ${MAX_HEADERS} headers`);
    const out: Record<string, string> = {};
    for (const element of encoded) {
      let name: string;
      let value: string;
      if (typeof element === 'number') {
        if (!Number.isInteger(element) || element < 0 || element >= this.#names.length) {
          throw new HeaderTableError(`header index ${element} is not defined on this stream (${this.#names.length} are)`);
        }
        name = this.#names[element]!;
        value = this.#values[element]!;
      } else {
        if (!Array.isArray(element) || element.length < 2 || element.length > 3 || typeof element[0] !== 'string') {
          throw new HeaderTableError('a header is neither an index nor [name, value] nor [name, value, 1]');
        }
        name = element[0];
        const raw: unknown = element[1];
        if (!isWireHeader(name, raw)) throw new HeaderTableError(`header ${JSON.stringify(name.slice(0, 40))} is not a lowercase token with a single-line string value`);
        value = sharedHeaderValue(name, raw);
        if (element.length === 3) {
          if (element[2] !== 1) throw new HeaderTableError('the third item of a header pair is not 1');
          if (this.#names.length >= MAX_PAIRS || this.#chars + name.length + value.length > MAX_TABLE_CHARS) {
            throw new HeaderTableError(`a header pair defined past the table's bound (${MAX_PAIRS} pairs, ${MAX_TABLE_CHARS} characters)`);
          }
          this.#names.push(name);
          this.#values.push(value);
          this.#chars += name.length + value.length;
        }
      }
      if (Object.hasOwn(out, name)) throw new HeaderTableError(`header ${JSON.stringify(name.slice(0, 40))} appears twice`);
      out[name] = value;
    }
    resolvedHeaders.add(out);
    return out;
  }

  /**
   * Resolves an unsealed entry's payload in place, as the stream delivers it: indexed `headers` become the object
   * `resolve` returns; headers as a map are left to the entry schema. Throws HeaderTableError.
   */
  resolvePayload(payload: Readonly<Record<string, unknown>>): void {
    if (Array.isArray(payload.headers)) (payload as Record<string, unknown>).headers = this.resolve(payload.headers);
  }

  /** Pairs defined so far (specs). */
  get size(): number {
    return this.#names.length;
  }
}

/** Whether a pair is worth a place in the table: its value recurs across answers. */
function definable(name: string, value: string): boolean {
  return value.length <= MAX_VALUE_CHARS && !ANSWER_SPECIFIC.has(name);
}
