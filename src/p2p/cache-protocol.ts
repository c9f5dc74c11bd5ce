import { randomBytes } from 'node:crypto';
import type { AbortOptions, Connection, Libp2pEvents, PeerId, Startable, Stream, StreamHandler, StreamHandlerOptions, TypedEventTarget } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { FleetAnswer, FleetFetchOptions, FleetHost } from '../cache/ports.js';
import type { Logger } from '../log.js';
import type { ResolvedP2POptions } from '../options.js';
import { Asker } from './asking.js';
import { anonymousEntryKeyOf } from './fleet-keys.js';
import { FrameChannel, type FrameViolation } from './frame-channel.js';
import { HeaderTableError, HeaderTableReader, HeaderTableWriter } from './header-table.js';
import { LeaseTable } from './lease.js';
import { errorMessage, type PeerNetworkLimits } from './limits.js';
import { keptConnection } from './one-connection.js';
import { PeerExchange, withoutPeerId } from './peer-exchange.js';
import { RequestTable } from './request-table.js';
import { ScopeClaims } from './scope-claims.js';
import { CHALLENGE_BYTES } from './scope-proof.js';
import { OwnerServing } from './serving.js';
import { PeerSessions, type ClientSide, type PeerSession, type ServerSide } from './sessions.js';
import type { ProtocolCounters, RejectionKind } from './stats.js';
import type { StrikeBook } from './strikes.js';
import { PartedAnswers } from './transfers.js';
import { PROTOCOL, WIRE_VERSION, type Frame } from './wire.js';

/**
 * The `/github-cache/1.5.0` protocol as a libp2p service: `cacheProtocol(init)` is a service factory for the
 * `services` map of createLibp2p; `start()` handles the protocol and `stop()` unhandles it.
 * Size: one unit: the stream life cycle and the frame state machine of both directions read together.
 *
 * Guarantees:
 * - One long-lived outbound stream per connected peer (reopened at most 3 times a minute while a connection
 *   remains) and any number of inbound ones, each a FrameChannel: frames are size-limited and strictly validated
 *   per stream, and a frame in the wrong direction or order is a protocol violation that closes that stream.
 * - The outbound stream opens on a connection that stays (never a surplus one, one-connection.ts), and moves off
 *   a connection being left as surplus (`moveOff`) before it closes: the new stream takes over once the peer's
 *   hello and claims arrived on it, the old one closes once the asks in flight on it are answered and the leases
 *   taken on it ended. The peer stays in session throughout (sessions.ts).
 * - A hostile or broken peer cannot crash the node or stop it serving others: each rejected frame, proof or entry
 *   is one strike (strikes.ts), and a peer banned for it is disconnected at once and refused until the ban ends.
 * - Once halted (at stop), nothing new starts: no stream is opened or accepted, in-flight asks settle
 *   'unavailable', and `afterStop` resolves once every dial or stream opening this service began has settled.
 *   A halted service does not start again: the host gets a new one from the factory with each libp2p node.
 */

