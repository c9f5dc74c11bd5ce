/**
 * `p2p-codec`: the hand-written codecs of the P2P layer against the libraries they stand in for, on realistic
 * frames, side by side in one run (interleaved rounds, median of rounds: see report.ts):
 * - CBOR: src/p2p/cbor.ts (`encodeCbor`, `decodeStrictCbor` as wire.ts calls it) against cborg (`encode`, `decode`
 *   with STRICT_CBOR_DECODE), on the frame alone.
 * - Framing: src/p2p/frame-channel.ts (frames cut from the stream's chunks in place, fed through a stand-in
 *   stream) and `encodeLengthPrefixedFrame` against @libp2p/utils' `LengthPrefixedDecoder` and lpStream's
 *   encoding (an unsigned varint from uint8-varint ahead of the bytes, in a Uint8ArrayList). Both sides decode
 *   and encode the frame itself with cbor.ts, so the framing is the only difference.
 * Frames: an `entry` answering with a sealed 4 KB JSON response, an unsealed one (as between members that proved
 * the scope) of api.github.com's recorded answer to a repository GET with its headers (@octokit/fixtures), and a
 * `get` (key + 32-byte proof); a chunk holds one frame, as yamux delivers a lone answer, and for gets also 16, as an asker's batched writes arrive.
 * A hand-written codec is kept only where its row is at least 1.3x the library's.
 * - Crypto of a peer hit: the entry AEAD (src/p2p/entry-aead.ts, XChaCha20-Poly1305) and the get proof's HMAC
 *   (src/p2p/hmac-sha256.ts) through libsodium (sodium-native) against node:crypto, in a loop. These rows show the
 *   floor of each; the difference in the flow of a peer hit is larger (OpenSSL's per-call setup is most of it and
 *   suffers most from cold caches) and is measured by `peer-ab`.
 * - Owner choice: `rendezvousOwner` (src/p2p/rendezvous.ts: one SHA-256 per key, a 64-bit mix per candidate)
 *   against the weight protocol 1.4.0 used (one SHA-256 of peer id and key per candidate), among 2 to 256
 *   candidates, on distinct realistic keys.
 */
import { hash, randomBytes } from 'node:crypto';
import type { Stream } from '@libp2p/interface';
import { LengthPrefixedDecoder } from '@libp2p/utils';
import { decode as cborgDecode, encode as cborgEncode } from 'cborg';
import { encode as encodeVarint } from 'uint8-varint';
import { Uint8ArrayList } from 'uint8arraylist';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import { entryOf } from '../src/cache/http-policy.js';
import { ANONYMOUS_SCOPE } from '../src/cache/scope.js';
import { decodeStrictCbor, encodeCbor } from '../src/p2p/cbor.js';
import { aeadOpen, aeadSeal, useAeadImplementation, type AeadImplementation } from '../src/p2p/entry-aead.js';
import { entryPayload, sealEntry } from '../src/p2p/envelope.js';
import { hmacSha256, useHmacImplementation, type HmacImplementation } from '../src/p2p/hmac-sha256.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { FrameChannel } from '../src/p2p/frame-channel.js';
import { STRICT_CBOR_DECODE } from '../src/p2p/strict-cbor.js';
import { decodeFrame, encodeFrame, encodeLengthPrefixedFrame, type Frame } from '../src/p2p/wire.js';
import { loadScenario, RECORDED_ORIGINS } from '../support/recorded-github/scenarios.js';
import { compare, fmt, machineLine, table, writeSection } from './report.js';
import { repoBody } from './workload.js';

const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** Many short rounds: on a shared machine, noise then lands in a few rounds the median drops. */
const ROUNDS = 41;
/** Gets an asker's one write carries in the batched row. */
const BATCH = 16;
/** A hand-written codec must beat the library by this much to be kept. */
const KEEP_RATIO = 1.3;
/** How wire.ts decodes a received frame: byte strings as views of the frame (cborg always copies them). */
const AS_WIRE = { viewBytesFrom: 0 };

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as never;

