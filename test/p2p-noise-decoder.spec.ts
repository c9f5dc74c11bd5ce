import '../src/polyfills.js';
import { randomBytes } from 'node:crypto';
import { noise } from '@chainsafe/libp2p-noise';
import { defaultLogger } from '@libp2p/logger';
import { LengthPrefixedDecoder } from '@libp2p/utils';
import { expect } from 'chai';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import { ANONYMOUS_SCOPE } from '../src/cache/scope.js';
import { fastNoiseDecoding, fleetNoise, noiseDecoderCounts } from '../src/p2p/noise-decoder.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { addressOf, fullyConnected, removeTmpDirs, requestKey, startNode, waitFor, type SpecNode } from './support/p2p-fixtures.js';

type LengthDecoder = (data: Uint8Array | { byteLength: number }) => number;

/** noise's own uint16BEDecode (not exported by the package: loaded from beside its entry point). */
async function noiseUint16Decode(): Promise<LengthDecoder> {
  const encoder = new URL('./encoder.js', import.meta.resolve('@chainsafe/libp2p-noise'));
  return ((await import(encoder.href)) as { uint16BEDecode: LengthDecoder }).uint16BEDecode;
}

/** A decoder configured as noise's EncryptedMessageStream configures its own, on an object of that shape. */
function noiseShaped(lengthDecoder: LengthDecoder, limits: { maxDataLength?: number; maxBufferSize?: number } = {}): { decoder: LengthPrefixedDecoder } {
  return {
    decoder: new LengthPrefixedDecoder({
      lengthDecoder, maxBufferSize: limits.maxBufferSize ?? 16 * 1024 * 1024, encodingLength: () => 2,
      ...(limits.maxDataLength === undefined ? {} : { maxDataLength: limits.maxDataLength }),
    }),
  };
}

function prefixed(...messages: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(messages.reduce((sum, m) => sum + 2 + m.byteLength, 0));
  let at = 0;
  for (const m of messages) {
    out[at] = m.byteLength >> 8;
    out[at + 1] = m.byteLength & 0xff;
    out.set(m, at + 2);
    at += 2 + m.byteLength;
  }
  return out;
}

/** Bytes the decoder holds (its private buffer). */
function buffered(decoder: LengthPrefixedDecoder): number {
  return (decoder as unknown as { buffer: { byteLength: number } }).buffer.byteLength;
}

function decodeAll(decoder: LengthPrefixedDecoder, chunks: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const chunk of chunks) for (const message of decoder.decode(chunk)) out.push(message.subarray());
  return out;
}

/**
 * Counts the RangeErrors constructed while it is installed (called as `RangeError(...)` as noise does, or with
 * `new`), by message. The global is replaced by a function that builds a real RangeError, so `instanceof
 * RangeError` (the decoder's own check) holds for every RangeError as before.
 */
function spyOnRangeErrors(): { byMessage: Map<string, number>; restore(): void } {
  const Original = globalThis.RangeError;
  const byMessage = new Map<string, number>();
  const Spy = function (this: unknown, ...args: [string?]): RangeError {
    const message = String(args[0]);
    byMessage.set(message, (byMessage.get(message) ?? 0) + 1);
    return Reflect.construct(Original, args, new.target ?? Original) as RangeError;
  } as unknown as RangeErrorConstructor;
  Object.defineProperty(Spy, 'prototype', { value: Original.prototype });
  globalThis.RangeError = Spy;
  return { byMessage, restore: () => { globalThis.RangeError = Original; } };
}

const INT16_ERROR = 'Could not decode int16BE';

