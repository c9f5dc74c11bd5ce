import { CacheError } from '../errors.js';
import { decodeStrictCbor, encodeCbor, encodeCborLengthPrefixed } from './cbor.js';

/**
 * The frames of protocol `/github-cache/1.5.0`, as CBOR maps, and their strict validator.
 *
 * Guarantee: `decodeFrame` returns a well-typed `Frame` or throws `WireFormatError`, whatever the bytes: not
 * CBOR, non-canonical CBOR, an unknown `type`, a missing, extra or wrongly typed field, or a field above its
 * size limit (see WIRE_LIMITS). It never returns a partially checked value and never throws anything else.
 * Frames are length-prefixed on the stream (unsigned varint, `lpStream` of @libp2p/utils); the frame size limit
 * is enforced by the reader before any byte is decoded.
 *
 * One long-lived stream per peer and direction carries many requests at once. Both ends first send `hello`
 * (with a fresh random challenge). The opener (the asker) then sends `get`s, each with a proof under the
 * acceptor's challenge; the acceptor (the owner) sends `scopes` (its scope ids, each with a proof under the
 * opener's challenge) once the opener's `hello` has arrived and again whenever its scopes or known peers
 * change, and answers each `get` with `entry`, `miss` or `error` carrying the `get`'s `id`, in any order.
 * A `get` marked `handoff: 1` is answered from the acceptor's cache only (serving.ts), never forwarded. A large
 * answer goes as `part`s instead of one `entry` (serving.ts), so small answers are not stuck behind it.
 * A sealed `get` carries the key's `tag` (sealed-key.ts); an acceptor that does not hold the scope (a blind owner,
 * lease.ts) may answer it `lease`, and the opener then ends that lease with `put` (the sealed entry it fetched) or
 * `release` on the same stream. A `get` marked `plain: 1` (only to an owner that proved the key's scope) may be
 * answered with the entry's payload unsealed (`entry` with `payload`), since noise already protects the stream
 * between two holders of the scope.
 *
 * Size: one unit: every frame's type, its fields and their one strict decoder belong together (a field added in
 * one place and not the other is a wire bug).
 */

/**
 * The libp2p protocol id. Part of every entry's additional data, so a version change invalidates old envelopes.
 * 1.2.0: scope and get proofs also cover both peer ids and their direction (scope-proof.ts); 1.1.0 peers do not
 * accept them, so the two versions do not speak to each other.
 * 1.3.0: a `get` may carry `handoff: 1` (answered from cache only, never forwarded) and large entries travel as
 * `part` frames; 1.2.0 peers strictly refuse both (and would strike the sender), so the id moved with them.
 * 1.4.0: blind owners and leases: a sealed `get` carries `tag`, the owner may answer `lease`, and the asker sends
 * `put` or `release` on its own stream (lease.ts); 1.3.0 peers strictly refuse all four. Within 1.4.0 (never
 * released before them): a `release` may say `unshareable: 1`, and a tagged `get` may say `refresh: 1`.
 * 1.5.0: entries are sealed with XChaCha20-Poly1305 (envelope version 2, 24-byte nonces, entry-aead.ts) instead of
 * AES-256-GCM. A 1.4.0 member could not open a 1.5.0 entry (nor the reverse), so the id moved with it. Within 1.5.0
 * (never released before it): a `get` to an owner that proved the scope may say `plain: 1`, and the owner then
 * answers the entry's payload unsealed in the `entry` frame (`payload` instead of `sealed`), whose `headers` name the
 * pairs defined before on the stream by their index (header-table.ts).
 */
export const PROTOCOL = '/github-cache/1.5.0';
/** Version number carried in `hello`. */
export const WIRE_VERSION = 1;

/** Size limits of fields, checked on every decoded frame. */
export const WIRE_LIMITS = Object.freeze({
  /** Scope claims per `scopes`. */
  scopes: 1024,
  /** Multiaddrs per peer. */
  addrs: 16,
  /** Characters per multiaddr. */
  addrLength: 256,
  /** Peers per `hello`/`scopes` (peer exchange). */
  peers: 64,
  /** Characters per peer id. */
  peerIdLength: 128,
  /** Characters per cache key. */
  keyLength: 8192,
  /** Characters per `error` message. */
  messageLength: 1024,
  /** Largest request id (ids wrap around below it). */
  maxId: 0xffff_ffff,
  /** Largest `size` of a `part` (a sealed entry sent in pieces); receivers apply their own, smaller limit. */
  maxPartedBytes: 256 * 1024 * 1024,
  /** Bytes of the `hello` challenge and of a `get` proof. */
  challengeBytes: 32,
  proofBytes: 32,
  /** Bytes of a sealed get's key tag (sealed-key.ts). */
  tagBytes: 32,
});

