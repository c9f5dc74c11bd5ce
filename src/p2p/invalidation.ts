import type { AbortOptions, Connection, PeerId, Startable, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface';
import { LRUCache } from 'lru-cache';
import type { FleetHost } from '../cache/ports.js';
import { ANONYMOUS_SCOPE } from '../cache/scope.js';
import type { Logger } from '../log.js';
import { encodeCborLengthPrefixed } from './cbor.js';
import { errorMessage } from './limits.js';
import { decodeNotices, INVALIDATE_PROTOCOL, isResourceUrl, MAX_NOTICE_BYTES, MAX_PREFIX_BYTES, readLengthPrefix, MAX_QUEUED_PER_PEER, MAX_SCOPES_PER_URL, MAX_URL_LENGTH, MAX_URLS_PER_NOTICE, NOTICE_BURST, NOTICE_RATE_PER_SECOND, type Notice } from './notice.js';
import type { ProtocolCounters, RejectionKind } from './stats.js';

/**
 * Fleet-wide invalidation: the `/github-cache/invalidate/1.0.0` protocol as a libp2p service, beside the cache
 * protocol. When a write through this node succeeds, the cache calls `invalidate(resource, scopeId)` after its
 * own local invalidation; this service tells every peer speaking the cache protocol, and applies the notices
 * peers send it through `FleetHost.invalidateFromPeer`.
 *
 * Guarantees:
 * - Fire and forget: `invalidate` returns at once and never throws; the write's answer never waits on a peer
 *   (the fan-out starts after the writer's turn). One long-lived stream per peer carries its notices, each a
 *   length-prefixed (unsigned varint) CBOR map, so a notice costs half a round trip once the stream is open.
 *   Notices to one peer are batched (those of one turn, and those queued while its stream was opening, leave
 *   together). A peer gone, refusing the protocol or not reading (more than MAX_UNSENT_BYTES unsent) costs a
 *   failed stream, nothing else; its queue is bounded (MAX_QUEUED_PER_PEER URLs, the oldest dropped), and what
 *   cannot be delivered is counted in `invalidationsDropped`.
 * - A notice names URLs (normalized, no query, no trailing slash, as local invalidation computes the written
 *   resource) and scope ids, never a token or a cache key. A receiver drops entries of a named scope only if
 *   the scope is `anonymous` (every member holds it: any member may invalidate anonymous entries) or the sender
 *   proved that it holds the scope on the cache protocol (scope-claims.ts). A named scope this node holds that
 *   the sender has not proved is refused and counted (`rejected.notice-scope`); a scope this node does not hold
 *   is ignored (it has no entries of it to drop).
 * - Bounded: a notice is at most MAX_NOTICE_BYTES (refused from its length prefix, before its bytes are held),
 *   at most MAX_URLS_PER_NOTICE URLs of at most MAX_URL_LENGTH characters, each with at most MAX_SCOPES_PER_URL
 *   scopes; at most one unfinished notice is held per stream. A notice that breaks these limits, is not strict
 *   canonical CBOR of this shape, is left unfinished for `dialTimeoutMs` or cut short by the peer closing its
 *   end is refused as a whole (nothing of it invalidated), counted (`rejected.notice`), a strike (strikes.ts),
 *   and its stream is closed. A stream the peer resets (it is stopping) is dropped without a strike. URLs beyond
 *   a peer's rate (a bucket of NOTICE_BURST, refilled at NOTICE_RATE_PER_SECOND) are dropped and counted
 *   (`rejected.notice-rate`), not struck: GitHub's own limits on writes keep an honest member far below it.
 * - Once halted, nothing new is sent or accepted, and every stream this service holds is aborted.
 */

/** Notice streams per connection and direction (one long-lived stream is used per peer; the rest is room for reopening). */
const MAX_STREAMS = 4;
/** Unsent bytes to a peer past which it is deemed not to read: its stream is closed, the notice dropped. */
const MAX_UNSENT_BYTES = 4 * MAX_NOTICE_BYTES;
const EMPTY = new Uint8Array(0);

/** Where a peer stands with a scope, as the cache protocol knows it (see scope-claims.ts). */
export type ScopeStanding = 'proved' | 'unproved' | 'not-held';

/** What this service needs of the cache protocol running beside it. */
export interface FleetLink {
  /** Peers speaking the cache protocol (their hello arrived). */
  peers(): PeerId[];
  /** Whether `peerId` proved `scopeId` to this node ('not-held' when this node does not hold it). */
  standing(peerId: string, scopeId: string): ScopeStanding;
  /** Counts rejected data from a peer and strikes it (the cache protocol's abuse handling). */
  reject(peerId: string, kind: RejectionKind, detail: string): void;
}

export interface InvalidationComponents {
  registrar: {
    handle(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void>;
    unhandle(protocol: string, options?: AbortOptions): Promise<void>;
  };
  connectionManager: {
    openStream(peer: PeerId, protocol: string | string[], options?: AbortOptions & { maxOutboundStreams?: number }): Promise<Stream>;
  };
}

export interface InvalidationInit {
  readonly host: FleetHost;
  readonly logger: Logger;
  readonly now: () => number;
  readonly dialTimeoutMs: number;
  readonly counters: ProtocolCounters;
  readonly isBanned: (peerId: string) => boolean;
  /** The cache protocol beside this service; undefined until libp2p has built it. */
  readonly link: () => FleetLink | undefined;
}

interface Outbox {
  readonly peerId: PeerId;
  /** URL → scopes to name, in arrival order. */
  readonly pending: Map<string, Set<string>>;
  sending: boolean;
  /** The long-lived stream to the peer, once opened (reopened when it closes). */
  stream: Stream | undefined;
}

export class InvalidationService implements Startable {
  readonly [Symbol.toStringTag] = 'github-p2p-cache/invalidation';
  readonly #components: InvalidationComponents;
  readonly #init: InvalidationInit;
  readonly #outboxes = new Map<string, Outbox>();
  readonly #buckets = new LRUCache<string, { tokens: number; at: number }>({ max: 4096 });
  readonly #streams = new Set<Stream>();
  readonly #background = new Set<Promise<unknown>>();
  #halted = false;

  constructor(components: InvalidationComponents, init: InvalidationInit) {
    this.#components = components;
    this.#init = init;
  }

  async start(): Promise<void> {
    await this.#components.registrar.handle(INVALIDATE_PROTOCOL, this.#onInboundStream, { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS });
  }

  beforeStop(): void {
    this.halt();
  }

  async stop(): Promise<void> {
    this.halt();
    await this.#components.registrar.unhandle(INVALIDATE_PROTOCOL).catch((err: unknown) => this.#init.logger.debug('unhandling %s failed: %s', INVALIDATE_PROTOCOL, errorMessage(err)));
  }

  async afterStop(): Promise<void> {
    await Promise.allSettled([...this.#background]);
  }

  /** Stops at once: nothing new is sent or accepted, open streams are aborted, queues dropped. Idempotent. */
  halt(): void {
    if (this.#halted) return;
    this.#halted = true;
    this.#outboxes.clear();
    for (const stream of this.#streams) stream.abort(new Error('the P2P host is stopping'));
    this.#streams.clear();
  }

  /**
   * Tells every peer that `resource` (a normalized URL without query or trailing slash) was written with a token
   * of `scopeId`. Returns at once; never throws.
   */
  invalidate(resource: string, scopeId: string): void {
    const link = this.#init.link();
    if (this.#halted || link === undefined || resource.length > MAX_URL_LENGTH || !isResourceUrl(resource)) return;
    const held = this.#init.host.scopes.heldScopes();
    for (const peerId of link.peers()) {
      const id = peerId.toString();
      // The write's scope, the anonymous scope, and every other scope this node holds that the peer proved it
      // holds too (its entries of the resource are just as stale).
      const scopes = new Set<string>([scopeId, ANONYMOUS_SCOPE]);
      for (const scope of held) {
        if (scopes.size >= MAX_SCOPES_PER_URL) break;
        if (link.standing(id, scope) === 'proved') scopes.add(scope);
      }
      let outbox = this.#outboxes.get(id);
      if (outbox === undefined) {
        outbox = { peerId, pending: new Map(), sending: false, stream: undefined };
        this.#outboxes.set(id, outbox);
      }
      const queued = outbox.pending.get(resource);
      if (queued !== undefined) {
        for (const scope of scopes) if (queued.size < MAX_SCOPES_PER_URL) queued.add(scope);
      } else {
        if (outbox.pending.size >= MAX_QUEUED_PER_PEER) {
          outbox.pending.delete(outbox.pending.keys().next().value!);
          this.#init.counters.count('invalidationsDropped');
        }
        outbox.pending.set(resource, scopes);
      }
      if (!outbox.sending) {
        outbox.sending = true;
        const box = outbox;
        // After this turn: the writer's caller gets its answer first, and the notices of this turn share a stream.
        setImmediate(() => this.#track(this.#drain(id, box)));
      }
    }
  }

  /** Sends a peer's queued notices, a batch at a time, until none are left (or the peer fails). */
  async #drain(id: string, outbox: Outbox): Promise<void> {
    let notices: Notice[] = [];
    try {
      while (!this.#halted && outbox.pending.size > 0) {
        const stream = await this.#streamTo(outbox);
        notices = [];
        for (const [url, scopes] of outbox.pending) {
          if (notices.length >= MAX_URLS_PER_NOTICE) break;
          notices.push({ url, scopes: [...scopes] });
        }
        for (const notice of notices) outbox.pending.delete(notice.url);
        if (stream.writeStatus !== 'writable') throw new Error('the notice stream is closed');
        // A peer that does not read its stream cannot make this node buffer without bound.
        if (stream.writeBufferLength > MAX_UNSENT_BYTES) {
          stream.abort(new Error('the peer is not reading its notice stream'));
          throw new Error('the peer is not reading its notice stream');
        }
        stream.send(encodeCborLengthPrefixed({ notices }));
        this.#init.counters.count('invalidationsSent', notices.length);
        notices = [];
      }
    } catch (err) {
      // The peer is gone, refuses the protocol, or does not read: what it was sent and what still waits for it
      // are given up (its entries expire on their own).
      this.#init.logger.debug('invalidation notice to %s failed: %s', id, errorMessage(err));
      this.#init.counters.count('invalidationsDropped', notices.length + outbox.pending.size);
      outbox.pending.clear();
    } finally {
      outbox.sending = false;
      if (this.#outboxes.get(id) === outbox && outbox.pending.size === 0 && outbox.stream === undefined) this.#outboxes.delete(id);
    }
  }

  /** The peer's long-lived notice stream: the open one, else a new one (its protocol negotiated once). */
  async #streamTo(outbox: Outbox): Promise<Stream> {
    if (outbox.stream !== undefined && outbox.stream.status === 'open' && outbox.stream.writeStatus === 'writable') return outbox.stream;
    outbox.stream = undefined;
    const stream = await this.#components.connectionManager.openStream(outbox.peerId, INVALIDATE_PROTOCOL, {
      signal: AbortSignal.timeout(this.#init.dialTimeoutMs), maxOutboundStreams: MAX_STREAMS,
    });
    if (this.#halted) {
      stream.abort(new Error('the P2P host is stopping'));
      throw new Error('the P2P host is stopping');
    }
    this.#streams.add(stream);
    outbox.stream = stream;
    stream.addEventListener('close', () => {
      this.#streams.delete(stream);
      if (outbox.stream !== stream) return;
      outbox.stream = undefined;
      // A peer gone with nothing left to send to it: its outbox goes too (a later write makes a new one).
      const id = outbox.peerId.toString();
      if (!outbox.sending && outbox.pending.size === 0 && this.#outboxes.get(id) === outbox) this.#outboxes.delete(id);
    }, { once: true });
    // The peer sends nothing on it: anything it sends is dropped unread.
    return stream;
  }

  /**
   * Calls `onTimeout` if `pending()` still holds after `ms`. A timer that fires over half its time late (this
   * process was stalled) waits once more, and the decision is taken after that turn's I/O: what the peer sent
   * during a stall is read before it is judged. Returns a cancel function.
   */
  #deadline(ms: number, pending: () => boolean, onTimeout: () => void): () => void {
    let due = performance.now() + ms;
    let rearmed = false;
    let timer: NodeJS.Timeout;
    const fire = (): void => {
      if (!pending()) return;
      if (!rearmed && performance.now() - due > ms / 2) {
        rearmed = true;
        due = performance.now() + ms;
        timer = setTimeout(fire, ms);
        timer.unref();
        return;
      }
      setImmediate(() => {
        if (pending()) onTimeout();
      });
    };
    timer = setTimeout(fire, ms);
    timer.unref();
    return () => clearTimeout(timer);
  }

  // ---------------------------------------------------------------- receiving

  readonly #onInboundStream = (stream: Stream, connection: Connection): void => {
    const peerId = connection.remotePeer.toString();
    if (this.#halted || this.#init.isBanned(peerId)) {
      stream.abort(new Error('refused'));
      return;
    }
    this.#streams.add(stream);
    /** The start of a notice whose bytes have not all arrived (its length prefix included). */
    let partial: Uint8Array = EMPTY;
    let cancelDeadline: (() => void) | undefined;
    let ended = false;
    const end = (): void => {
      ended = true;
      partial = EMPTY;
      cancelDeadline?.();
      cancelDeadline = undefined;
    };
    const refuse = (detail: string): void => {
      if (ended) return;
      end();
      // Not from inside the stream's own event: the muxer is still handling the data it delivered.
      queueMicrotask(() => stream.abort(new Error(`refused notice: ${detail}`)));
      this.#refuse(peerId, 'notice', detail);
    };
    const receive = (chunk: Uint8Array): void => {
      let data = partial.byteLength === 0 ? chunk : Buffer.concat([partial, chunk]);
      partial = EMPTY;
      while (!ended && data.byteLength > 0) {
        const prefix = readLengthPrefix(data);
        if (prefix === 'bad') return refuse(`a length prefix longer than ${MAX_PREFIX_BYTES} bytes`);
        if (prefix === undefined) break;
        if (prefix.length > MAX_NOTICE_BYTES) return refuse(`a notice of ${prefix.length} bytes announced, above ${MAX_NOTICE_BYTES}`);
        const frameEnd = prefix.bytes + prefix.length;
        if (data.byteLength < frameEnd) break;
        let notices: Notice[];
        try {
          notices = decodeNotices(data.subarray(prefix.bytes, frameEnd));
        } catch (err) {
          return refuse(errorMessage(err));
        }
        this.#apply(peerId, notices);
        data = data.subarray(frameEnd);
      }
      if (ended) return;
      // Copied: a held tail must not pin the whole chunk.
      partial = data.byteLength === 0 ? EMPTY : data.slice();
      if (partial.byteLength === 0) {
        cancelDeadline?.();
        cancelDeadline = undefined;
      } else {
        // A notice is a few hundred bytes: one left unfinished is refused (and struck) after dialTimeoutMs.
        cancelDeadline ??= this.#deadline(this.#init.dialTimeoutMs, () => !ended && partial.byteLength > 0,
          () => refuse(`a notice not finished within ${this.#init.dialTimeoutMs} ms`));
      }
    };
    stream.addEventListener('message', (event) => {
      if (ended) return;
      const data = event.data;
      try {
        for (const chunk of data instanceof Uint8Array ? [data] : data) if (!ended) receive(chunk);
      } catch (err) {
        refuse(errorMessage(err));
      }
    });
    stream.addEventListener('remoteCloseWrite', () => {
      // Data in the frame that carries the peer's FIN is delivered right after this event.
      queueMicrotask(() => {
        if (ended) return;
        // An honest peer closes its end only between notices.
        if (partial.byteLength > 0) return refuse('the peer closed its end in the middle of a notice');
        end();
        void stream.close({ signal: AbortSignal.timeout(this.#init.dialTimeoutMs) }).catch(() => undefined);
      });
    });
    stream.addEventListener('close', () => {
      // Reset by the peer (stopping) or closed: a notice left unfinished is dropped, not struck.
      end();
      this.#streams.delete(stream);
    }, { once: true });
  };

  #apply(peerId: string, notices: Notice[]): void {
    const { host, counters } = this.#init;
    const link = this.#init.link();
    if (this.#halted || link === undefined) return;
    let allowed = this.#take(peerId, notices.length);
    for (const notice of notices) {
      if (allowed-- <= 0) {
        counters.countRejected('notice-rate');
        continue;
      }
      const scopes: string[] = [];
      for (const scopeId of notice.scopes) {
        if (scopeId === ANONYMOUS_SCOPE) {
          scopes.push(scopeId);
          continue;
        }
        const standing = link.standing(peerId, scopeId);
        if (standing === 'proved') scopes.push(scopeId);
        else if (standing === 'unproved') counters.countRejected('notice-scope');
      }
      counters.count('invalidationsReceived');
      if (scopes.length > 0) host.invalidateFromPeer(notice.url, scopes);
    }
  }

  /** Takes up to `wanted` URLs from the peer's bucket; returns how many it may apply now. */
  #take(peerId: string, wanted: number): number {
    const now = this.#init.now();
    const bucket = this.#buckets.get(peerId) ?? { tokens: NOTICE_BURST, at: now };
    const tokens = Math.min(NOTICE_BURST, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * NOTICE_RATE_PER_SECOND);
    const granted = Math.min(wanted, Math.floor(tokens));
    this.#buckets.set(peerId, { tokens: tokens - granted, at: now });
    return granted;
  }

  #refuse(peerId: string, kind: RejectionKind, detail: string): void {
    const link = this.#init.link();
    if (link !== undefined) link.reject(peerId, kind, detail);
    else this.#init.counters.countRejected(kind);
  }

  #track(promise: Promise<unknown>): void {
    const tracked = promise.catch(() => undefined).finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }
}

/** The service factory, in the js-libp2p style: configuration first, components injected by createLibp2p. */
export function invalidationService(init: InvalidationInit): (components: InvalidationComponents) => InvalidationService {
  return (components) => new InvalidationService(components, init);
}
