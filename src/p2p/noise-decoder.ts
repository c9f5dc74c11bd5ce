import { noise, type NoiseComponents, type NoiseExtensions, type NoiseInit } from '@chainsafe/libp2p-noise';
import type { ConnectionEncrypter, SecuredConnection } from '@libp2p/interface';
import { LengthPrefixedDecoder } from '@libp2p/utils';
import type { Logger } from '../log.js';

/**
 * The fleet's noise: `@chainsafe/libp2p-noise` as is, except that each connection it secures for this library's
 * own nodes reads its messages without constructing an Error per TCP chunk.
 *
 * Why: noise reads its length-prefixed messages with @libp2p/utils' `LengthPrefixedDecoder`, whose `decode()`
 * loops `while (true)`: once a chunk's messages are consumed it reads the next 2-byte length prefix from the
 * emptied buffer, noise's `uint16BEDecode` throws a fresh `RangeError('Could not decode int16BE')` (with its stack
 * trace), and `decode()` catches it as "not enough bytes yet". That is about 6% of a peer hit's CPU. Here the
 * connection's decoder gets a length decoder that, with fewer than 2 bytes buffered, throws one RangeError made
 * once for the process (no stack captured, never seen outside `decode()`, which catches it) and otherwise calls
 * noise's own. docs/p2p-protocol.md ("Transport cost", item 2) has the upstream proposal that makes this module
 * removable; docs/benchmarks.md ("Peer-hit transport") measures it.
 *
 * Guarantees:
 * - Scope: only connections secured by an encrypter this module made (the host's `connectionEncrypters`), and on
 *   each only that connection's own decoder instance (its own `lengthDecoder` field). No prototype is changed;
 *   another library's or process's noise is untouched. The handshake is not touched either: it runs before the
 *   secured connection exists, on noise's own reader.
 * - Same messages, same errors: lengths of 2 bytes or more are read by noise's own decoder; the only change is
 *   which RangeError instance says "fewer than 2 bytes buffered", and `decode()` catches any RangeError there and
 *   waits for more bytes either way. Buffer and length limits are `decode()`'s own and unchanged.
 * - Never breaks a connection: a secured connection whose decoder is not of the shape checked below (a noise or
 *   @libp2p/utils upgrade) is left exactly as noise made it, counted in `noiseDecoderCounts.leftAlone`, and the
 *   first such connection is logged at debug level.
 *
 * Measured (a one-off micro-benchmark of `decode()` on one 4.8 KiB message per chunk): about 6.7 µs per chunk as
 * shipped, 1.0 µs with this length decoder, 0.5 µs with no throw at all (the upstream loop). The remaining 0.5 µs
 * would need a copy of `decode()` here; it is left to upstream.
 */

/** Connections given the fast length decoder, and connections left as noise made them. */
export interface NoiseDecoderCounts { fast: number; leftAlone: number }

/** The counts of every fleetNoise encrypter of this process. */
export const noiseDecoderCounts: NoiseDecoderCounts = { fast: 0, leftAlone: 0 };

/** noise's uint16BEDecode: `bytes` is 2; throws a RangeError below 2 bytes; big-endian otherwise. */
type LengthDecoder = ((data: Uint8Array | { byteLength: number }) => number) & { bytes?: number };

interface NoiseDecoder {
  lengthDecoder: LengthDecoder;
  encodingLength(length: number): number;
}

const FAST = Symbol('fleet fast length decoder');

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

/**
 * Gives a connection noise secured (`SecuredConnection.connection`) the fast length decoder. Returns whether it
 * did (or already had it); false when the connection is not of the known shape, which is then left unchanged.
 * Exported for the specs and the transport benchmark.
 */
export function fastNoiseDecoding(connection: unknown): boolean {
  const decoder = typeof connection === 'object' && connection !== null ? (connection as { decoder?: unknown }).decoder : undefined;
  if (!isNoiseDecoder(decoder)) return false;
  if ((decoder.lengthDecoder as { [FAST]?: true })[FAST] !== true) decoder.lengthDecoder = fastLengthDecoder(decoder.lengthDecoder);
  return true;
}

let loggedLeftAlone = false;

interface FleetNoiseOptions {
  /** noise's own options. */
  init?: NoiseInit;
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
 * properties of the instance each host gets) give every connection they secure the fast length decoder.
 */
export function fleetNoise(options: FleetNoiseOptions = {}): (components: NoiseComponents) => ConnectionEncrypter<NoiseExtensions> {
  const make = noise(options.init);
  return (components) => {
    const encrypter = make(components);
    const { secureInbound, secureOutbound } = encrypter;
    if (typeof secureInbound !== 'function' || typeof secureOutbound !== 'function') return encrypter;
    encrypter.secureInbound = async (connection, secureOptions) =>
      afterSecuring(await secureInbound.call(encrypter, connection, secureOptions), options);
    encrypter.secureOutbound = async (connection, secureOptions) =>
      afterSecuring(await secureOutbound.call(encrypter, connection, secureOptions), options);
    return encrypter;
  };
}