/** Why an owner answered `miss`. */
export const MISS_REASONS = ['not-held', 'no-entry', 'busy', 'bad-key', 'bad-proof', 'too-large', 'stopping'] as const;
export type MissReason = (typeof MISS_REASONS)[number];

/** A peer this node knows, for peer exchange. */
export interface PeerRecord {
  /** The peer's id (base58btc or CID text). */
  readonly id: string;
  /** Its listen multiaddrs, without /p2p/. */
  readonly addrs: readonly string[];
}

/** First frame of each end of a stream. */
export interface HelloFrame {
  readonly type: 'hello';
  /** WIRE_VERSION of the sender. */
  readonly version: number;
  /** Random bytes the other end's proofs on this stream must cover (see scope-proof.ts). */
  readonly challenge: Uint8Array;
  /** The sender's own listen multiaddrs. */
  readonly addrs: readonly string[];
  /** Peers the sender is connected to, for peer exchange. */
  readonly peers: readonly PeerRecord[];
}

/** A scope the sender holds: its one-way id (never a token) and the proof that the sender holds it. */
export interface ScopeClaim {
  readonly id: string;
  /** scopeClaimProof under the receiver's challenge on this stream. */
  readonly proof: Uint8Array;
}

/** From the acceptor: the scopes it holds (all of them, replacing earlier claims) and the peers it knows. */
export interface ScopesFrame {
  readonly type: 'scopes';
  readonly scopes: readonly ScopeClaim[];
  readonly peers: readonly PeerRecord[];
}

/** Asks the acceptor, as the key's owner, for an entry. */
export interface GetFrame {
  readonly type: 'get';
  /** Request id, unique among the sender's in-flight requests on this stream. */
  readonly id: number;
  /** The cache key (`scopeId METHOD url accept`). */
  readonly key: string;
  /** getProof under the acceptor's challenge: the sender holds the key's scope (scope-proof.ts). */
  readonly proof: Uint8Array;
  /**
   * 1 (present only then): a hand-off ask. The sender, the key's new owner, asks a previous holder for an entry it
   * holds fresh now; the acceptor answers from its cache only (`entry` or `miss no-entry`) and never forwards it
   * to an owner or to GitHub, so a hand-off ask never cascades.
   */
  readonly handoff?: 1;
  /**
   * Only with a sealed key (sealed-key.ts): the key's tag, HMAC of the key under the scope's tag key. Equal keys
   * have equal tags, so an owner without the scope (a blind owner, lease.ts) can coordinate them unread.
   */
  readonly tag?: Uint8Array;
  /**
   * 1 (present only then, and only with `tag`): the asker refused the sealed entry the owner relayed for this key
   * (stale, older than what it holds, written since, or not opening): the owner drops its copy and answers as if
   * it kept none (a lease, or a wait behind the lease out).
   */
  readonly refresh?: 1;
  /**
   * 1 (present only then, and never with a sealed key): the asker takes the entry unsealed, as `payload` in the
   * `entry` frame. It asks so only of an owner that proved the key's scope to it on this stream; the owner may answer
   * sealed all the same (an entry too large for one frame goes sealed, in `part`s).
   */
  readonly plain?: 1;
}

/**
 * A blind owner's answer to a sealed `get`: nobody is fetching the key, so the asker fetches it itself with its
 * own token, then ends lease `lease` with `put` or `release`. Other askers of the key wait on the owner meanwhile.
 */
export interface LeaseFrame {
  readonly type: 'lease';
  readonly id: number;
  /** The lease's number, chosen by the owner, unique among the leases out on this stream. */
  readonly lease: number;
}

/** From the asker, on its own stream: the sealed entry (envelope.ts) it fetched under `lease`, fresh for `ttlMs`. */
export interface PutFrame {
  readonly type: 'put';
  readonly lease: number;
  readonly sealed: Uint8Array;
  /** How long the entry stays fresh from now, in ms (the owner keeps it at most its maxEntryTtl). */
  readonly ttlMs: number;
}