/** What the service needs of libp2p (a subset of its components, injected by createLibp2p). */
export interface CacheProtocolComponents {
  peerId: PeerId;
  registrar: {
    handle(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void>;
    unhandle(protocol: string, options?: AbortOptions): Promise<void>;
  };
  connectionManager: {
    getConnections(peerId?: PeerId): Connection[];
    openConnection(peer: PeerId | Multiaddr | Multiaddr[], options?: AbortOptions & { priority?: number }): Promise<Connection>;
    openStream(peer: PeerId, protocol: string | string[], options?: AbortOptions & { maxOutboundStreams?: number }): Promise<Stream>;
    closeConnections(peer: PeerId, options?: AbortOptions): Promise<void>;
  };
  addressManager: { getAddresses(): Multiaddr[] };
  events: TypedEventTarget<Libp2pEvents>;
}

/** Configuration of the service, given before libp2p exists. */
export interface CacheProtocolInit {
  readonly p2p: ResolvedP2POptions;
  readonly limits: Readonly<PeerNetworkLimits>;
  /** The cache that serves as owner and lends the scope keys. */
  readonly host: FleetHost;
  readonly logger: Logger;
  readonly now: () => number;
  /** Shared with the connection gater, which refuses banned peers. */
  readonly strikes: StrikeBook;
  readonly counters: ProtocolCounters;
}

/** Sealed entries (and leases) a blind owner keeps at most, their bytes, and the askers waiting on one lease. */
const BLIND_MAX_ENTRIES = 4096;
const BLIND_MAX_BYTES = 64 * 1024 * 1024;
const BLIND_MAX_WAITERS = 64;
/** One peer's share of the leases out and of the bytes kept: a quarter, so no one member fills the table. */
const BLIND_PEER_SHARE = 4;
/**
 * A lease lasts while its holder's stream is open, up to this: well past one upstream request (GitHub's answer
 * within upstreamTimeoutMs, a queue behind the holder's per-scope cap); a late put or release is not a fault.
 */
const BLIND_LEASE_MS = 5 * 60_000;
/** How long a key whose answer a holder released as unshareable is answered `miss no-entry` at once. */
const BLIND_UNSHAREABLE_MS = 5 * 60_000;

/** libp2p's `dial` priority for dials the user asked for: ahead of the node's own housekeeping dials. */
const USER_DIAL_PRIORITY = 75;

export class CacheProtocol implements Startable {
  readonly [Symbol.toStringTag] = 'github-p2p-cache/cache-protocol';
  readonly #components: CacheProtocolComponents;
  readonly #init: CacheProtocolInit;
  readonly #log: Logger;
  readonly #selfId: string;
  readonly #sessions = new PeerSessions();
  readonly #claims: ScopeClaims;
  readonly #exchange: PeerExchange;
  readonly #serving: OwnerServing;
  readonly #asker: Asker;
  /** Blind ownership: sealed entries and leases of keys this node owns in scopes it does not hold (lease.ts). */
  readonly #leases: LeaseTable;
  readonly #background = new Set<Promise<unknown>>();
  /** Connections being left as surplus (moveOff): no stream opens on them. */
  readonly #leaving = new WeakSet<Connection>();
  /** The waits of moveOff, checked again whenever a stream of the protocol opens or closes. */
  readonly #leavingChecks = new Set<() => void>();
  #halted = false;
  #unsubscribeScopes: (() => void) | undefined;