/**
 * An unsealed `entry` (what an owner sends an asker that proved the scope) of api.github.com's recorded answer to
 * a repository GET (@octokit/fixtures, get-repository): its body and its headers, stored as the cache stores them.
 */
function recordedPlainEntry(): Frame {
  const [exchange] = loadScenario('get-repository', RECORDED_ORIGINS);
  if (exchange === undefined) throw new Error('p2p-codec: the get-repository recording is missing');
  const now = Date.now();
  const entry = entryOf({ status: exchange.status, headers: { ...exchange.headers, date: new Date(now).toUTCString() }, body: exchange.body }, now, 60);
  const key = `${ANONYMOUS_SCOPE} GET https://api.github.com${exchange.path} application/vnd.github+json`;
  return { type: 'entry', id: 4_242, payload: entryPayload(entry, key) };
}

function realisticFrames(): { entry: Frame; get: Frame } {
  const key = `${ANONYMOUS_SCOPE} GET https://api.github.com/repos/bench/codec application/vnd.github+json`;
  let body = JSON.stringify(repoBody('bench', 'codec', 1));
  // Pad the description so the body is 4 KB, the size of a typical repository response.
  if (body.length < 4096) body = JSON.stringify({ ...repoBody('bench', 'codec', 1), description: 'x'.repeat(4096 - body.length - 20) });
  const now = Date.now();
  const entry: CacheEntry = {
    body: Buffer.from(body), digest: sha256Hex(body), storedAt: now, expiresAt: now + 60_000, status: 200, etag: `W/"${sha256Hex(key)}"`,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'private, max-age=60, s-maxage=60', etag: `W/"${sha256Hex(key)}"` },
  };
  const sealed = sealEntry(entry, key, new Uint8Array(randomBytes(32)));
  return {
    entry: { type: 'entry', id: 4_242, sealed },
    get: { type: 'get', id: 4_242, key, proof: new Uint8Array(randomBytes(32)) },
  };
}

/** A FrameChannel over a stand-in stream: `push(chunk)` delivers a chunk as the muxer would; counts frames. */
function handReceiver(): { push(chunk: Uint8Array): void; frames: () => number } {
  let onMessage: ((event: { data: Uint8Array }) => void) | undefined;
  const stream = {
    status: 'open', remoteWriteStatus: 'writable', writeStatus: 'writable', writeBufferLength: 0,
    addEventListener(type: string, listener: (event: { data: Uint8Array }) => void) {
      if (type === 'message') onMessage = listener;
    },
  } as unknown as Stream;
  let frames = 0;
  // The channel is never closed: the stand-in has nothing to release.
  new FrameChannel(stream, { maxFrameBytes: MAX_FRAME_BYTES, logger: silent, onFrame: () => { frames++; }, onClose: () => undefined });
  return { push: (chunk) => onMessage!({ data: chunk }), frames: () => frames };
}

/** @libp2p/utils' decoder, as a FrameChannel built on it would use it: cut, then decode each frame. */
function libraryReceiver(): { push(chunk: Uint8Array): void; frames: () => number } {
  const decoder = new LengthPrefixedDecoder({ maxDataLength: MAX_FRAME_BYTES, maxBufferSize: MAX_FRAME_BYTES });
  let frames = 0;
  return {
    push: (chunk) => {
      for (const data of decoder.decode(chunk)) {
        decodeFrame(data.subarray());
        frames++;
      }
    },
    frames: () => frames,
  };
}

/** lpStream's encoding: the varint length ahead of the encoded frame, as a list (lpStream writes it so). */
function libraryEncode(frame: Frame): Uint8ArrayList {
  const bytes = encodeFrame(frame);
  return new Uint8ArrayList(encodeVarint(bytes.byteLength), bytes);
}

