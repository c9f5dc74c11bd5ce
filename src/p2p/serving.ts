import { setMaxListeners } from 'node:events';
import type { CacheEntry } from '../cache/entry.js';
import type { FleetHost } from '../cache/ports.js';
import { parseRequestKey, type RequestKeyParts } from '../cache/request-key.js';
import type { ResolvedP2POptions } from '../options.js';
import { ScopeGrace } from './cold-owner.js';
import { entryPayload, payloadBytesBound, sealEntry } from './envelope.js';
import type { FrameChannel } from './frame-channel.js';
import type { LeaseTable, LeaseWaiter } from './lease.js';
import { errorMessage } from './limits.js';
import type { ScopeClaims } from './scope-claims.js';
import { isSealedKey, openSealedKey, sealedScopeOf } from './sealed-key.js';
import { verifyGetProof } from './scope-proof.js';
import type { PeerSession, ServerSide } from './sessions.js';
import type { ProtocolCounters, RejectionKind } from './stats.js';
import { WIRE_LIMITS, type Frame, type GetFrame, type PutFrame, type ReleaseFrame } from './wire.js';

/**
 * Answering `get`s as the key's owner.
 *
 * Guarantee: a `get` is served only with a valid proof, under this node's challenge on that stream, made by that
 * asker for this node (peer ids from the noise handshake), that the asker holds the key's scope (a get proof
 * reflected back to its maker or relayed from another asker fails); at most `maxConcurrentServesPerPeer` are
 * served at once per peer (more are answered `miss busy`); each is answered exactly once (`entry`, `miss` or
 * `error`) unless its stream closed first. An entry held now is answered in the same turn; one that needs the
 * cache's upstream request is answered when it is done, and meanwhile the asker gets a `working` frame every half
 * request timeout. One shared timer sends those, and it runs only while something is being served. An honest
 * owner never withholds: a request the cache has not answered `requestTimeoutMs` before the askers'
 * `maxOwnerWaitMs` runs out is answered `error` then (the asker goes upstream itself), and the cache's late answer
 * is dropped. Entries never go out with a TTL above this node's `maxEntryTtl`, nor in a frame above
 * `maxFrameBytes`, nor with headers the asker's schema refuses (envelope.ts trims them).
 *
 * Large entries: a sealed entry above `largeEntryBytes` (256 KiB) goes in `part` frames of that size, each sent
 * once the stream has at most one piece waiting to leave, so small answers to the same peer are never stuck behind
 * a large one (at most one piece ahead of them). At most `maxLargeTransfersPerPeer` go to one peer at once (more:
 * `miss busy`), each of at most `maxPartedEntryBytes` (above: `miss too-large`).
 *
 * Blind owner (lease.ts): a `get` whose key is sealed (sealed-key.ts) comes from an asker that has not seen
 * this node prove the scope. If this node holds the scope, the key is opened under it and served as above. If
 * not and the get carries the key's tag, this node serves it blind from its lease table: the sealed entry it
 * keeps for the tag (`entry`, the bytes as the lease holder put them: the asker verifies them), else a wait
 * behind the lease out (counted in `maxConcurrentServesPerPeer`, with `working` frames, so the asker waits as
 * long as this node is alive; the first `working` goes at once), else the lease (`lease`). `put` and `release`
 * from the holder's stream end it; a late one from a recent former holder (a slow holder whose lease passed on)
 * is taken or ignored, never struck; one for a lease it does not hold, or with bytes that are not laid out as a
 * sealed entry or too large, is struck. `release` with `unshareable: 1` answers every waiter `miss no-entry`
 * (and later asks of the key for a while). A get with `refresh: 1` first drops the entry kept for its tag (the
 * asker refused it). Leases and kept bytes count against the asker's peer id (lease.ts). A sealed
 * get without a tag waits up to `requestTimeoutMs` for this node to hold the scope (cold-owner.ts), then is
 * answered `miss not-held`. Nothing is read, forged or fetched upstream without the scope.
 *
 * Hand-off (`get` with `handoff: 1`, asking.ts): the asker is a key's new owner asking this node, a previous
 * holder, before it goes to GitHub. Proofs are checked as for any `get`; the answer is the fresh entry held now
 * or `miss` at once (no cache work, no grace, no forwarding), so a hand-off ask never cascades.
 */