/** From the asker, on its own stream: it has nothing to put under `lease` (the fetch failed, or is not shareable). */
export interface ReleaseFrame {
  readonly type: 'release';
  readonly lease: number;
  /**
   * 1 (present only then): the answer cannot be shared (too large, no-store, a redirect, a 4xx), so the owner
   * answers every waiter `miss no-entry` at once (each fetches it itself) instead of passing the lease on.
   */
  readonly unshareable?: 1;
}

/**
 * The answer: a sealed entry (envelope.ts), or, to a `get` that asked for it (`plain`), the entry's payload unsealed
 * (envelope.ts, `entryPayload`: a map checked by `openPlainEntry`). Exactly one of the two.
 */
export type EntryFrame =
  | { readonly type: 'entry'; readonly id: number; readonly sealed: Uint8Array }
  | { readonly type: 'entry'; readonly id: number; readonly payload: Readonly<Record<string, unknown>> };

/**
 * One piece of a large answer: the sealed entry (envelope.ts) of request `id`, `size` bytes in all, sent in
 * pieces in order (`offset` = the bytes sent before), so small answers on the same stream go out between them.
 * The receiver opens the entry only once every byte has arrived (serving.ts, transfers.ts).
 */
export interface PartFrame {
  readonly type: 'part';
  readonly id: number;
  /** Bytes of the whole sealed entry (the same in every piece). */
  readonly size: number;
  /** Where this piece starts in the sealed entry. */
  readonly offset: number;
  readonly bytes: Uint8Array;
}

/**
 * The owner is still working on request `id` (typically: waiting for GitHub). Sent every half request timeout
 * while it serves, so an asker keeps waiting for a live owner instead of fetching the same key itself.
 */
export interface WorkingFrame {
  readonly type: 'working';
  readonly id: number;
}

/** The owner has no entry to give. */
export interface MissFrame {
  readonly type: 'miss';
  readonly id: number;
  readonly reason: MissReason;
}

/** The owner failed while answering. */
export interface ErrorFrame {
  readonly type: 'error';
  readonly id: number;
  readonly message: string;
}

export type Frame = HelloFrame | ScopesFrame | GetFrame | EntryFrame | PartFrame | WorkingFrame | MissFrame | ErrorFrame
  | LeaseFrame | PutFrame | ReleaseFrame;

/** A frame from a peer is not a valid frame of this protocol. Nothing in it was used. */
export class WireFormatError extends CacheError {
  constructor(detail: string) {
    super('ERR_P2P_WIRE_FORMAT', `Invalid ${PROTOCOL} frame from a peer: ${detail}. The stream is closed.`);
  }
}

/**
 * Whether a cache key may be asked of the fleet: a `get` for it passes every peer's validator (WIRE_LIMITS.keyLength)
 * and an entry sealed for it passes the envelope's schema. A key that is not shareable stays local: asking an
 * owner for it would only get the honest asker struck. The cache calls this before asking the fleet;
 * PeerNetwork.fetch answers 'unavailable' at once for such a key, without sending anything.
 */
export function isShareableKey(key: string): boolean {
  return typeof key === 'string' && key.length > 0 && key.length <= WIRE_LIMITS.keyLength;
}

export function encodeFrame(frame: Frame): Uint8Array {
  return encodeCbor(frame);
}

/** encodeFrame(frame) preceded by its length prefix (unsigned varint), as it goes on the stream: one buffer. */
export function encodeLengthPrefixedFrame(frame: Frame): Uint8Array {
  return encodeCborLengthPrefixed(frame);
}

/** Fields a frame may carry or leave out (additions to the protocol: older frames stay valid). */
const OPTIONAL_FIELDS: Readonly<Partial<Record<Frame['type'], readonly string[]>>> = {
  get: ['handoff', 'tag', 'refresh', 'plain'],
  entry: ['sealed', 'payload'],
  release: ['unshareable'],
};