function concatAll(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

interface Row {
  what: string;
  hand: number;
  library: number;
}

async function pair(what: string, iterations: number, hand: (n: number) => void, library: (n: number) => void): Promise<Row> {
  const ns = await compare([{ name: 'hand', run: hand }, { name: 'library', run: library }], { iterations, rounds: ROUNDS });
  return { what, hand: ns.get('hand')!, library: ns.get('library')! };
}

export async function benchP2pCodec(): Promise<string> {
  const { entry, get } = realisticFrames();
  const plain = recordedPlainEntry();
  const plainCbor = encodeCbor(plain);
  const entryCbor = encodeCbor(entry);
  const getCbor = encodeCbor(get);
  const entryWire = encodeLengthPrefixedFrame(entry);
  const getWire = encodeLengthPrefixedFrame(get);
  const getBatch = concatAll(Array.from({ length: BATCH }, () => getWire));
  let sink = 0;

  const cbor: Row[] = [
    await pair(`encode entry (${entryCbor.byteLength} B)`, 2_000,
      (n) => { for (let i = 0; i < n; i++) sink += encodeCbor(entry).byteLength; },
      (n) => { for (let i = 0; i < n; i++) sink += cborgEncode(entry).byteLength; }),
    await pair(`decode entry (${entryCbor.byteLength} B)`, 2_000,
      (n) => { for (let i = 0; i < n; i++) sink += decodeStrictCbor(entryCbor, AS_WIRE) === undefined ? 0 : 1; },
      (n) => { for (let i = 0; i < n; i++) sink += cborgDecode(entryCbor, STRICT_CBOR_DECODE) === undefined ? 0 : 1; }),
    await pair(`encode unsealed entry, api.github.com's recorded answer (${plainCbor.byteLength} B)`, 2_000,
      (n) => { for (let i = 0; i < n; i++) sink += encodeCbor(plain).byteLength; },
      (n) => { for (let i = 0; i < n; i++) sink += cborgEncode(plain).byteLength; }),
    await pair(`decode unsealed entry, api.github.com's recorded answer (${plainCbor.byteLength} B)`, 2_000,
      (n) => { for (let i = 0; i < n; i++) sink += decodeStrictCbor(plainCbor, AS_WIRE) === undefined ? 0 : 1; },
      (n) => { for (let i = 0; i < n; i++) sink += cborgDecode(plainCbor, STRICT_CBOR_DECODE) === undefined ? 0 : 1; }),
    await pair(`encode get (${getCbor.byteLength} B)`, 10_000,
      (n) => { for (let i = 0; i < n; i++) sink += encodeCbor(get).byteLength; },
      (n) => { for (let i = 0; i < n; i++) sink += cborgEncode(get).byteLength; }),
    await pair(`decode get (${getCbor.byteLength} B)`, 10_000,
      (n) => { for (let i = 0; i < n; i++) sink += decodeStrictCbor(getCbor, AS_WIRE) === undefined ? 0 : 1; },
      (n) => { for (let i = 0; i < n; i++) sink += cborgDecode(getCbor, STRICT_CBOR_DECODE) === undefined ? 0 : 1; }),
  ];

  const hand = handReceiver();
  const library = libraryReceiver();
  const framing: Row[] = [
    await pair('send entry (prefix + CBOR)', 2_000,
      (n) => { for (let i = 0; i < n; i++) sink += encodeLengthPrefixedFrame(entry).byteLength; },
      (n) => { for (let i = 0; i < n; i++) sink += libraryEncode(entry).byteLength; }),
    await pair('send get (prefix + CBOR)', 10_000,
      (n) => { for (let i = 0; i < n; i++) sink += encodeLengthPrefixedFrame(get).byteLength; },
      (n) => { for (let i = 0; i < n; i++) sink += libraryEncode(get).byteLength; }),
    await pair('receive entry, one frame a chunk (cut + decode)', 2_000,
      (n) => { for (let i = 0; i < n; i++) hand.push(entryWire); },
      (n) => { for (let i = 0; i < n; i++) library.push(entryWire); }),
    await pair('receive get, one frame a chunk (cut + decode)', 10_000,
      (n) => { for (let i = 0; i < n; i++) hand.push(getWire); },
      (n) => { for (let i = 0; i < n; i++) library.push(getWire); }),
    await pair(`receive ${BATCH} gets in one chunk, per get (cut + decode)`, 1_000,
      (n) => { for (let i = 0; i < n; i++) hand.push(getBatch); },
      (n) => { for (let i = 0; i < n; i++) library.push(getBatch); }),
  ];
  // The batched row timed BATCH frames per iteration.
  const batched = framing[framing.length - 1]!;
  batched.hand /= BATCH;
  batched.library /= BATCH;
  if (hand.frames() !== library.frames() || sink === 0) throw new Error('p2p-codec: the two receivers did not see the same frames');

  // The crypto of a peer hit: libsodium ("hand") against node:crypto ("library").
  const aeadKey = new Uint8Array(randomBytes(32));
  const nonce = new Uint8Array(randomBytes(24));
  const ad = Buffer.from(`entry v2\0${get.type === 'get' ? get.key : ''}`, 'utf8');
  const plaintext = entryCbor; // about the size of a sealed 4 KB response's plaintext
  const sealedOut = new Uint8Array(plaintext.byteLength + 16);
  aeadSeal(sealedOut, plaintext, ad, nonce, aeadKey);
  const sealedCopy = sealedOut.slice();
  const proofKey = new Uint8Array(randomBytes(32));
  const proofMessage = randomBytes(200); // a get proof's message: domain, challenge, peer ids, request id, key
  /** Runs `run` with an implementation forced through `use` (useAeadImplementation, useHmacImplementation), then restores it. */
  const forcing = <T>(use: (implementation: T) => T, implementation: T, run: () => void) => () => {
    const previous = use(implementation);
    try {
      run();
    } finally {
      use(previous);
    }
  };
  const withAead = (implementation: AeadImplementation, run: () => void) => forcing(useAeadImplementation, implementation, run);
  const withHmac = (implementation: HmacImplementation, run: () => void) => forcing(useHmacImplementation, implementation, run);
  const crypto: Row[] = [
    await pair(`seal entry, XChaCha20-Poly1305 (${plaintext.byteLength} B)`, 2_000,
      (n) => withAead('sodium', () => { for (let i = 0; i < n; i++) aeadSeal(sealedOut, plaintext, ad, nonce, aeadKey); })(),
      (n) => withAead('node', () => { for (let i = 0; i < n; i++) aeadSeal(sealedOut, plaintext, ad, nonce, aeadKey); })()),
    await pair(`open entry, XChaCha20-Poly1305 (${plaintext.byteLength} B)`, 2_000,
      (n) => withAead('sodium', () => { for (let i = 0; i < n; i++) sink += aeadOpen(sealedCopy, ad, nonce, aeadKey)!.byteLength; })(),
      (n) => withAead('node', () => { for (let i = 0; i < n; i++) sink += aeadOpen(sealedCopy, ad, nonce, aeadKey)!.byteLength; })()),
    await pair('get proof, HMAC-SHA256 (200 B)', 10_000,
      (n) => withHmac('sodium', () => { for (let i = 0; i < n; i++) sink += hmacSha256(proofKey, proofMessage)[0]!; })(),
      (n) => withHmac('node', () => { for (let i = 0; i < n; i++) sink += hmacSha256(proofKey, proofMessage)[0]!; })()),
  ];

  // Owner choice: this build ("hand") against protocol 1.4.0's weight, sha256(peerId, 0x00, key) per candidate.
  const ownerKeys = Array.from({ length: 1024 }, (_, i) => `0123456789abcdef0123456789abcdef GET https://api.github.com/repos/octo-org/repo-${i}/pulls?per_page=100 application/vnd.github+json`);
  const ownerOf140 = (key: string, candidates: readonly string[]): string | undefined => {
    let best: string | undefined;
    let bestWeight: Buffer | undefined;
    for (const candidate of candidates) {
      const weight = hash('sha256', `${candidate}\0${key}`, 'buffer');
      const order = bestWeight === undefined ? 1 : Buffer.compare(weight, bestWeight);
      if (order > 0 || (order === 0 && best !== undefined && candidate < best)) {
        best = candidate;
        bestWeight = weight;
      }
    }
    return best;
  };
  const ownerChoice: Row[] = [];
  for (const members of [2, 8, 64, 256]) {
    const candidates = Array.from({ length: members }, (_, i) => `12D3KooW${randomBytes(33).toString('base64url').slice(0, 44)}${i}`);
    ownerChoice.push(await pair(`${members} candidates`, Math.max(50, Math.round(20_000 / members)),
      (n) => { for (let i = 0; i < n; i++) sink += rendezvousOwner(ownerKeys[i & 1023]!, candidates)!.length; },
      (n) => { for (let i = 0; i < n; i++) sink += ownerOf140(ownerKeys[i & 1023]!, candidates)!.length; }));
  }

  const render = (rows: Row[]): string => table(
    ['operation', 'hand-written ns/op', 'hand-written ops/s', 'library ns/op', 'library ops/s', 'library ÷ hand-written'],
    rows.map((r) => [r.what, fmt(r.hand, 0), fmt(1e9 / r.hand, 0), fmt(r.library, 0), fmt(1e9 / r.library, 0), `${fmt(r.library / r.hand, 2)}x`]),
  );
  const verdict = (rows: Row[], name: string): string => {
    const keep = rows.filter((r) => r.library / r.hand >= KEEP_RATIO).map((r) => r.what);
    return keep.length > 0
      ? `${name}: hand-written kept (≥ ${KEEP_RATIO}x on: ${keep.join('; ')}).`
      : `${name}: no row reaches ${KEEP_RATIO}x: the library is used.`;
  };
  const markdown = [
    '## P2P codecs: hand-written against the libraries',
    '',
    `Written by \`npm run bench -- p2p-codec\` (bench/p2p-codec.ts). Median of ${ROUNDS} interleaved rounds; an \`entry\` frame carries a`,
    'sealed 4 KB JSON response (an unsealed one, as members that proved the scope send, carries api.github.com\'s recorded',
    'answer to a repository GET with its headers, from @octokit/fixtures), a `get` a key and a 32-byte proof. A hand-written codec is kept only where a row reaches',
    `${KEEP_RATIO}x (the ratio column: the library's time over the hand-written one's).`,
    '',
    '### CBOR: src/p2p/cbor.ts against cborg (strict decoding options; cbor.ts decodes as wire.ts does, byte strings as views)',
    '',
    render(cbor),
    '',
    '### Framing: src/p2p/frame-channel.ts against @libp2p/utils (LengthPrefixedDecoder, lpStream\'s varint prefix)',
    '',
    'Both sides encode and decode the frame with cbor.ts: only the length-prefixing differs.',
    '',
    render(framing),
    '',
    `${verdict(cbor, 'CBOR')} ${verdict(framing, 'Framing')}`,
    '',
    '### Crypto of a peer hit: libsodium (sodium-native) against node:crypto, in a loop',
    '',
    '"Hand-written" is libsodium here (for the HMAC, its SHA-256 with the key\'s padded blocks absorbed once), "library"',
    'node:crypto. A loop keeps OpenSSL\'s per-call setup warm, so these rows are the floor of the difference: in the flow',
    'of a peer hit, with other work between calls, the two together cost about 65 µs per hit more through node:crypto',
    '(`peer-ab`, both in one process: 387 against 322 µs of CPU per hit at 1 in flight; docs/benchmarks.md, "Peer hits',
    'without OpenSSL\'s per-call setup").',
    '',
    render(crypto),
    '',
    '### Owner choice: one SHA-256 per key against one per candidate',
    '',
    '`rendezvousOwner` (src/p2p/rendezvous.ts, protocol 1.5.0: the key hashed once, fmix64 of its first 8 bytes xor the peer\'s',
    'per candidate) against the weight of protocol 1.4.0 (`sha256(peerId ‖ 0x00 ‖ key)` per candidate), on distinct keys of',
    'realistic length; an asker chooses an owner once per miss, an owner once per hand-off.',
    '',
    table(['candidates', 'one SHA-256 per key, ns', 'one SHA-256 per candidate (1.4.0), ns', '1.4.0 ÷ 1.5.0'],
      ownerChoice.map((r) => [r.what.split(' ')[0]!, fmt(r.hand, 0), fmt(r.library, 0), `${fmt(r.library / r.hand, 1)}x`])),
    '',
    machineLine(),
  ].join('\n');
  writeSection('p2p-codec', markdown);
  return markdown;
}