  constructor(components: CacheProtocolComponents, init: CacheProtocolInit) {
    this.#components = components;
    this.#init = init;
    this.#log = init.logger;
    this.#selfId = components.peerId.toString();
    const { p2p, limits, strikes } = init;
    const isBanned = (peerId: string): boolean => strikes.isBanned(peerId);
    const stopped = (): boolean => this.#halted;
    const reject = (peerId: string, kind: RejectionKind, detail: string): void => this.#reject(peerId, kind, detail);
    this.#claims = new ScopeClaims({
      selfId: this.#selfId, scopes: init.host.scopes, anonymousKey: anonymousEntryKeyOf(p2p.sharedSecret ?? ''), isBanned,
      onBadClaim: (peerId, detail) => reject(peerId, 'proof', detail),
    });
    this.#exchange = new PeerExchange({
      selfId: this.#selfId, sessions: this.#sessions, isBanned, maxPeers: limits.maxPeers, delayMs: limits.peerExchangeDelayMs,
      dialTimeoutMs: p2p.dialTimeoutMs, log: this.#log, stopped, now: init.now,
      dial: (targets, signal) => components.connectionManager.openConnection(targets, { signal, priority: USER_DIAL_PRIORITY }),
      addresses: () => components.addressManager.getAddresses(),
      track: (promise) => this.#track(promise),
      announce: () => this.announceScopes(),
    });
    const blindEntryBytes = Math.max(1, Math.min(limits.largeEntryBytes, p2p.maxFrameBytes - 64));
    this.#leases = new LeaseTable({
      maxEntries: BLIND_MAX_ENTRIES, maxBytes: BLIND_MAX_BYTES, maxEntryBytes: blindEntryBytes, maxEntryTtlMs: p2p.maxEntryTtl * 1000,
      leaseMs: Math.max(BLIND_LEASE_MS, limits.maxOwnerWaitMs), unshareableMs: BLIND_UNSHAREABLE_MS, maxLeases: BLIND_MAX_ENTRIES,
      maxLeasesPerPeer: Math.min(limits.maxConcurrentServesPerPeer, BLIND_MAX_ENTRIES / BLIND_PEER_SHARE),
      maxBytesPerPeer: BLIND_MAX_BYTES / BLIND_PEER_SHARE, maxWaiters: BLIND_MAX_WAITERS,
    });
    this.#serving = new OwnerServing({
      selfId: this.#selfId, host: init.host, claims: this.#claims, counters: init.counters, reject, p2p, now: init.now, stopped, leases: this.#leases,
      maxConcurrentServesPerPeer: limits.maxConcurrentServesPerPeer, maxOwnerWaitMs: limits.maxOwnerWaitMs,
      largeEntryBytes: limits.largeEntryBytes, maxPartedEntryBytes: limits.maxPartedEntryBytes, maxLargeTransfersPerPeer: limits.maxLargeTransfersPerPeer,
    });
    this.#asker = new Asker({
      selfId: this.#selfId, sessions: this.#sessions, claims: this.#claims, counters: init.counters, reject, p2p, now: init.now, stopped,
      maxOwnerWaitMs: limits.maxOwnerWaitMs, withholdingMemoryMs: limits.strikeWindowMs, maxClockSkewMs: limits.maxClockSkewMs,
      handoffWindowMs: p2p.handoff ? p2p.maxEntryTtl * 1000 : 0, leases: this.#leases, maxPutBytes: blindEntryBytes,
    });
  }

  async start(): Promise<void> {
    const { registrar, events } = this.#components;
    await registrar.handle(PROTOCOL, this.#onInboundStream, {
      maxInboundStreams: this.#init.limits.maxStreamsPerConnection,
      maxOutboundStreams: this.#init.limits.maxStreamsPerConnection,
    });
    events.addEventListener('peer:connect', this.#onPeerConnect);
    events.addEventListener('peer:disconnect', this.#onPeerDisconnect);
    events.addEventListener('connection:close', this.#onConnectionClose);
    events.addEventListener('peer:discovery', this.#onPeerDiscovery);
    // Scope claims go out when the cache first holds a token, on a later tick (never inside the token path).
    // Claims go first, so an asker waiting on this node (a cold owner) sees the proof before the entry.
    this.#unsubscribeScopes = this.#init.host.scopes.onScopeAdded((scopeId) => {
      this.announceScopes();
      if (!this.#halted) this.#serving.scopeAdded(scopeId);
    });
  }

  afterStart(): void {
    // Peers already connected (none in practice: the node has just started).
    const seen = new Set<string>();
    for (const connection of this.#components.connectionManager.getConnections()) {
      const id = connection.remotePeer.toString();
      if (seen.has(id)) continue;
      seen.add(id);
      this.#peerConnected(connection.remotePeer);
    }
  }

  beforeStop(): void {
    this.halt();
  }

  async stop(): Promise<void> {
    this.halt();
    const { registrar, events } = this.#components;
    events.removeEventListener('peer:connect', this.#onPeerConnect);
    events.removeEventListener('peer:disconnect', this.#onPeerDisconnect);
    events.removeEventListener('connection:close', this.#onConnectionClose);
    events.removeEventListener('peer:discovery', this.#onPeerDiscovery);
    await registrar.unhandle(PROTOCOL).catch((err: unknown) => this.#log.debug('unhandling %s failed: %s', PROTOCOL, errorMessage(err)));
  }

  /** Resolves once every dial and stream opening this service began has settled. */
  async afterStop(): Promise<void> {
    await Promise.allSettled([...this.#background]);
  }

  /**
   * Stops the protocol's own work at once, before libp2p closes its connections: timers end, serving is
   * aborted, every session closes (its asks settle 'unavailable'). Idempotent.
   */
  halt(): void {
    if (this.#halted) return;
    this.#halted = true;
    this.#unsubscribeScopes?.();
    this.#unsubscribeScopes = undefined;
    this.#exchange.stop();
    this.#serving.stop();
    this.#leases.stop();
    this.#sessions.clear();
  }

  /** Asks the key's owner (see asking.ts). Never throws for peer failures. */
  fetch(key: string, scopeId: string, signal?: AbortSignal, options?: FleetFetchOptions): Promise<FleetAnswer> {
    return this.#asker.fetch(key, scopeId, signal, options);
  }

  /** Tells connected peers this node's scopes (with fresh proofs) and known peers: call when heldScopes() changed. */
  announceScopes(): void {
    if (this.#halted) return;
    for (const session of this.#sessions.values()) {
      for (const server of session.servers) {
        if (server.remoteChallenge !== undefined) server.channel.send(this.#claims.scopesFrame(session.id, server.remoteChallenge, this.#exchange.knownPeers()));
      }
    }
  }

  /** Peers speaking the protocol (their hello arrived on this node's stream to them): the invalidation fan-out. */
  protocolPeers(): PeerId[] {
    const peers: PeerId[] = [];
    for (const session of this.#sessions.values()) if (session.client?.remoteChallenge !== undefined) peers.push(session.peerId);
    return peers;
  }

  /** Whether `peerId` proved `scopeId` to this node; 'not-held' when this node does not hold the scope (it cannot check). */
  scopeStanding(peerId: string, scopeId: string): 'proved' | 'unproved' | 'not-held' {
    if (this.#claims.keysOf(scopeId) === undefined) return 'not-held';
    const session = this.#sessions.get(peerId);
    const client = session?.client;
    return session !== undefined && client !== undefined && this.#claims.proved(session, client, scopeId) ? 'proved' : 'unproved';
  }

  /** Counts rejected data from a peer and strikes it (used by services beside this one: invalidation.ts). */
  rejectFrom(peerId: string, kind: RejectionKind, detail: string): void {
    this.#reject(peerId, kind, detail);
  }

  /** Peers speaking the protocol, with the count of scopes they proved that this node holds too. */
  /** Calls `listener` synchronously when a session comes up (its hello) or ends. Returns an unsubscribe. */
  onSessionsChanged(listener: () => void): () => void {
    return this.#sessions.onChange(listener);
  }

  /**
   * Make-before-break for a connection being left as surplus (one-connection.ts): this node's stream to the peer
   * moves to a connection that stays (see the module guarantee). Resolves once no stream of the protocol is open
   * on `connection` in either direction (the peer moved its own off it too), counting a stream still negotiating
   * its protocol (it may be the peer's, not handed to this node yet), or once the connection closed or the
   * service halted; never rejects. The caller bounds the wait and closes the connection after it.
   */
  moveOff(connection: Connection): Promise<void> {
    if (this.#halted) return Promise.resolve();
    this.#leaving.add(connection);
    const session = this.#sessions.get(connection.remotePeer.toString());
    if (session !== undefined) this.#moveClient(session);
    return new Promise((resolve) => {
      const watched = new WeakSet<Stream>();
      const check = (): void => {
        const opening = this.#sessions.get(connection.remotePeer.toString())?.opening === true;
        const open = connection.status === 'open' ? connection.streams.filter((s) => s.status === 'open' && (s.protocol === PROTOCOL || s.protocol === '')) : [];
        if (this.#halted || (!opening && open.length === 0)) {
          this.#leavingChecks.delete(check);
          resolve();
          return;
        }
        // One still negotiating is handed to this service (#onInboundStream checks again) or ends: either way, look again.
        for (const stream of open) {
          if (stream.protocol !== '' || watched.has(stream)) continue;
          watched.add(stream);
          stream.addEventListener('close', check, { once: true });
        }
      };
      this.#leavingChecks.add(check);
      check();
    });
  }

  peers(): Array<{ id: string; scopes: number }> {
    const peers: Array<{ id: string; scopes: number }> = [];
    for (const session of this.#sessions.values()) {
      const client = session.client;
      if (client === undefined || client.remoteChallenge === undefined) continue;
      peers.push({ id: session.id, scopes: this.#claims.provedCount(session, client) });
    }
    return peers;
  }

  // ---------------------------------------------------------------- connections and streams

  readonly #onPeerConnect = (event: CustomEvent<PeerId>): void => this.#peerConnected(event.detail);

  readonly #onPeerDisconnect = (event: CustomEvent<PeerId>): void => {
    if (this.#sessions.remove(event.detail.toString()) === undefined) return;
    this.#asker.membersChanged(); // the keys it owned move to the others
    this.#exchange.schedule();
  };

  readonly #onConnectionClose = (event: CustomEvent<Connection>): void => {
    // Another connection to the peer may remain: reopen the outbound stream on it.
    const session = this.#sessions.get(event.detail.remotePeer.toString());
    if (session === undefined || this.#halted) return;
    if (session.client?.channel.closed === true) session.client = undefined;
    if (session.client === undefined && this.#connected(session)) this.#openClient(session);
  };

  readonly #onPeerDiscovery = (event: CustomEvent<Libp2pEvents['peer:discovery']['detail']>): void => {
    const { id, multiaddrs } = event.detail;
    if (this.#sessions.has(id.toString())) return;
    this.#exchange.dial(id.toString(), multiaddrs.map((ma) => withoutPeerId(ma).toString()), 'discovery');
  };

  #peerConnected(peerId: PeerId): void {
    if (this.#halted) return;
    if (this.#init.strikes.isBanned(peerId.toString())) {
      void this.#hangUp(peerId).catch(() => undefined);
      return;
    }
    this.#openClient(this.#sessions.ensure(peerId));
  }

  #connected(session: PeerSession): boolean {
    return this.#components.connectionManager.getConnections(session.peerId).length > 0;
  }

  /**
   * Opens my long-lived outbound stream to a peer (once; again if it closes while connected) on a connection that
   * stays; `replacing`: the session's `next` stream, for a `client` on a connection being left (#moveClient).
   */
  #openClient(session: PeerSession, replacing = false): void {
    if (this.#halted || session.opening) return;
    if (replacing ? session.next !== undefined : session.client !== undefined && !session.client.channel.closed) return;
    session.opening = true;
    const { p2p, limits } = this.#init;
    this.#track((async () => {
      let stream: Stream;
      let connection: Connection;
      try {
        const signal = AbortSignal.timeout(p2p.dialTimeoutMs);
        connection = this.#streamConnection(session) ?? await this.#components.connectionManager.openConnection(session.peerId, { signal });
        stream = await connection.newStream(PROTOCOL, { signal, maxOutboundStreams: limits.maxStreamsPerConnection });
      } catch (err) {
        session.opening = false;
        this.#log.debug('could not open %s to %s: %s', PROTOCOL, session.id, errorMessage(err));
        // The connection it went to may have closed meanwhile (a surplus one, one-connection.ts): use the one left.
        if (!replacing && !this.#halted && this.#sessions.isCurrent(session) && this.#connected(session)) this.#reopenClient(session);
        this.#streamsChanged();
        return;
      }
      session.opening = false;
      if (this.#halted || !this.#sessions.isCurrent(session)) {
        stream.abort(new Error('the peer session is gone'));
        return;
      }
      const challenge = new Uint8Array(randomBytes(CHALLENGE_BYTES));
      const client: ClientSide = {
        connection, challenge, remoteChallenge: undefined, claims: new Map(), verified: new Map(), requests: new RequestTable(this.#init.now),
        headerTable: new HeaderTableReader(),
        parts: new PartedAnswers(limits.maxPartedEntryBytes, limits.maxPartedBytesPerPeer),
        leasesOut: 0, leaseEnded: () => this.#retireIfIdle(session, client),
        channel: new FrameChannel(stream, {
          maxFrameBytes: p2p.maxFrameBytes,
          logger: this.#log,
          onFrame: (frame) => this.#onClientFrame(session, client, frame),
          onClose: (violation, error) => this.#clientClosed(session, client, violation, error),
        }),
      };
      // A replacement waits in `next` while the stream it replaces still works; else it is the client at once.
      if (replacing && session.client !== undefined && !session.client.channel.closed) session.next = client;
      else session.client = client;
      client.channel.send(this.#hello(challenge));
      this.#streamsChanged();
      // Opened on a connection that is being left meanwhile: move off it too.
      if (session.client === client) this.#moveClient(session);
    })());
  }

  /** One of my outbound streams to the peer ended: the session's client is replaced or reopened, a retiring one is done. */
  #clientClosed(session: PeerSession, client: ClientSide, violation: FrameViolation | undefined, error: Error | undefined): void {
    client.requests.closeAll();
    client.parts.clear();
    session.retiring.delete(client);
    if (session.next === client) session.next = undefined;
    const current = session.client === client;
    if (current) {
      // Its replacement, if one is on its way, takes over at once (it counts in session once its hello arrives).
      session.client = session.next;
      session.next = undefined;
    }
    if (violation !== undefined) this.#reject(session.id, violation, errorMessage(error));
    else if (current && !this.#halted && this.#sessions.isCurrent(session) && this.#connected(session)) this.#reopenClient(session);
    this.#streamsChanged();
  }

  /** The session's client runs on a connection being left: open its replacement on one that stays. */
  #moveClient(session: PeerSession): void {
    const client = session.client;
    if (client === undefined || client.channel.closed || !this.#leaving.has(client.connection)) return;
    this.#openClient(session, true);
  }

  /** The replacement stream is in session (its hello and claims arrived): it becomes the client; the old one retires. */
  #swapClient(session: PeerSession, next: ClientSide): void {
    const old = session.client;
    this.#log.debug('moved my stream to %s to a connection that stays (%d asks in flight on the old one)', session.id, old?.requests.size ?? 0);
    session.next = undefined;
    session.client = next;
    if (old !== undefined && !old.channel.closed) {
      session.retiring.add(old);
      this.#retireIfIdle(session, old);
    }
    this.#sessions.changed();
  }

  /** A retiring stream closes once no ask is in flight on it and no lease taken on it is out (its connection's close bounds the rest). */
  #retireIfIdle(session: PeerSession, client: ClientSide): void {
    if (!session.retiring.has(client) || client.requests.size > 0 || client.leasesOut > 0) return;
    // Once what was queued on it (a put or release just sent) has left: closing resets the stream.
    void client.channel.whenWritable(0).then(() => client.channel.close(new Error('moved to the connection that stays')));
  }

  /** The connection a new outbound stream to the peer goes on: open, kept, not being left; undefined if none. */
  #streamConnection(session: PeerSession): Connection | undefined {
    return keptConnection(this.#selfId, this.#components.connectionManager.getConnections(session.peerId), (c) => this.#leaving.has(c));
  }

  /** Tells the waits on connections being left (moveOff) that a stream of the protocol closed or finished opening. */
  #streamsChanged(): void {
    for (const check of [...this.#leavingChecks]) check();
  }

  /**
   * The stream died but a connection remains: open a fresh one, a few times a minute at most (a peer that keeps
   * closing our stream must not make us loop).
   */
  #reopenClient(session: PeerSession): void {
    const now = this.#init.now();
    session.reopens = session.reopens.filter((at) => now - at < 60_000);
    if (session.reopens.length >= 3) return;
    session.reopens.push(now);
    queueMicrotask(() => this.#openClient(session));
  }

  readonly #onInboundStream = (stream: Stream, connection: Connection): void => {
    const id = connection.remotePeer.toString();
    if (this.#halted || this.#init.strikes.isBanned(id)) {
      stream.abort(new Error('refused'));
      return;
    }
    const session = this.#sessions.ensure(connection.remotePeer);
    const challenge = new Uint8Array(randomBytes(CHALLENGE_BYTES));
    const server: ServerSide = {
      connection, challenge, remoteChallenge: undefined, headerTable: new HeaderTableWriter(),
      channel: new FrameChannel(stream, {
        maxFrameBytes: this.#init.p2p.maxFrameBytes,
        logger: this.#log,
        onFrame: (frame) => this.#onServerFrame(session, server, frame),
        onClose: (violation, error) => {
          session.servers.delete(server);
          this.#leases.holderGone(server.channel); // its leases pass to their next waiters
          if (violation !== undefined) this.#reject(session.id, violation, errorMessage(error));
          this.#streamsChanged();
        },
      }),
    };
    session.servers.add(server);
    this.#streamsChanged();
    server.channel.send(this.#hello(challenge));
    if (session.client === undefined) this.#openClient(session);
  };

  #hello(challenge: Uint8Array): Frame {
    return { type: 'hello', version: WIRE_VERSION, challenge, addrs: this.#exchange.ownAddrs(), peers: this.#exchange.knownPeers() };
  }

  // ---------------------------------------------------------------- frames

  /** Frames on my outbound stream: the owner's hello, scope claims and answers. */
  #onClientFrame(session: PeerSession, client: ClientSide, frame: Frame): void {
    this.#clientFrame(session, client, frame);
    if (session.retiring.has(client)) this.#retireIfIdle(session, client);
  }

  #clientFrame(session: PeerSession, client: ClientSide, frame: Frame): void {
    client.requests.heard();
    switch (frame.type) {
      case 'hello':
        if (client.remoteChallenge !== undefined) return this.#protocolViolation(session, client.channel, 'a second hello');
        client.remoteChallenge = frame.challenge;
        // In session now: a start-up wait counts it at once (fleet-start.ts meshed). A replacement (`next`) takes
        // over once its claims arrived too (#swapClient): the session is up on the stream it replaces meanwhile.
        if (session.client === client) this.#sessions.changed();
        this.#exchange.learn(session, frame.addrs, frame.peers);
        return;
      case 'scopes':
        if (client.remoteChallenge === undefined) return this.#protocolViolation(session, client.channel, 'scopes before hello');
        this.#claims.receive(session, client, frame);
        this.#exchange.exchange(frame.peers);
        if (session.next === client) this.#swapClient(session, client);
        return;
      case 'entry': {
        if ('sealed' in frame) return void client.requests.settle(frame.id, { kind: 'entry', sealed: frame.sealed });
        // Indexed headers are resolved as they arrive, whether or not their request still waits: the stream's table
        // has to see every definition, in order (header-table.ts).
        const { payload } = frame;
        try {
          client.headerTable.resolvePayload(payload);
        } catch (err) {
          if (!(err instanceof HeaderTableError)) throw err;
          client.requests.settle(frame.id, { kind: 'error', message: `malformed headers: ${err.message}` });
          return this.#protocolViolation(session, client.channel, err.message);
        }
        client.requests.settle(frame.id, { kind: 'entry', payload });
        return;
      }
      case 'part': {
        const outcome = client.parts.receive(frame, (id) => client.requests.has(id));
        if (outcome.kind === 'done') client.requests.settle(frame.id, { kind: 'entry', sealed: outcome.sealed });
        else if (outcome.kind === 'over-budget') client.requests.settle(frame.id, { kind: 'miss', reason: 'too-large' });
        else if (outcome.kind === 'refused') {
          client.requests.settle(frame.id, { kind: 'error', message: `malformed parts: ${outcome.detail}` });
          this.#reject(session.id, outcome.violation, outcome.detail);
        }
        return;
      }
      case 'miss':
        client.requests.settle(frame.id, { kind: 'miss', reason: frame.reason });
        return;
      case 'error':
        client.requests.settle(frame.id, { kind: 'error', message: frame.message });
        return;
      case 'working':
        client.requests.extend(frame.id); // late or unknown ids are ignored; maxOwnerWaitMs bounds the rest
        return;
      case 'lease':
        // Nobody waits for it any more (the ask was aborted or timed out): hand it back at once.
        if (!client.requests.settle(frame.id, { kind: 'lease', lease: frame.lease })) client.channel.send({ type: 'release', lease: frame.lease });
        return;
      case 'get':
      case 'put':
      case 'release':
        return this.#protocolViolation(session, client.channel, `a ${frame.type} on the asker's own stream`);
    }
  }

  /** Frames on a peer's stream to me: its hello and its gets. */
  #onServerFrame(session: PeerSession, server: ServerSide, frame: Frame): void {
    switch (frame.type) {
      case 'hello':
        if (server.remoteChallenge !== undefined) return this.#protocolViolation(session, server.channel, 'a second hello');
        server.remoteChallenge = frame.challenge;
        this.#exchange.learn(session, frame.addrs, frame.peers);
        server.channel.send(this.#claims.scopesFrame(session.id, frame.challenge, this.#exchange.knownPeers()));
        return;
      case 'get':
      case 'put':
      case 'release':
        if (server.remoteChallenge === undefined) return this.#protocolViolation(session, server.channel, `${frame.type} before hello`);
        if (frame.type === 'get') this.#serving.serve(session, server, frame);
        else if (frame.type === 'put') this.#serving.put(session, server, frame);
        else this.#serving.release(session, server, frame);
        return;
      case 'lease':
      case 'scopes':
      case 'entry':
      case 'part':
      case 'working':
      case 'miss':
      case 'error':
        return this.#protocolViolation(session, server.channel, `${frame.type} on the owner's side of a stream`);
    }
  }

  #protocolViolation(session: PeerSession, channel: FrameChannel, what: string): void {
    this.#reject(session.id, 'protocol', what);
    channel.close(new Error(`protocol violation: ${what}`));
  }

  // ---------------------------------------------------------------- abuse

  /** Counts rejected data from a peer; past maxStrikes within the window, disconnects it (the ban refuses it). */
  #reject(peerId: string, kind: RejectionKind, detail: string): void {
    this.#init.counters.countRejected(kind);
    this.#log.debug('rejected %s from %s: %s', kind, peerId, detail);
    if (this.#halted) return;
    const strikes = this.#init.strikes.strike(peerId);
    if (strikes === undefined) return;
    const { strikeWindowMs, banMs } = this.#init.limits;
    this.#init.counters.count('disconnectedForAbuse');
    this.#log.warn(`disconnected peer ${peerId}: ${strikes} bad frames or entries within ${strikeWindowMs / 1000} s (last: ${kind}: ${detail}); refusing it for ${banMs / 1000} s`);
    const session = this.#sessions.remove(peerId);
    if (session !== undefined) this.#track(this.#hangUp(session.peerId));
  }

  /** Closes every connection to a peer, gracefully for up to dialTimeoutMs, then at once. */
  #hangUp(peerId: PeerId): Promise<void> {
    return this.#components.connectionManager.closeConnections(peerId, { signal: AbortSignal.timeout(this.#init.p2p.dialTimeoutMs) });
  }

  #track(promise: Promise<unknown>): void {
    const tracked = promise.catch(() => undefined).finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }
}

/** The service factory, in the js-libp2p style: configuration first, components injected by createLibp2p. */
export function cacheProtocol(init: CacheProtocolInit): (components: CacheProtocolComponents) => CacheProtocol {
  return (components) => new CacheProtocol(components, init);
}