const FIELDS: Readonly<Record<Frame['type'], readonly string[]>> = {
  hello: ['type', 'version', 'challenge', 'addrs', 'peers'],
  scopes: ['type', 'scopes', 'peers'],
  get: ['type', 'id', 'key', 'proof'],
  entry: ['type', 'id'],
  part: ['type', 'id', 'size', 'offset', 'bytes'],
  working: ['type', 'id'],
  miss: ['type', 'id', 'reason'],
  error: ['type', 'id', 'message'],
  lease: ['type', 'id', 'lease'],
  put: ['type', 'lease', 'sealed', 'ttlMs'],
  release: ['type', 'lease'],
};

const SCOPE_ID = /^(anonymous|[0-9a-f]{32})$/;
const PEER_ID = /^[0-9A-Za-z]+$/;

function fail(detail: string): never {
  throw new WireFormatError(detail);
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function string(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string') fail(`${field} is not a string`);
  if (value.length > max) fail(`${field} is longer than ${max} characters`);
  return value;
}

function bytes(value: unknown, field: string, exact?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) fail(`${field} is not a byte string`);
  if (exact !== undefined && value.byteLength !== exact) fail(`${field} is not ${exact} bytes`);
  return value;
}

function list<T>(value: unknown, field: string, max: number, item: (v: unknown, field: string) => T): T[] {
  if (!Array.isArray(value)) fail(`${field} is not an array`);
  if (value.length > max) fail(`${field} has more than ${max} items`);
  return value.map((v, i) => item(v, `${field}[${i}]`));
}

function requestId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > WIRE_LIMITS.maxId) fail('id is not an integer from 0 to 2^32-1');
  return value;
}

function scopeClaims(value: unknown): ScopeClaim[] {
  return list(value, 'scopes', WIRE_LIMITS.scopes, (v, f) => {
    if (!isMap(v)) fail(`${f} is not a map`);
    if (Object.keys(v).length !== 2 || !Object.hasOwn(v, 'id') || !Object.hasOwn(v, 'proof')) fail(`${f} must have exactly id and proof`);
    const id = string(v.id, `${f}.id`, 64);
    if (!SCOPE_ID.test(id)) fail(`${f}.id is not a scope id`);
    return { id, proof: kept(bytes(v.proof, `${f}.proof`, WIRE_LIMITS.proofBytes)) };
  });
}

function addrs(value: unknown, field: string): string[] {
  return list(value, field, WIRE_LIMITS.addrs, (v, f) => {
    const s = string(v, f, WIRE_LIMITS.addrLength);
    if (!s.startsWith('/')) fail(`${f} is not a multiaddr`);
    return s;
  });
}

function peers(value: unknown): PeerRecord[] {
  return list(value, 'peers', WIRE_LIMITS.peers, (v, f) => {
    if (!isMap(v)) fail(`${f} is not a map`);
    const keys = Object.keys(v);
    if (keys.length !== 2 || !Object.hasOwn(v, 'id') || !Object.hasOwn(v, 'addrs')) fail(`${f} must have exactly id and addrs`);
    const id = string(v.id, `${f}.id`, WIRE_LIMITS.peerIdLength);
    if (!PEER_ID.test(id)) fail(`${f}.id is not a peer id`);
    return { id, addrs: addrs(v.addrs, `${f}.addrs`) };
  });
}

/** A copy of bytes that are kept (a hello's challenge, scope proofs): they must not pin the frame's memory. */
function kept(value: Uint8Array): Uint8Array {
  return value.slice();
}

/**
 * Decodes and validates one frame (the bytes between two length prefixes). The byte strings of a `get` and an
 * `entry` (its proof, the sealed entry) are views of `data`, which must therefore not be written to afterwards;
 * those of `hello` and `scopes` are copies.
 */