export interface OwnerServingInit {
  /** This node's peer id: the verifier of get proofs. */
  readonly selfId: string;
  readonly host: Pick<FleetHost, 'serveAsOwner' | 'heldEntry'>;
  readonly claims: ScopeClaims;
  readonly counters: ProtocolCounters;
  readonly reject: (peerId: string, kind: RejectionKind, detail: string) => void;
  readonly p2p: Pick<ResolvedP2POptions, 'maxEntryTtl' | 'maxFrameBytes' | 'requestTimeoutMs'>;
  readonly maxConcurrentServesPerPeer: number;
  /** The askers' longest wait: a request still unanswered `requestTimeoutMs` before it is answered `error` (never withheld). */
  readonly maxOwnerWaitMs: number;
  /** Sealed entries above this go in `part`s of this size (limits.ts). */
  readonly largeEntryBytes: number;
  /** Largest sealed entry sent in parts; above, `miss too-large`. */
  readonly maxPartedEntryBytes: number;
  /** Large answers sent at once per peer; more are answered `miss busy`. */
  readonly maxLargeTransfersPerPeer: number;
  /** Sealed entries kept and leases handed out for keys of scopes this node does not hold. */
  readonly leases: LeaseTable;
  readonly now: () => number;
  readonly stopped: () => boolean;
}

export class OwnerServing {
  readonly #init: OwnerServingInit;
  /** Aborted at stop: the signal of every serveAsOwner call. */
  readonly #serving = new AbortController();
  /** Requests waiting on the cache; the heartbeat sends `working` for those older than half a timeout. */
  /** Requests answered later; `release` (a blind waiter) frees its place as soon as it is given up on or its stream closes. */
  readonly #inService = new Set<{ channel: FrameChannel; id: number; since: number; gaveUp: boolean; release?: () => void }>();
  #heartbeat: NodeJS.Timeout | undefined;
  /** Sealed gets waiting for a scope this node does not hold yet. */
  readonly #grace: ScopeGrace;