describe('noise decoder without an Error per chunk (noise-decoder.ts)', function () {
  this.timeout(60_000);
  let uint16BEDecode: LengthDecoder;

  before(async () => {
    uint16BEDecode = await noiseUint16Decode();
  });

  describe('one decoder', () => {
    it('reads messages split across chunks, down to one byte a chunk, as noise\'s own decoder does', () => {
      const messages = [randomBytes(1), randomBytes(300), randomBytes(65_535), randomBytes(4_864)].map((b) => new Uint8Array(b));
      const wire = prefixed(...messages);
      const fast = noiseShaped(uint16BEDecode);
      expect(fastNoiseDecoding(fast)).to.equal(true);
      const bytes = Array.from({ length: wire.byteLength }, (_, i) => wire.subarray(i, i + 1));
      expect(decodeAll(fast.decoder, bytes)).to.deep.equal(messages);
      // Uneven chunks that cut prefixes and bodies anywhere, beside noise's unchanged decoder.
      const cuts = [1, 3, 2, 700, 1, 40_000, 30_000, 5, 2];
      const chunks: Uint8Array[] = [];
      for (let at = 0, i = 0; at < wire.byteLength; i++) {
        const end = Math.min(wire.byteLength, at + cuts[i % cuts.length]!);
        chunks.push(wire.subarray(at, end));
        at = end;
      }
      const again = noiseShaped(uint16BEDecode);
      fastNoiseDecoding(again);
      expect(decodeAll(again.decoder, chunks)).to.deep.equal(decodeAll(noiseShaped(uint16BEDecode).decoder, chunks));
      expect(buffered(again.decoder)).to.equal(0);
    });

    it('reads several messages from one chunk, keeping a chunk\'s cut-off prefix for the next', () => {
      const messages = Array.from({ length: 16 }, (_, i) => new Uint8Array(randomBytes(100 + i)));
      const wire = prefixed(...messages);
      const fast = noiseShaped(uint16BEDecode);
      fastNoiseDecoding(fast);
      // All but the last message and one byte of its prefix in one chunk; the rest in the next.
      const cut = wire.byteLength - messages[15]!.byteLength - 1;
      expect(decodeAll(fast.decoder, [wire.subarray(0, cut)])).to.deep.equal(messages.slice(0, 15));
      expect(buffered(fast.decoder)).to.equal(1);
      expect(decodeAll(fast.decoder, [wire.subarray(cut)])).to.deep.equal(messages.slice(15));
    });

    it('still rejects a length above the decoder\'s limit and a buffer above its size', () => {
      const limited = noiseShaped(uint16BEDecode, { maxDataLength: 1_000 });
      expect(fastNoiseDecoding(limited)).to.equal(true);
      expect(() => decodeAll(limited.decoder, [prefixed(new Uint8Array(1_001)).subarray(0, 2)])).to.throw('Invalid message length');
      const small = noiseShaped(uint16BEDecode, { maxBufferSize: 100 });
      expect(fastNoiseDecoding(small)).to.equal(true);
      expect(() => decodeAll(small.decoder, [new Uint8Array(101)])).to.throw('Buffer length limit exceeded');
    });

    it('reads no length prefix from an emptied buffer: noise\'s length decoder runs once per message', () => {
      const calls = { all: 0, short: 0 };
      const counting = Object.assign((data: { byteLength: number }) => {
        calls.all++;
        if (data.byteLength < 2) calls.short++;
        return uint16BEDecode(data);
      }, { bytes: 2 }) as LengthDecoder;
      const fast = noiseShaped(counting);
      expect(fastNoiseDecoding(fast)).to.equal(true);
      calls.short = 0; // fastNoiseDecoding probes a length decoder it has not seen with 1 byte, once
      const chunk = prefixed(new Uint8Array(173), new Uint8Array(4_864));
      expect(decodeAll(fast.decoder, Array.from({ length: 20 }, () => chunk))).to.have.length(40);
      expect(calls.short).to.equal(0);
      // Noise's own reads one more, from the emptied buffer, per chunk.
      const slow = noiseShaped(counting);
      calls.short = 0;
      decodeAll(slow.decoder, Array.from({ length: 20 }, () => chunk));
      expect(calls.short).to.equal(20);
    });

    it('constructs no RangeError at the end of each chunk, where noise\'s own decoder constructs one', () => {
      const chunk = prefixed(new Uint8Array(173), new Uint8Array(4_864));
      const fast = noiseShaped(uint16BEDecode);
      fastNoiseDecoding(fast);
      const slow = noiseShaped(uint16BEDecode);
      const spy = spyOnRangeErrors();
      let fastMessages: number;
      let slowMessages: number;
      try {
        fastMessages = decodeAll(fast.decoder, Array.from({ length: 50 }, () => chunk)).length;
        const before = spy.byMessage.get(INT16_ERROR) ?? 0;
        expect(before).to.equal(0);
        slowMessages = decodeAll(slow.decoder, Array.from({ length: 50 }, () => chunk)).length;
      } finally {
        spy.restore();
      }
      expect(fastMessages).to.equal(100);
      expect(slowMessages).to.equal(100);
      // The spy sees noise's own: one per chunk.
      expect(spy.byMessage.get(INT16_ERROR)).to.equal(50);
    });

    it('leaves anything of another shape alone, and changes no prototype', () => {
      const varintDecoder = new LengthPrefixedDecoder();
      const varintLengthDecoder = (varintDecoder as unknown as { lengthDecoder: unknown }).lengthDecoder;
      expect(fastNoiseDecoding({ decoder: varintDecoder })).to.equal(false);
      expect((varintDecoder as unknown as { lengthDecoder: unknown }).lengthDecoder).to.equal(varintLengthDecoder);
      const lookalike = { decoder: { lengthDecoder: uint16BEDecode, encodingLength: () => 2, buffer: { byteLength: 0 }, decode: () => [] } };
      expect(fastNoiseDecoding(lookalike)).to.equal(false);
      expect(lookalike.decoder.lengthDecoder).to.equal(uint16BEDecode);
      const lenient = noiseShaped(((data: { byteLength: number }) => data.byteLength) as LengthDecoder);
      expect(fastNoiseDecoding(lenient)).to.equal(false);
      const wrapped = noiseShaped(uint16BEDecode);
      const theirs = function* () { /* someone else's */ };
      Object.assign(wrapped.decoder, { decode: theirs });
      expect(fastNoiseDecoding(wrapped)).to.equal(false);
      expect(wrapped.decoder.decode).to.equal(theirs);
      expect(fastNoiseDecoding(undefined)).to.equal(false);
      expect(fastNoiseDecoding({})).to.equal(false);
      const decodeOfClass = LengthPrefixedDecoder.prototype.decode;
      expect(Object.hasOwn(LengthPrefixedDecoder.prototype, 'lengthDecoder')).to.equal(false);
      const fast = noiseShaped(uint16BEDecode);
      fastNoiseDecoding(fast);
      expect(fastNoiseDecoding(fast)).to.equal(true); // idempotent
      expect(Object.hasOwn(fast.decoder, 'decode')).to.equal(true);
      expect(LengthPrefixedDecoder.prototype.decode).to.equal(decodeOfClass);
      expect(noiseShaped(uint16BEDecode).decoder.decode).to.equal(decodeOfClass);
      expect((noiseShaped(uint16BEDecode).decoder as unknown as { lengthDecoder: unknown }).lengthDecoder).to.equal(uint16BEDecode);
    });

    it('fleetNoise changes its own encrypter instance only: noise\'s prototype and other noise instances are as shipped', () => {
      const components = { logger: defaultLogger() } as unknown as Parameters<ReturnType<typeof noise>>[0];
      const plain = noise()(components);
      const prototype = Object.getPrototypeOf(plain) as { secureInbound: unknown; secureOutbound: unknown };
      const fleet = fleetNoise()(components);
      expect(fleet.protocol).to.equal('/noise');
      expect(Object.getPrototypeOf(fleet)).to.equal(prototype);
      expect(Object.hasOwn(fleet, 'secureInbound') && Object.hasOwn(fleet, 'secureOutbound')).to.equal(true);
      expect(fleet.secureInbound).to.not.equal(prototype.secureInbound);
      expect(Object.hasOwn(plain, 'secureInbound') || Object.hasOwn(plain, 'secureOutbound')).to.equal(false);
      expect(plain.secureInbound).to.equal(prototype.secureInbound);
    });
  });

  describe('two nodes of this library', () => {
    let nodes: SpecNode[] = [];

    afterEach(async () => {
      await Promise.all(nodes.map((node) => node.network.stop()));
      nodes = [];
      removeTmpDirs();
    });

    function bigEntry(bytes: number): CacheEntry {
      const body = Buffer.from(randomBytes(bytes));
      const now = Date.now();
      return { body, digest: sha256Hex(body), storedAt: now, expiresAt: now + 60_000, status: 200, headers: { 'content-type': 'application/octet-stream' } };
    }

    it('handshake and exchange peer hits, small and split across chunks, without a RangeError per chunk', async () => {
      const fastBefore = noiseDecoderCounts.fast;
      const leftAloneBefore = noiseDecoderCounts.leftAlone;
      const a = await startNode();
      nodes.push(a);
      const b = await startNode({ p2p: { bootstrapPeers: [addressOf(a)] } });
      nodes.push(b);
      await waitFor(() => fullyConnected([a, b]), 'two connected nodes');
      // The handshake ran and both ends' secured connections got the fast length decoder.
      expect(noiseDecoderCounts.fast - fastBefore).to.be.at.least(2);
      expect(noiseDecoderCounts.leftAlone - leftAloneBefore).to.equal(0);

      const ids = [a.network.peerId, b.network.peerId];
      const keys = Array.from({ length: 200 }, (_, i) => requestKey(ANONYMOUS_SCOPE, `noise-${i}`));
      const asks: Array<{ asker: SpecNode; key: string; entry: CacheEntry }> = [];
      for (const [i, key] of keys.entries()) {
        const ownerIsA = rendezvousOwner(key, ids) === a.network.peerId;
        const owner = ownerIsA ? a : b;
        // Most small (one chunk each way); every tenth 200 KiB, several noise messages over several TCP chunks.
        const entry = bigEntry(i % 10 === 0 ? 200 * 1024 : 3_900);
        owner.backend.store.set(key, entry);
        asks.push({ asker: ownerIsA ? b : a, key, entry });
      }
      const spy = spyOnRangeErrors();
      let answers;
      try {
        answers = [];
        for (const ask of asks.slice(0, 100)) answers.push(await ask.asker.network.fetch(ask.key, ANONYMOUS_SCOPE));
        answers.push(...await Promise.all(asks.slice(100).map((ask) => ask.asker.network.fetch(ask.key, ANONYMOUS_SCOPE))));
      } finally {
        spy.restore();
      }
      for (const [i, answer] of answers.entries()) {
        expect(answer.kind, asks[i]!.key).to.equal('entry');
        if (answer.kind === 'entry') expect(answer.entry.digest).to.equal(asks[i]!.entry.digest);
      }
      expect(asks.some((ask) => ask.asker === a) && asks.some((ask) => ask.asker === b)).to.equal(true);
      expect(Object.fromEntries(spy.byMessage), 'RangeErrors constructed during the exchange').to.not.have.property(INT16_ERROR);
    });
  });
});