export function decodeFrame(data: Uint8Array): Frame {
  let value: unknown;
  try {
    value = decodeStrictCbor(data, { viewBytesFrom: 0 });
  } catch (err) {
    // cborg throws plain Errors (and RangeError on absurd nesting); all of them mean "not our CBOR".
    fail(`not canonical CBOR (${err instanceof Error ? err.message.slice(0, 120) : 'decode failed'})`);
  }
  if (!isMap(value)) fail('a frame must be a CBOR map');
  const type = value.type;
  if (typeof type !== 'string' || !Object.hasOwn(FIELDS, type)) fail(`unknown frame type ${JSON.stringify(typeof type === 'string' ? type.slice(0, 40) : typeof type)}`);
  const expected = FIELDS[type as Frame['type']];
  const present = Object.keys(value);
  const optional = OPTIONAL_FIELDS[type as Frame['type']] ?? [];
  for (const field of present) if (!expected.includes(field) && !optional.includes(field)) fail(`unexpected field ${JSON.stringify(field.slice(0, 40))} in ${type}`);
  for (const field of expected) if (!Object.hasOwn(value, field)) fail(`missing field ${field} in ${type}`);

  switch (type as Frame['type']) {
    case 'hello': {
      if (value.version !== WIRE_VERSION) fail(`unsupported version ${JSON.stringify(value.version)} (this node speaks ${WIRE_VERSION})`);
      return {
        type: 'hello',
        version: WIRE_VERSION,
        challenge: kept(bytes(value.challenge, 'challenge', WIRE_LIMITS.challengeBytes)),
        addrs: addrs(value.addrs, 'addrs'),
        peers: peers(value.peers),
      };
    }
    case 'scopes':
      return { type: 'scopes', scopes: scopeClaims(value.scopes), peers: peers(value.peers) };
    case 'get': {
      const key = string(value.key, 'key', WIRE_LIMITS.keyLength);
      let get: GetFrame = { type: 'get', id: requestId(value.id), key, proof: bytes(value.proof, 'proof', WIRE_LIMITS.proofBytes) };
      if (Object.hasOwn(value, 'handoff')) {
        if (value.handoff !== 1) fail('handoff is not 1');
        get = { ...get, handoff: 1 };
      }
      if (Object.hasOwn(value, 'tag')) get = { ...get, tag: kept(bytes(value.tag, 'tag', WIRE_LIMITS.tagBytes)) };
      if (Object.hasOwn(value, 'refresh')) {
        if (value.refresh !== 1) fail('refresh is not 1');
        if (get.tag === undefined) fail('refresh without tag');
        get = { ...get, refresh: 1 };
      }
      if (Object.hasOwn(value, 'plain')) {
        if (value.plain !== 1) fail('plain is not 1');
        if (get.tag !== undefined) fail('plain with a sealed key');
        get = { ...get, plain: 1 };
      }
      return get;
    }
    case 'entry': {
      const id = requestId(value.id);
      if (Object.hasOwn(value, 'sealed') === Object.hasOwn(value, 'payload')) fail('an entry carries exactly one of sealed and payload');
      if (Object.hasOwn(value, 'sealed')) return { type: 'entry', id, sealed: bytes(value.sealed, 'sealed') };
      // Its fields are checked by the asker (envelope.ts, openPlainEntry), which knows the entry schema.
      if (!isMap(value.payload)) fail('payload is not a map');
      return { type: 'entry', id, payload: value.payload };
    }
    case 'part': {
      const size = value.size;
      const offset = value.offset;
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > WIRE_LIMITS.maxPartedBytes) fail(`size is not an integer from 1 to ${WIRE_LIMITS.maxPartedBytes}`);
      if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0 || offset >= size) fail('offset is not an integer below size');
      const piece = bytes(value.bytes, 'bytes');
      if (piece.byteLength === 0 || offset + piece.byteLength > size) fail('bytes is empty or runs past size');
      return { type: 'part', id: requestId(value.id), size, offset, bytes: piece };
    }
    case 'working':
      return { type: 'working', id: requestId(value.id) };
    case 'miss': {
      const reason = string(value.reason, 'reason', 32);
      if (!(MISS_REASONS as readonly string[]).includes(reason)) fail(`unknown miss reason ${JSON.stringify(reason)}`);
      return { type: 'miss', id: requestId(value.id), reason: reason as MissReason };
    }
    case 'error':
      return { type: 'error', id: requestId(value.id), message: string(value.message, 'message', WIRE_LIMITS.messageLength) };
    case 'lease':
      return { type: 'lease', id: requestId(value.id), lease: requestId(value.lease) };
    case 'put': {
      const ttlMs = value.ttlMs;
      if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs < 0) fail('ttlMs is not a non-negative integer');
      return { type: 'put', lease: requestId(value.lease), sealed: bytes(value.sealed, 'sealed'), ttlMs };
    }
    case 'release': {
      if (!Object.hasOwn(value, 'unshareable')) return { type: 'release', lease: requestId(value.lease) };
      if (value.unshareable !== 1) fail('unshareable is not 1');
      return { type: 'release', lease: requestId(value.lease), unshareable: 1 };
    }
  }
}
