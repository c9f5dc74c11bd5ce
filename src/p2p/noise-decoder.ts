import { noise, type NoiseComponents, type NoiseExtensions, type NoiseInit } from '@chainsafe/libp2p-noise';
import type { ConnectionEncrypter, SecuredConnection } from '@libp2p/interface';
import { LengthPrefixedDecoder } from '@libp2p/utils';
import type { Logger } from '../log.js';
import { oneWritePerSend } from './tcp-writes.js';

/**
 * The fleet's noise: `@chainsafe/libp2p-noise` as is, except that each connection it secures for this library's
 * own nodes reads its messages without an Error constructed and thrown per TCP chunk, and writes each of them to
 * its TCP socket in one write, not two (tcp-writes.ts).
 *
 * Why: noise reads its length-prefixed messages with @libp2p/utils' `LengthPrefixedDecoder`, whose `decode()`
 * loops `while (true)`: once a chunk's messages are consumed it reads the next 2-byte length prefix from the
 * emptied buffer, noise's `uint16BEDecode` throws a fresh `RangeError('Could not decode int16BE')` (with its stack
 * trace), and `decode()` catches it as "not enough bytes yet". That is about 6% of a peer hit's CPU. Each
 * connection's decoder instance gets two own properties:
 * - `decode`: the upstream proposal, around the original: `decode()`'s own generator, left as soon as the buffer is
 *   empty after a message (an empty buffer holds no message: the original would only throw and stop there);
 * - `lengthDecoder`: noise's own for 2 bytes or more; with fewer (a chunk that ends inside a length prefix, or an
 *   empty chunk) it throws one RangeError made once for the process, without a stack trace, which `decode()`
 *   catches as it catches noise's.
 * docs/p2p-protocol.md ("Transport cost", item 2) has the upstream proposal that makes this module removable;
 * docs/benchmarks.md ("Peer-hit transport") measures it.
 *
 * Guarantees:
 * - Scope: only connections secured by an encrypter this module made (the host's `connectionEncrypters`), and on
 *   each only that connection's own decoder instance (own properties). No prototype is changed; another library's
 *   or process's noise is untouched. The handshake is not touched either: it runs before the secured connection
 *   exists, on noise's own reader.
 * - Same messages, same errors: every message is still cut by `decode()`'s own code with noise's own length
 *   decoder, and its buffer and length limits are unchanged; the only differences are where an empty buffer stops
 *   the loop and which RangeError instance says "fewer than 2 bytes buffered".
 * - Never breaks a connection: a secured connection whose decoder is not of the shape checked below (a noise or
 *   @libp2p/utils upgrade) is left exactly as noise made it, counted in `noiseDecoderCounts.leftAlone`, and the
 *   first such connection is logged at debug level.
 *
 * Measured (a one-off micro-benchmark of `decode()`, one 4.8 KiB message per chunk): 6.7 µs per chunk as shipped,
 * 1.0 µs with the length decoder alone (a throw without an Error constructed is still a throw), 0.5 µs with the
 * loop stopping at an empty buffer.
 */

/** Connections given the fast decoding, and connections left as noise made them. */
export interface NoiseDecoderCounts { fast: number; leftAlone: number }

/** The counts of every fleetNoise encrypter of this process. */
export const noiseDecoderCounts: NoiseDecoderCounts = { fast: 0, leftAlone: 0 };

/** noise's uint16BEDecode: `bytes` is 2; throws a RangeError below 2 bytes; big-endian otherwise. */
type LengthDecoder = ((data: Uint8Array | { byteLength: number }) => number) & { bytes?: number };

interface NoiseDecoder {
  buffer: { byteLength: number };
  lengthDecoder: LengthDecoder;
  encodingLength(length: number): number;
  decode(buf: Uint8Array): Generator<unknown, void, undefined>;
}

/** Marks this module's `decode` and `lengthDecoder`, so that a decoder is never wrapped twice. */
const FAST = Symbol('fleet noise decoding');

/** The one "fewer than 2 bytes buffered" signal: made once, without a stack trace. */
const NOT_ENOUGH_BYTES: RangeError = (() => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new RangeError('Could not decode int16BE (fewer than 2 bytes buffered)');
  } finally {
    Error.stackTraceLimit = limit;
  }
})();

/** Length decoders found to be a 2-byte one that throws a RangeError below 2 bytes (probed once each). */
const probed = new WeakMap<LengthDecoder, boolean>();

function isUint16Decoder(decode: LengthDecoder): boolean {
  const known = probed.get(decode);
  if (known !== undefined) return known;
  let ok = decode.bytes === 2;
  if (ok) {
    try {
      ok = decode(Uint8Array.of(1, 2)) === 0x0102;
      decode(Uint8Array.of(1));
      ok = false; // it read a length from 1 byte: not the decoder this relies on
    } catch (err) {
      ok = ok && err instanceof RangeError;
    }
  }
  probed.set(decode, ok);
  return ok;
}