  constructor(init: OwnerServingInit) {
    this.#init = init;
    this.#grace = new ScopeGrace(init.p2p.requestTimeoutMs);
    // Every request being served listens on this signal.
    setMaxListeners(0, this.#serving.signal);
  }

  serve(session: PeerSession, server: ServerSide, frame: GetFrame): void {
    const reply = (answer: Frame): void => {
      server.channel.send(answer);
    };
    if (isSealedKey(frame.key)) return this.#serveSealed(session, server, frame);
    const parts = parseRequestKey(frame.key);
    if (parts === undefined) {
      this.#init.reject(session.id, 'request', 'a get for a malformed key');
      return reply({ type: 'miss', id: frame.id, reason: 'bad-key' });
    }
    const keys = this.#init.claims.keysOf(parts.scopeId);
    if (keys === undefined) return reply({ type: 'miss', id: frame.id, reason: 'not-held' });
    if (!verifyGetProof(keys.proofKey, server.challenge, frame.id, frame.key, { prover: session.id, verifier: this.#init.selfId }, frame.proof)) {
      this.#init.reject(session.id, 'proof', 'a get without a valid proof of its scope');
      return reply({ type: 'miss', id: frame.id, reason: 'bad-proof' });
    }
    if (session.serving >= this.#init.maxConcurrentServesPerPeer) return reply({ type: 'miss', id: frame.id, reason: 'busy' });
    if (this.#init.stopped()) return reply({ type: 'miss', id: frame.id, reason: 'stopping' });
    // A hit in the local cache is answered at once, in this turn: no upstream request, nothing to wait for.
    const held = this.#init.host.heldEntry(frame.key, parts);
    const plain = frame.plain === 1;
    if (held !== undefined) return this.#sendEntry(session, server, frame.id, frame.key, held, keys.entryKey, plain);
    // A hand-off ask (the key's new owner asking a previous holder) is answered from the cache only: never forwarded.
    if (frame.handoff === 1) return reply({ type: 'miss', id: frame.id, reason: 'no-entry' });
    // Only the id and key go on (not the frame, whose proof may be a view of the received bytes).
    void this.#serveLater(session, server, frame.id, frame.key, parts, keys.entryKey, plain);
  }

  /** The cache now holds `scopeId`: gets waiting for it go on. */
  scopeAdded(scopeId: string): void {
    this.#grace.held(scopeId);
  }

  /** Stops serving: pending cache work is aborted and the heartbeat ends. Idempotent. */
  stop(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#inService.clear();
    this.#grace.stop();
    this.#serving.abort(new Error('the P2P host is stopping'));
  }

  /** A get whose key is sealed under its scope: opened and served if the scope is held, else held for the grace. */
  #serveSealed(session: PeerSession, server: ServerSide, frame: GetFrame): void {
    const reply = (answer: Frame): void => {
      server.channel.send(answer);
    };
    const scopeId = sealedScopeOf(frame.key);
    if (scopeId === undefined) {
      this.#init.reject(session.id, 'request', 'a get for a malformed sealed key');
      return reply({ type: 'miss', id: frame.id, reason: 'bad-key' });
    }
    const keys = this.#init.claims.keysOf(scopeId);
    if (keys === undefined && frame.tag !== undefined && frame.handoff !== 1) return this.#serveBlind(session, server, scopeId, frame.tag, frame.id, frame.refresh === 1);
    if (keys !== undefined) {
      const key = openSealedKey(frame.key, keys.entryKey);
      if (key === undefined) {
        this.#init.reject(session.id, 'proof', 'a sealed key that does not open under its scope');
        return reply({ type: 'miss', id: frame.id, reason: 'bad-proof' });
      }
      return this.serve(session, server, { type: 'get', id: frame.id, key, proof: frame.proof, ...(frame.handoff === 1 ? { handoff: 1 } : {}) });
    }
    // A hand-off ask is about what this node holds now: no grace.
    if (frame.handoff === 1 || this.#grace.refuses(scopeId)) return reply({ type: 'miss', id: frame.id, reason: 'not-held' });
    if (session.serving >= this.#init.maxConcurrentServesPerPeer) return reply({ type: 'miss', id: frame.id, reason: 'busy' });
    if (this.#init.stopped()) return reply({ type: 'miss', id: frame.id, reason: 'stopping' });
    // Kept while waiting: the id, the sealed key and a copy of the proof (never a view of the received bytes).
    const { id, key: sealed } = frame;
    const proof = frame.proof.slice();
    session.serving++;
    const pending = { channel: server.channel, id, since: this.#init.now(), gaveUp: false };
    this.#inService.add(pending);
    this.#ensureHeartbeat();
    this.#grace.wait(scopeId, (held) => {
      this.#inService.delete(pending);
      session.serving--;
      if (server.channel.closed || this.#init.stopped() || pending.gaveUp) return;
      if (!held) return reply({ type: 'miss', id, reason: 'not-held' });
      this.#serveSealed(session, server, { type: 'get', id, key: sealed, proof });
    });
  }

  /** A sealed get of a scope this node does not hold, with its key's tag: answered from the lease table (lease.ts). */
  #serveBlind(session: PeerSession, server: ServerSide, scopeId: string, tag: Uint8Array, id: number, refresh: boolean): void {
    const { channel } = server;
    if (session.serving >= this.#init.maxConcurrentServesPerPeer) return void channel.send({ type: 'miss', id, reason: 'busy' });
    if (this.#init.stopped()) return void channel.send({ type: 'miss', id, reason: 'stopping' });
    // The asker refused the entry kept for the key (stale, or not opening): drop it, answer as if none were kept.
    if (refresh) this.#init.leases.drop(scopeId, tag);
    let waiting = false;
    const done = (): boolean => {
      if (!waiting) return !channel.closed;
      waiting = false;
      this.#inService.delete(pending);
      session.serving--;
      return !channel.closed && !pending.gaveUp && !this.#init.stopped();
    };
    // Given up on (or its stream closed) while the lease is still out: its place among the peer's serves is free now,
    // not when the lease ends (up to the lease bound later).
    const pending = { channel, id, since: this.#init.now(), gaveUp: false, release: () => void done() };
    const waiter: LeaseWaiter = {
      holder: channel,
      peer: session.id,
      alive: () => !channel.closed && !pending.gaveUp && !this.#init.stopped(),
      entry: (sealed) => {
        if (!done()) return;
        channel.send({ id, type: 'entry', sealed });
        this.#init.counters.count('blindServed');
      },
      granted: (lease) => {
        if (!done()) return;
        channel.send({ type: 'lease', id, lease });
        this.#init.counters.count('leasesGranted');
      },
      unshared: () => {
        if (done()) channel.send({ type: 'miss', id, reason: 'no-entry' });
      },
      dropped: () => {
        done();
      },
    };
    const outcome = this.#init.leases.ask(scopeId, tag, waiter);
    if (outcome === 'busy') return void channel.send({ type: 'miss', id, reason: 'busy' });
    if (outcome === 'unshared') return void channel.send({ type: 'miss', id, reason: 'no-entry' });
    if (outcome !== 'wait') return;
    waiting = true;
    session.serving++;
    this.#inService.add(pending);
    this.#ensureHeartbeat();
    // Queued behind a lease: say so now, so the asker waits on this node's liveness from the start.
    channel.send({ type: 'working', id });
  }

  /** A `put` from an asker's stream: the sealed entry it fetched under a lease this node gave it. */
  put(session: PeerSession, server: ServerSide, frame: PutFrame): void {
    const outcome = this.#init.leases.put(server.channel, frame.lease, frame.sealed, frame.ttlMs);
    // 'late': the holder's lease had passed on (it was slow, not a cheat): never struck.
    if (outcome === 'unknown') this.#init.reject(session.id, 'request', 'a put for a lease it does not hold');
    else if (outcome === 'oversize') this.#init.reject(session.id, 'oversize', `a put of ${frame.sealed.byteLength} bytes`);
    else if (outcome === 'garbage') this.#init.reject(session.id, 'request', 'a put that is not a sealed entry');
  }

  /** A `release` from an asker's stream: it has nothing to put under its lease. */
  release(session: PeerSession, server: ServerSide, frame: ReleaseFrame): void {
    if (this.#init.leases.release(server.channel, frame.lease, frame.unshareable === 1) === 'unknown') this.#init.reject(session.id, 'request', 'a release of a lease it does not hold');
  }

  /** Serves a get that needs the cache's asynchronous work (an upstream request, or a wait for one). */
  async #serveLater(session: PeerSession, server: ServerSide, id: number, key: string, parts: RequestKeyParts, entryKey: Uint8Array,
    plain: boolean): Promise<void> {
    session.serving++;
    // While GitHub is slow (or this node's per-scope cap queues the request), tell the asker we are alive.
    const pending = { channel: server.channel, id, since: this.#init.now(), gaveUp: false };
    this.#inService.add(pending);
    this.#ensureHeartbeat();
    let entry: CacheEntry | undefined;
    try {
      entry = await this.#init.host.serveAsOwner(key, this.#serving.signal, parts);
    } catch (err) {
      if (!pending.gaveUp) server.channel.send({ type: 'error', id, message: errorMessage(err).slice(0, WIRE_LIMITS.messageLength) });
      return;
    } finally {
      this.#inService.delete(pending);
      session.serving--;
    }
    if (server.channel.closed || pending.gaveUp) return;
    if (entry === undefined) {
      server.channel.send({ type: 'miss', id, reason: 'no-entry' });
      return;
    }
    this.#sendEntry(session, server, id, key, entry, entryKey, plain);
  }

  /**
   * Sends `entry` as the answer to request `id` for `key`: unsealed in one `entry` when the get asked for it
   * (`plain`, see wire.ts) and it fits in one; else sealed, in one `entry`, in `part`s, or `miss too-large`.
   */
  #sendEntry(session: PeerSession, server: ServerSide, id: number, key: string, entry: CacheEntry, entryKey: Uint8Array, plain = false): void {
    const { maxEntryTtl } = this.#init.p2p;
    // Askers refuse a TTL above their p2p.maxEntryTtl (and count it against us): never send one above ours.
    const maxExpiresAt = entry.storedAt + maxEntryTtl * 1000;
    const sent = entry.expiresAt > maxExpiresAt ? { ...entry, expiresAt: Math.floor(maxExpiresAt) } : entry;
    const pieceBytes = this.#pieceBytes();
    if (plain && payloadBytesBound(sent, key) <= pieceBytes) {
      server.channel.send({ id, type: 'entry', payload: entryPayload(sent, key, server.headerTable) });
      this.#init.counters.count('requestsServed');
      return;
    }
    const sealed = sealEntry(sent, key, entryKey);
    if (sealed.byteLength <= pieceBytes) {
      server.channel.send({ id, type: 'entry', sealed });
      this.#init.counters.count('requestsServed');
      return;
    }
    if (sealed.byteLength > this.#init.maxPartedEntryBytes) {
      server.channel.send({ type: 'miss', id, reason: 'too-large' });
      return;
    }
    if (session.largeTransfers >= this.#init.maxLargeTransfersPerPeer) {
      server.channel.send({ type: 'miss', id, reason: 'busy' });
      return;
    }
    session.largeTransfers++;
    void this.#sendParts(server, id, sealed, pieceBytes).finally(() => session.largeTransfers--);
  }

  /** Bytes of a piece: `largeEntryBytes`, within a frame (a frame is the bytes plus a few dozen bytes of CBOR around them). */
  #pieceBytes(): number {
    return Math.max(1, Math.min(this.#init.largeEntryBytes, this.#init.p2p.maxFrameBytes - 64));
  }

  /**
   * Sends a large sealed entry in pieces, each once the stream has at most one piece waiting to leave: answers
   * queued meanwhile (small hits) go out after one piece at most, not after the whole entry. Stops if the
   * stream closes or this node stops.
   */
  async #sendParts(server: ServerSide, id: number, sealed: Uint8Array, pieceBytes: number): Promise<void> {
    const size = sealed.byteLength;
    for (let offset = 0; offset < size; offset += pieceBytes) {
      if (offset > 0) await server.channel.whenWritable(pieceBytes);
      if (server.channel.closed || this.#init.stopped()) return;
      if (!server.channel.send({ type: 'part', id, size, offset, bytes: sealed.subarray(offset, Math.min(size, offset + pieceBytes)) })) return;
    }
    this.#init.counters.count('requestsServed');
  }

  /** Runs the shared heartbeat while anything is being served; it stops by itself when nothing is. */
  #ensureHeartbeat(): void {
    if (this.#heartbeat !== undefined) return;
    const half = Math.max(1, Math.floor(this.#init.p2p.requestTimeoutMs / 2));
    this.#heartbeat = setInterval(() => {
      if (this.#inService.size === 0 || this.#init.stopped()) {
        clearInterval(this.#heartbeat);
        this.#heartbeat = undefined;
        return;
      }
      const now = this.#init.now();
      const due = now - half;
      const giveUp = now - Math.max(half, this.#init.maxOwnerWaitMs - this.#init.p2p.requestTimeoutMs);
      for (const pending of this.#inService) {
        const { channel, id, since } = pending;
        if (channel.closed) {
          pending.release?.();
          continue;
        }
        if (since <= giveUp) {
          pending.gaveUp = true;
          this.#inService.delete(pending);
          channel.send({ type: 'error', id, message: 'the owner gave up waiting for its upstream answer' });
          pending.release?.();
        } else if (since <= due) {
          channel.send({ type: 'working', id });
        }
      }
    }, Math.max(1, Math.floor(half / 2)));
    this.#heartbeat.unref();
  }
}