function isNoiseDecoder(value: unknown): value is NoiseDecoder {
  if (!(value instanceof LengthPrefixedDecoder)) return false;
  const decoder = value as unknown as Partial<NoiseDecoder>;
  if (!Object.hasOwn(decoder, 'lengthDecoder') || typeof decoder.lengthDecoder !== 'function') return false;
  if (typeof decoder.encodingLength !== 'function' || decoder.encodingLength(0) !== 2) return false;
  if (typeof decoder.buffer?.byteLength !== 'number' || typeof decoder.decode !== 'function') return false;
  // Its decode is the class's (or already ours): nobody else wrapped this instance.
  if (Object.hasOwn(decoder, 'decode') && (decoder.decode as { [FAST]?: true })[FAST] !== true) return false;
  return (decoder.lengthDecoder as { [FAST]?: true })[FAST] === true || isUint16Decoder(decoder.lengthDecoder);
}

function fastLengthDecoder(original: LengthDecoder): LengthDecoder {
  const fast: LengthDecoder = (data) => {
    if (data.byteLength < 2) throw NOT_ENOUGH_BYTES;
    return original(data);
  };
  fast.bytes = 2;
  (fast as { [FAST]?: true })[FAST] = true;
  return fast;
}

/** `decode` of the class, left once the buffer is empty after a message: the upstream proposal, per instance. */
function stopAtEmptyBuffer(decoder: NoiseDecoder): NoiseDecoder['decode'] {
  const original = decoder.decode;
  const decode = function* decodeUntilEmpty(buf: Uint8Array): Generator<unknown, void, undefined> {
    // The original does the work; its generator is simply not resumed once nothing is left to read (it holds no
    // resources: the abandoned generator is collected).
    const messages = original.call(decoder, buf);
    for (;;) {
      const next = messages.next();
      if (next.done === true) return;
      yield next.value;
      if (decoder.buffer.byteLength === 0) return;
    }
  };
  (decode as { [FAST]?: true })[FAST] = true;
  return decode;
}

/**
 * Gives a connection noise secured (`SecuredConnection.connection`) the fast decoding (the header). Returns whether it
 * did (or already had it); false when the connection is not of the known shape, which is then left unchanged.
 * Exported for the specs and the transport benchmark.
 */
export function fastNoiseDecoding(connection: unknown): boolean {
  const decoder = typeof connection === 'object' && connection !== null ? (connection as { decoder?: unknown }).decoder : undefined;
  if (!isNoiseDecoder(decoder)) return false;
  if ((decoder.lengthDecoder as { [FAST]?: true })[FAST] !== true) decoder.lengthDecoder = fastLengthDecoder(decoder.lengthDecoder);
  if ((decoder.decode as { [FAST]?: true })[FAST] !== true) decoder.decode = stopAtEmptyBuffer(decoder);
  return true;
}

let loggedLeftAlone = false;

interface FleetNoiseOptions {
  /** noise's own options. */
  init?: NoiseInit;
  /**
   * Whether each connection handed to noise gets one socket write per send (tcp-writes.ts): noise sends every
   * message as its length prefix and its ciphertext, which @libp2p/tcp writes one system call each. Default: true.
   */
  oneWritePerSend?: boolean;
  /** Where the first connection left alone is logged (debug). */
  logger?: Logger;
  /** Also counted here (the process-wide noiseDecoderCounts always are). */
  counts?: NoiseDecoderCounts;
}

function afterSecuring(secured: SecuredConnection<NoiseExtensions>, options: FleetNoiseOptions): SecuredConnection<NoiseExtensions> {
  let fast = false;
  try {
    fast = fastNoiseDecoding(secured.connection);
  } catch {
    // a getter of another shape threw: leave the connection as it is
  }
  for (const counts of options.counts === undefined ? [noiseDecoderCounts] : [noiseDecoderCounts, options.counts]) {
    if (fast) counts.fast++;
    else counts.leftAlone++;
  }
  if (!fast && !loggedLeftAlone) {
    loggedLeftAlone = true;
    options.logger?.debug('noise connection not of the known shape: its decoder is left as noise made it (src/p2p/noise-decoder.ts)');
  }
  return secured;
}

/**
 * `noise(init)` for this library's hosts: the same encrypter, whose `secureInbound` and `secureOutbound` (own
 * properties of the instance each host gets) give every connection they secure the fast decoding (the header),
 * and the TCP connection beneath it one socket write per send (tcp-writes.ts; `oneWritePerSend: false`: as
 * @libp2p/tcp writes).
 */
export function fleetNoise(options: FleetNoiseOptions = {}): (components: NoiseComponents) => ConnectionEncrypter<NoiseExtensions> {
  const make = noise(options.init);
  return (components) => {
    const encrypter = make(components);
    const { secureInbound, secureOutbound } = encrypter;
    if (typeof secureInbound !== 'function' || typeof secureOutbound !== 'function') return encrypter;
    const beforeSecuring = (connection: unknown): void => {
      if (options.oneWritePerSend === false) return;
      try {
        oneWritePerSend(connection);
      } catch {
        // a getter of another shape threw: leave the connection as it is
      }
    };
    encrypter.secureInbound = async (connection, secureOptions) => {
      beforeSecuring(connection);
      return afterSecuring(await secureInbound.call(encrypter, connection, secureOptions), options);
    };
    encrypter.secureOutbound = async (connection, secureOptions) => {
      beforeSecuring(connection);
      return afterSecuring(await secureOutbound.call(encrypter, connection, secureOptions), options);
    };
    return encrypter;
  };
}
