import '../polyfills.js';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import net from 'node:net';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { bootstrap } from '@libp2p/bootstrap';
import { identify } from '@libp2p/identify';
import { KEEP_ALIVE, type Connection, type Libp2p, type PeerId, type Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { ping } from '@libp2p/ping';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { CODE_P2P, CODE_TCP, multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import type { CacheEntry } from '../cache/entry.js';
import type { FleetHost } from '../cache/ports.js';
import { CacheError } from '../errors.js';
import { parseRequestKey, type RequestKeyParts } from '../cache/request-key.js';
import { ANONYMOUS_SCOPE } from '../cache/scope.js';
import { createLogger, type Logger } from '../log.js';
import type { ResolvedP2POptions } from '../options.js';
import { DEFAULT_MAX_CLOCK_SKEW_MS, openEntry, PeerEntryRejected, sealEntry } from './envelope.js';
import { anonymousEntryKeyOf, swarmKeyOf } from './fleet-keys.js';
import { FrameChannel, type FrameViolation } from './frame-channel.js';
import { acquirePeerIdentity, type PeerIdentity } from './identity.js';
import { rendezvousOwner } from './rendezvous.js';
import { RequestTable } from './request-table.js';
import { CHALLENGE_BYTES, getProof, proofKeyOf, scopeClaimProof, verifyGetProof, verifyScopeClaim } from './scope-proof.js';
import { PROTOCOL, WIRE_LIMITS, WIRE_VERSION, type Frame, type GetFrame, type PeerRecord, type ScopeClaim } from './wire.js';

/**
 * The fleet's libp2p host and the `/github-cache/1.0.0` protocol: asks a key's owner among the peers that
 * hold the key's scope, and answers as owner for the keys this node owns.
 *
 * Guarantees:
 * - Ownership: the owner of a key is chosen by rendezvous hashing among this node and the connected peers that
 *   proved they hold the key's scope, so a fleet with the same view sends each key to one node, which makes
 *   the one upstream request for it (through `PeerBackend.serveAsOwner`, under its singleflight).
 * - `fetch` never throws for peer failures and never waits longer than `requestTimeoutMs`: it answers 'self'
 *   (this node owns the key), 'entry' (a verified entry, see envelope.ts) or 'unavailable' (owner timed out,
 *   went away, missed, or sent a bad entry); a request to an owner whose stream dies settles at once.
 * - Nothing leaves this node for a peer that does not hold the scope: owners serve a `get` only with a valid
 *   proof of the scope (scope-proof.ts), and peers become candidates for a scope only with a valid claim.
 *   Entries travel sealed under the scope's key; the anonymous scope's key derives from the shared secret.
 * - A hostile or broken peer cannot crash the node or stop it serving others: frames are size-limited and
 *   strictly validated per stream, serving is bounded per peer, and a peer that fails verification
 *   `maxStrikes` times within `strikeWindowMs` is disconnected and refused for `banMs`.
 * - Creation completes or fails with `PeerNetworkStartError` within `startTimeoutMs` (10 s). If the listen port
 *   is taken (a sibling process or worker holds it), the host listens on an ephemeral port and dials the holder
 *   on 127.0.0.1 as a peer; if that fails (not a member of the network), it runs alone and logs why.
 * - `stop()` is idempotent; once it resolves the port is released, the identity slot is free and no timer or
 *   socket of this node is left.
 *
 * @example
 * ```ts
 * const network = await PeerNetwork.start({ p2p: options.p2p, cacheDir: options.cacheDir, host });
 * const answer = await network.fetch(key, scopeIdOf(token));
 * if (answer.kind === 'entry') store(answer.entry); else goUpstream(); // 'self' or 'unavailable'
 * await network.stop();
 * ```
 */

/** What the network needs from the cache that hosts it (declared by the cache: see src/cache/ports.ts). */
export type PeerBackend = FleetHost;

/** Protocol limits of a PeerNetwork; every field has a default. */
export interface PeerNetworkLimits {
  /** Requests served at once for one peer; more are answered `miss busy`. Default: 256. */
  maxConcurrentServesPerPeer: number;
  /** Verification failures (bad frames, bad entries, bad proofs) within `strikeWindowMs` that get a peer disconnected. Default: 5. */
  maxStrikes: number;
  /** Window in which strikes count, in ms. Default: 60 000. */
  strikeWindowMs: number;
  /** How long a peer disconnected for abuse is refused, in ms. Default: 60 000. */
  banMs: number;
  /** Most peers dialled through peer exchange (connections beyond are not sought). Default: 64. */
  maxPeers: number;
  /** Streams of the protocol per connection and direction. One long-lived stream is used per direction; the rest is room for reconnects. Default: 32. */
  maxStreamsPerConnection: number;
  /** How far in the future a peer's storedAt may be, in ms. Default: 30 000. */
  maxClockSkewMs: number;
  /** Longest an asker waits for an owner that keeps saying it is working (a `working` frame every half
   *  request timeout), in ms. Default: 30 000 (GitHub's own answers are bounded by upstreamTimeoutMs). */
  maxOwnerWaitMs: number;
  /** Creation completes or fails within this many ms. Default: 10 000. */
  startTimeoutMs: number;
  /** Delay that batches peer-exchange updates after peers join or leave, in ms. Default: 25. */
  peerExchangeDelayMs: number;
}

export const DEFAULT_PEER_NETWORK_LIMITS: Readonly<PeerNetworkLimits> = Object.freeze({
  maxConcurrentServesPerPeer: 256,
  maxStrikes: 5,
  strikeWindowMs: 60_000,
  banMs: 60_000,
  maxPeers: 64,
  maxStreamsPerConnection: 32,
  maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS,
  maxOwnerWaitMs: 30_000,
  startTimeoutMs: 10_000,
  peerExchangeDelayMs: 25,
});

export interface PeerNetworkStartOptions {
  /** Resolved P2P options (listen port and host, shared secret, bootstrap peers, timeouts, limits). */
  p2p: ResolvedP2POptions;
  /** Cache directory: the persistent identity lives in `<cacheDir>/p2p/`. */
  cacheDir: string;
  /** The cache that serves as owner and lends the scope keys. */
  host: FleetHost;
  /** Logger of this component. Default: createLogger('p2p'). */
  logger?: Logger;
  /** Clock in ms since the epoch, used to verify peers' entries. Default: Date.now. */
  now?: () => number;
  /** Protocol limits (see PeerNetworkLimits). */
  limits?: Partial<PeerNetworkLimits>;
}

export type PeerFetchResult =
  | { readonly kind: 'self' }
  | { readonly kind: 'entry'; readonly entry: CacheEntry; readonly peerId: string }
  | { readonly kind: 'unavailable'; readonly reason: string };

export interface PeerNetworkStats {
  /** This node's peer id. */
  peerId: string;
  /** Its listen multiaddrs, with /p2p/<id>. */
  listenAddrs: string[];
  /** Peers with an open connection. */
  connectedPeers: number;
  /** Peers speaking the protocol; `scopes` counts the scopes they proved that this node holds too. */
  peers: Array<{ id: string; scopes: number }>;
  /** `get`s sent to owners. */
  requestsSent: number;
  /** Verified entries received. */
  entriesReceived: number;
  /** Entries sent as owner. */
  requestsServed: number;
  /** Rejected data by reason: envelope reasons ('decrypt', 'schema', 'digest', 'key', 'future', 'ttl') and 'frame', 'oversize', 'proof', 'request', 'protocol'. */
  rejected: Record<string, number>;
  /** Requests whose owner did not answer within requestTimeoutMs. */
  timeouts: number;
  /** Peers disconnected because they kept sending bad data. */
  disconnectedForAbuse: number;
  /** The TCP port actually bound. */
  boundPort: number;
  /** Whether the configured port was taken and an ephemeral one is used. */
  portFallback: boolean;
}

/** The host could not be created; `cause` holds the underlying error. Nothing was left running. */
export class PeerNetworkStartError extends CacheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_P2P_START', `Starting the P2P host failed: ${message}`, options);
  }
}

/** My outbound stream to a peer: I ask, it answers. */
interface ClientSide {
  readonly channel: FrameChannel;
  /** The challenge I sent: its scope claims are proved under it. */
  readonly challenge: Uint8Array;
  /** Its challenge: my get proofs are made under it. Undefined until its hello arrives. */
  remoteChallenge: Uint8Array | undefined;
  /** Its latest scope claims, by scope id. */
  claims: Map<string, Uint8Array>;
  /** Verification results of those claims (for scopes this node holds), computed on first use. */
  verified: Map<string, boolean>;
  readonly requests: RequestTable;
}

/** A peer's stream to me: it asks, I answer. */
interface ServerSide {
  readonly channel: FrameChannel;
  /** The challenge I sent: its get proofs are made under it. */
  readonly challenge: Uint8Array;
  /** Its challenge: my scope claims are proved under it. */
  remoteChallenge: Uint8Array | undefined;
}

interface PeerSession {
  readonly id: string;
  readonly peerId: PeerId;
  /** Its own listen addresses (from its hello), without /p2p/. */
  addrs: string[];
  client: ClientSide | undefined;
  opening: boolean;
  readonly servers: Set<ServerSide>;
  /** Requests being served for it right now. */
  serving: number;
  /** When its outbound stream was reopened (at most 3 a minute). */
  reopens: number[];
}

type PeerDiscoveryFactory = NonNullable<Parameters<typeof createLibp2p>[0]>['peerDiscovery'] extends Array<infer F> | undefined ? F : never;

type RejectionKind = PeerEntryRejected['reason'] | FrameViolation | 'proof' | 'request' | 'protocol';

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] ?? err.name : String(err);
}

function tcpListenAddr(host: string, port: number): string {
  if (net.isIPv6(host)) return `/ip6/${host}/tcp/${port}`;
  if (net.isIPv4(host)) return `/ip4/${host}/tcp/${port}`;
  throw new PeerNetworkStartError(`p2p.listenHost must be an IP address, got ${JSON.stringify(host)}`);
}

/** The address on which a sibling holding `host:port` on this machine can be dialled. */
function localHolderAddr(host: string, port: number): string {
  if (host === '0.0.0.0' || host === '') return `/ip4/127.0.0.1/tcp/${port}`;
  if (host === '::') return `/ip6/::1/tcp/${port}`;
  return tcpListenAddr(host, port);
}

function isAddressInUse(err: unknown): boolean {
  return err instanceof Error && (err.message.includes('EADDRINUSE') || (err as NodeJS.ErrnoException).code === 'EADDRINUSE');
}

function withoutPeerId(ma: Multiaddr): Multiaddr {
  return ma.getComponents().some((c) => c.code === CODE_P2P) ? ma.decapsulateCode(CODE_P2P) : ma;
}

export class PeerNetwork {
  private readonly node: Libp2p;
  private readonly identity: PeerIdentity;
  private readonly p2p: ResolvedP2POptions;
  private readonly backend: FleetHost;
  private unsubscribeScopes: (() => void) | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly limits: PeerNetworkLimits;
  private readonly anonymousKey: Uint8Array;
  private readonly selfId: string;
  private readonly portFallbackUsed: boolean;

  private readonly sessions = new Map<string, PeerSession>();
  private readonly strikes = new Map<string, number[]>();
  private readonly bans = new Map<string, number>();
  private readonly dialing = new Set<string>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly proofKeys = new Map<string, { entryKey: Uint8Array; proofKey: Uint8Array }>();
  /** Aborted at stop: the signal of every serveAsOwner call. */
  private readonly serving = new AbortController();
  private exchangeTimer: NodeJS.Timeout | undefined;
  /** Requests being served as owner; one shared timer sends `working` for those older than half a timeout. */
  private readonly inService = new Set<{ channel: FrameChannel; id: number; since: number }>();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;

  private readonly counters = { requestsSent: 0, entriesReceived: 0, requestsServed: 0, timeouts: 0, disconnectedForAbuse: 0 };
  private readonly rejected: Record<string, number> = {};

  private constructor(init: {
    node: Libp2p; identity: PeerIdentity; options: PeerNetworkStartOptions; log: Logger; limits: PeerNetworkLimits; portFallback: boolean;
  }) {
    this.node = init.node;
    this.identity = init.identity;
    this.p2p = init.options.p2p;
    this.backend = init.options.host;
    this.log = init.log;
    this.now = init.options.now ?? Date.now;
    this.limits = init.limits;
    this.anonymousKey = anonymousEntryKeyOf(init.options.p2p.sharedSecret ?? '');
    this.selfId = init.node.peerId.toString();
    this.portFallbackUsed = init.portFallback;
    // Every request being served listens on this signal.
    setMaxListeners(0, this.serving.signal);
    // Scope claims go out when the cache first holds a token, on a later tick (never inside the token path).
    this.unsubscribeScopes = this.backend.scopes.onScopeAdded(() => this.announceScopes());
  }

  /**
   * Creates the host (persistent identity, private network, listen port with fallback), joins the fleet
   * (local port holder, bootstrap peers) and starts serving the protocol. Completes or fails within
   * `limits.startTimeoutMs`; on failure nothing is left running.
   */
  static async start(options: PeerNetworkStartOptions): Promise<PeerNetwork> {
    const log = options.logger ?? createLogger('p2p');
    const limits: PeerNetworkLimits = { ...DEFAULT_PEER_NETWORK_LIMITS, ...options.limits };
    const secret = options.p2p.sharedSecret;
    if (secret === undefined || secret.length < 16) {
      throw new PeerNetworkStartError('no shared secret of at least 16 characters (p2p.sharedSecret): an open network would let anyone in');
    }
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), limits.startTimeoutMs);
    let network: PeerNetwork | undefined;
    const creation = PeerNetwork.create(options, log, limits, secret, deadline.signal).then((created) => {
      network = created;
      return created;
    });
    try {
      return await Promise.race([
        creation,
        new Promise<never>((_, reject) => {
          deadline.signal.addEventListener('abort', () => reject(new PeerNetworkStartError(`it did not complete within ${limits.startTimeoutMs} ms`)), { once: true });
        }),
      ]);
    } catch (err) {
      // The creation may still finish after the deadline: stop whatever it made.
      creation.then((late) => late.stop(), () => undefined).catch(() => undefined);
      if (network !== undefined) await network.stop().catch(() => undefined);
      throw err instanceof PeerNetworkStartError ? err : new PeerNetworkStartError(errorMessage(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  private static async create(options: PeerNetworkStartOptions, log: Logger, limits: PeerNetworkLimits, secret: string, deadline: AbortSignal): Promise<PeerNetwork> {
    const { p2p } = options;
    const mdns = p2p.mdns ? await PeerNetwork.loadMdns(log) : undefined;
    const identity = await acquirePeerIdentity({ cacheDir: options.cacheDir, logger: log });
    let node: Libp2p | undefined;
    let network: PeerNetwork | undefined;
    try {
      let portFallback = false;
      // The gater reads the bans of the network, which exists only once the node does.
      const gate = { banned: (_peer: PeerId): boolean => false };
      const build = async (port: number): Promise<Libp2p> => {
        const created = await PeerNetwork.createNode(options, identity, limits, secret, tcpListenAddr(p2p.listenHost, port), gate, mdns);
        try {
          await created.start();
          return created;
        } catch (err) {
          await Promise.resolve(created.stop()).catch(() => undefined);
          throw err;
        }
      };
      try {
        node = await build(p2p.listenPort);
      } catch (err) {
        if (p2p.listenPort === 0 || !isAddressInUse(err)) throw err;
        log.debug('port %d is taken; listening on an ephemeral port and dialling the holder', p2p.listenPort);
        portFallback = true;
        node = await build(0);
      }
      if (deadline.aborted) throw new PeerNetworkStartError('start deadline passed');
      const created = new PeerNetwork({ node, identity, options, log, limits, portFallback });
      network = created;
      gate.banned = (peer) => created.isBanned(peer.toString());
      await created.attach();
      if (portFallback) await created.joinLocalHolder(deadline);
      created.dialBootstrapPeers();
      return created;
    } catch (err) {
      if (network !== undefined) await network.stop().catch(() => undefined);
      else {
        if (node !== undefined) await Promise.resolve(node.stop()).catch(() => undefined);
        identity.release();
      }
      throw err;
    }
  }

  private static async createNode(options: PeerNetworkStartOptions, identity: PeerIdentity, limits: PeerNetworkLimits, secret: string, listen: string,
    gate: { banned(peer: PeerId): boolean }, mdns: PeerDiscoveryFactory | undefined): Promise<Libp2p> {
    const { p2p } = options;
    const withPeerId = p2p.bootstrapPeers.filter((addr) => addr.includes('/p2p/'));
    const peerDiscovery: PeerDiscoveryFactory[] = [];
    if (withPeerId.length > 0) peerDiscovery.push(bootstrap({ list: withPeerId }));
    if (mdns !== undefined) peerDiscovery.push(mdns);
    return createLibp2p({
      start: false,
      privateKey: identity.privateKey,
      addresses: { listen: [listen] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionProtector: preSharedKey({ psk: swarmKeyOf(secret) }),
      connectionGater: {
        denyDialPeer: (peer) => gate.banned(peer),
        denyInboundEncryptedConnection: (peer) => gate.banned(peer),
        denyOutboundEncryptedConnection: (peer) => gate.banned(peer),
      },
      connectionManager: {
        dialTimeout: p2p.dialTimeoutMs,
        maxConnections: Math.max(limits.maxPeers * 2, 64),
        // Siblings on one host all connect from 127.0.0.1: the default (5 per second per host) would refuse them.
        inboundConnectionThreshold: 100,
        maxIncomingPendingConnections: 32,
      },
      peerDiscovery,
      services: { identify: identify(), ping: ping() },
    });
  }

  // ---------------------------------------------------------------- lifecycle

  private async attach(): Promise<void> {
    await this.node.handle(PROTOCOL, (stream, connection) => this.onInboundStream(stream, connection), {
      maxInboundStreams: this.limits.maxStreamsPerConnection,
      maxOutboundStreams: this.limits.maxStreamsPerConnection,
    });
    this.node.addEventListener('peer:connect', (event) => this.onPeerConnect(event.detail));
    this.node.addEventListener('peer:disconnect', (event) => this.onPeerDisconnect(event.detail.toString()));
    this.node.addEventListener('connection:close', (event) => this.onConnectionClose(event.detail));
    this.node.addEventListener('peer:discovery', (event) => {
      const { id, multiaddrs } = event.detail;
      if (this.sessions.has(id.toString())) return;
      this.dialPeer(id.toString(), multiaddrs.map((ma) => withoutPeerId(ma).toString()), 'discovery');
    });
    // Peers already connected (none in practice: the node has just started).
    for (const peer of this.node.getPeers()) this.onPeerConnect(peer);
    this.log.debug('listening on %s as %s', this.listenAddrs().join(', '), this.selfId);
  }

  /** After a port fallback: dial the sibling that holds the configured port. */
  private async joinLocalHolder(deadline: AbortSignal): Promise<void> {
    const addr = localHolderAddr(this.p2p.listenHost, this.p2p.listenPort);
    try {
      const connection = await this.node.dial(multiaddr(addr), { signal: AbortSignal.any([AbortSignal.timeout(this.p2p.dialTimeoutMs), deadline]) });
      await this.keepAlive(connection.remotePeer);
      this.log.debug('port %d is held by peer %s; joined it', this.p2p.listenPort, connection.remotePeer.toString());
    } catch (err) {
      this.log.warn(`port ${this.p2p.listenPort} is taken by a process that is not a member of this network (dialling ${addr} failed: ${errorMessage(err)}); ` +
        `running on port ${this.boundPort()} and reaching the fleet only through bootstrap peers. Check that it uses the same p2p.sharedSecret, or free the port.`);
    }
  }

  private dialBootstrapPeers(): void {
    for (const raw of this.p2p.bootstrapPeers) {
      let ma: Multiaddr;
      try {
        ma = multiaddr(raw);
      } catch (err) {
        this.log.warn(`ignoring bootstrap peer ${JSON.stringify(raw)}: not a multiaddr (${errorMessage(err)})`);
        continue;
      }
      // A fleet-wide list usually names this node too.
      if (ma.getComponents().some((c) => c.code === CODE_P2P && c.value === this.selfId)) continue;
      this.track(this.node.dial(ma, { signal: AbortSignal.timeout(this.p2p.dialTimeoutMs) }).then(
        (connection) => this.keepAlive(connection.remotePeer),
        (err: unknown) => this.log.warn(`could not reach bootstrap peer ${raw}: ${errorMessage(err)}`),
      ));
    }
  }

  /** The mDNS discovery factory of the optional `@libp2p/mdns`, or undefined (logged) when it is not installed. */
  private static async loadMdns(log: Logger): Promise<PeerDiscoveryFactory | undefined> {
    // Loaded by name so that the package builds and runs without it.
    const name = '@libp2p/mdns';
    try {
      const module = (await import(name)) as { mdns?: (init?: object) => PeerDiscoveryFactory };
      if (typeof module.mdns !== 'function') throw new Error('it does not export mdns()');
      return module.mdns();
    } catch (err) {
      log.warn(`p2p.mdns is on but @libp2p/mdns cannot be loaded (${errorMessage(err)}); install it to discover LAN peers. Continuing without mDNS.`);
      return undefined;
    }
  }

  private async keepAlive(peer: PeerId): Promise<void> {
    try {
      await this.node.peerStore.merge(peer, { tags: { [KEEP_ALIVE]: { value: 1 } } });
    } catch (err) {
      this.log.debug('could not tag %s keep-alive: %s', peer.toString(), errorMessage(err));
    }
  }

  /** Stops the host: in-flight asks settle 'unavailable', serving stops, the port and identity are released. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.unsubscribeScopes?.();
    this.unsubscribeScopes = undefined;
    if (this.exchangeTimer !== undefined) clearTimeout(this.exchangeTimer);
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.inService.clear();
    this.exchangeTimer = undefined;
    this.serving.abort(new Error('the P2P host is stopping'));
    for (const session of this.sessions.values()) this.closeSession(session);
    this.sessions.clear();
    try {
      await this.node.stop();
    } catch (err) {
      this.log.warn(`stopping libp2p failed: ${errorMessage(err)}`);
    }
    await Promise.allSettled([...this.background]);
    this.identity.release();
  }

  private get stopped(): boolean {
    return this.stopping !== undefined;
  }

  private track(promise: Promise<unknown>): void {
    const tracked = promise.catch(() => undefined).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  // ---------------------------------------------------------------- sessions and streams

  private session(peerId: PeerId): PeerSession {
    const id = peerId.toString();
    let session = this.sessions.get(id);
    if (session === undefined) {
      session = { id, peerId, addrs: [], client: undefined, opening: false, servers: new Set(), serving: 0, reopens: [] };
      this.sessions.set(id, session);
    }
    return session;
  }

  private onPeerConnect(peerId: PeerId): void {
    if (this.stopped) return;
    if (this.isBanned(peerId.toString())) {
      void this.node.hangUp(peerId).catch(() => undefined);
      return;
    }
    this.openClient(this.session(peerId));
  }

  private onPeerDisconnect(id: string): void {
    const session = this.sessions.get(id);
    if (session === undefined) return;
    this.sessions.delete(id);
    this.closeSession(session);
    this.schedulePeerExchange();
  }

  private onConnectionClose(connection: Connection): void {
    // Another connection to the peer may remain: reopen the outbound stream on it.
    const session = this.sessions.get(connection.remotePeer.toString());
    if (session === undefined || this.stopped) return;
    if (session.client?.channel.closed === true) session.client = undefined;
    if (session.client === undefined && this.node.getConnections(session.peerId).length > 0) this.openClient(session);
  }

  private closeSession(session: PeerSession): void {
    session.client?.channel.close(new Error('peer session closed'));
    session.client?.requests.closeAll();
    for (const server of session.servers) server.channel.close(new Error('peer session closed'));
    session.servers.clear();
  }

  /** Opens my long-lived outbound stream to a peer (once; again if it closes while connected). */
  private openClient(session: PeerSession): void {
    if (this.stopped || session.opening || (session.client !== undefined && !session.client.channel.closed)) return;
    session.opening = true;
    this.track((async () => {
      let stream: Stream;
      try {
        stream = await this.node.dialProtocol(session.peerId, PROTOCOL, {
          signal: AbortSignal.timeout(this.p2p.dialTimeoutMs),
          maxOutboundStreams: this.limits.maxStreamsPerConnection,
        });
      } catch (err) {
        this.log.debug('could not open %s to %s: %s', PROTOCOL, session.id, errorMessage(err));
        return;
      } finally {
        session.opening = false;
      }
      if (this.stopped || this.sessions.get(session.id) !== session) {
        stream.abort(new Error('the peer session is gone'));
        return;
      }
      const challenge = new Uint8Array(randomBytes(CHALLENGE_BYTES));
      const client: ClientSide = {
        challenge, remoteChallenge: undefined, claims: new Map(), verified: new Map(), requests: new RequestTable(),
        channel: new FrameChannel(stream, {
          maxFrameBytes: this.p2p.maxFrameBytes,
          logger: this.log,
          onFrame: (frame) => this.onClientFrame(session, client, frame),
          onClose: (violation, error) => {
            client.requests.closeAll();
            if (session.client === client) session.client = undefined;
            if (violation !== undefined) this.reject(session.id, violation, errorMessage(error));
            else if (!this.stopped && this.sessions.get(session.id) === session && this.node.getConnections(session.peerId).length > 0) {
              // The stream died but a connection remains: open a fresh one, a few times a minute at most (a peer
              // that keeps closing our stream must not make us loop).
              const now = Date.now();
              session.reopens = session.reopens.filter((at) => now - at < 60_000);
              if (session.reopens.length < 3) {
                session.reopens.push(now);
                queueMicrotask(() => this.openClient(session));
              }
            }
          },
        }),
      };
      session.client = client;
      client.channel.send(this.hello(challenge));
    })());
  }

  private onInboundStream(stream: Stream, connection: Connection): void {
    const id = connection.remotePeer.toString();
    if (this.stopped || this.isBanned(id)) {
      stream.abort(new Error('refused'));
      return;
    }
    const session = this.session(connection.remotePeer);
    const challenge = new Uint8Array(randomBytes(CHALLENGE_BYTES));
    const server: ServerSide = {
      challenge, remoteChallenge: undefined,
      channel: new FrameChannel(stream, {
        maxFrameBytes: this.p2p.maxFrameBytes,
        logger: this.log,
        onFrame: (frame) => this.onServerFrame(session, server, frame),
        onClose: (violation, error) => {
          session.servers.delete(server);
          if (violation !== undefined) this.reject(session.id, violation, errorMessage(error));
        },
      }),
    };
    session.servers.add(server);
    server.channel.send(this.hello(challenge));
    if (session.client === undefined) this.openClient(session);
  }

  private hello(challenge: Uint8Array): Frame {
    return { type: 'hello', version: WIRE_VERSION, challenge, addrs: this.ownAddrs(), peers: this.knownPeers() };
  }

  // ---------------------------------------------------------------- frames

  private onClientFrame(session: PeerSession, client: ClientSide, frame: Frame): void {
    switch (frame.type) {
      case 'hello':
        if (client.remoteChallenge !== undefined) return this.protocolViolation(session, client.channel, 'a second hello');
        client.remoteChallenge = frame.challenge;
        this.learnPeer(session, frame.addrs, frame.peers);
        return;
      case 'scopes':
        if (client.remoteChallenge === undefined) return this.protocolViolation(session, client.channel, 'scopes before hello');
        client.claims = new Map(frame.scopes.map((claim) => [claim.id, claim.proof]));
        client.verified = new Map();
        // Verify now the claims of scopes this node holds (others are verified if it comes to hold them).
        for (const scopeId of client.claims.keys()) this.claimVerified(session, client, scopeId);
        this.exchangePeers(frame.peers);
        return;
      case 'entry':
        client.requests.settle(frame.id, { kind: 'entry', sealed: frame.sealed });
        return;
      case 'miss':
        client.requests.settle(frame.id, { kind: 'miss', reason: frame.reason });
        return;
      case 'error':
        client.requests.settle(frame.id, { kind: 'error', message: frame.message });
        return;
      case 'working':
        client.requests.extend(frame.id); // late or unknown ids are ignored; maxOwnerWaitMs bounds the rest
        return;
      case 'get':
        return this.protocolViolation(session, client.channel, 'a get on the asker\'s own stream');
    }
  }

  private onServerFrame(session: PeerSession, server: ServerSide, frame: Frame): void {
    switch (frame.type) {
      case 'hello':
        if (server.remoteChallenge !== undefined) return this.protocolViolation(session, server.channel, 'a second hello');
        server.remoteChallenge = frame.challenge;
        this.learnPeer(session, frame.addrs, frame.peers);
        server.channel.send(this.scopesFrame(frame.challenge));
        return;
      case 'get':
        if (server.remoteChallenge === undefined) return this.protocolViolation(session, server.channel, 'get before hello');
        this.serve(session, server, frame);
        return;
      case 'scopes':
      case 'entry':
      case 'working':
      case 'miss':
      case 'error':
        return this.protocolViolation(session, server.channel, `${frame.type} on the owner's side of a stream`);
    }
  }

  private protocolViolation(session: PeerSession, channel: FrameChannel, what: string): void {
    this.reject(session.id, 'protocol', what);
    channel.close(new Error(`protocol violation: ${what}`));
  }

  // ---------------------------------------------------------------- serving (as owner)

  private serve(session: PeerSession, server: ServerSide, frame: GetFrame): void {
    const reply = (answer: Frame): void => {
      server.channel.send(answer);
    };
    const parts = parseRequestKey(frame.key);
    if (parts === undefined) {
      this.reject(session.id, 'request', 'a get for a malformed key');
      return reply({ type: 'miss', id: frame.id, reason: 'bad-key' });
    }
    const keys = this.scopeKeys(parts.scopeId);
    if (keys === undefined) return reply({ type: 'miss', id: frame.id, reason: 'not-held' });
    if (!verifyGetProof(keys.proofKey, server.challenge, frame.id, frame.key, frame.proof)) {
      this.reject(session.id, 'proof', 'a get without a valid proof of its scope');
      return reply({ type: 'miss', id: frame.id, reason: 'bad-proof' });
    }
    if (session.serving >= this.limits.maxConcurrentServesPerPeer) return reply({ type: 'miss', id: frame.id, reason: 'busy' });
    if (this.stopped) return reply({ type: 'miss', id: frame.id, reason: 'stopping' });
    // A hit in the local cache is answered at once, in this turn: no upstream request, nothing to wait for.
    const held = this.backend.heldEntry(frame.key, parts);
    if (held !== undefined) return this.sendEntry(server, frame.id, frame.key, held, keys.entryKey);
    // Only the id and key go on (not the frame, whose proof may be a view of the received bytes).
    void this.serveLater(session, server, frame.id, frame.key, parts, keys.entryKey);
  }

  /** Serves a get that needs the backend's asynchronous work (an upstream request, or a wait for one). */
  private async serveLater(session: PeerSession, server: ServerSide, id: number, key: string, parts: RequestKeyParts, entryKey: Uint8Array): Promise<void> {
    session.serving++;
    // While GitHub is slow (or this node's per-scope cap queues the request), tell the asker we are alive.
    const pending = { channel: server.channel, id, since: Date.now() };
    this.inService.add(pending);
    this.ensureHeartbeat();
    let entry: CacheEntry | undefined;
    try {
      entry = await this.backend.serveAsOwner(key, this.serving.signal, parts);
    } catch (err) {
      server.channel.send({ type: 'error', id, message: errorMessage(err).slice(0, WIRE_LIMITS.messageLength) });
      return;
    } finally {
      this.inService.delete(pending);
      session.serving--;
    }
    if (server.channel.closed) return;
    if (entry === undefined) {
      server.channel.send({ type: 'miss', id, reason: 'no-entry' });
      return;
    }
    this.sendEntry(server, id, key, entry, entryKey);
  }

  /** Seals `entry` as the answer to request `id` for `key`, and sends it (or `miss too-large`). */
  private sendEntry(server: ServerSide, id: number, key: string, entry: CacheEntry, entryKey: Uint8Array): void {
    // Askers refuse a TTL above their p2p.maxEntryTtl (and count it against us): never send one above ours.
    const maxExpiresAt = entry.storedAt + this.p2p.maxEntryTtl * 1000;
    const sealed = sealEntry(entry.expiresAt > maxExpiresAt ? { ...entry, expiresAt: Math.floor(maxExpiresAt) } : entry, key, entryKey);
    // A frame is the sealed bytes plus a few dozen bytes of CBOR around them.
    if (sealed.byteLength + 64 > this.p2p.maxFrameBytes) {
      server.channel.send({ type: 'miss', id, reason: 'too-large' });
      return;
    }
    server.channel.send({ type: 'entry', id, sealed });
    this.counters.requestsServed++;
  }

  /** Runs the shared heartbeat while anything is being served; it stops by itself when nothing is. */
  private ensureHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) return;
    const half = Math.max(1, Math.floor(this.p2p.requestTimeoutMs / 2));
    this.heartbeatTimer = setInterval(() => {
      if (this.inService.size === 0 || this.stopped) {
        clearInterval(this.heartbeatTimer);
        this.heartbeatTimer = undefined;
        return;
      }
      const due = Date.now() - half;
      for (const { channel, id, since } of this.inService) {
        if (since <= due && !channel.closed) channel.send({ type: 'working', id });
      }
    }, Math.max(1, Math.floor(half / 2)));
    this.heartbeatTimer.unref();
  }

  // ---------------------------------------------------------------- asking (as asker)

  /** Ask the key's owner. 'self' when this node owns it (caller goes upstream), 'entry' with a verified entry, or 'unavailable' (owner timed out/gone/miss; caller goes upstream itself). Never throws for peer failures. */
  async fetch(key: string, scopeId: string, signal?: AbortSignal): Promise<PeerFetchResult> {
    if (this.stopped) return { kind: 'unavailable', reason: 'the P2P host is stopped' };
    const parts = parseRequestKey(key);
    if (parts === undefined || parts.scopeId !== scopeId) return { kind: 'unavailable', reason: 'not a request key of this scope' };
    const keys = this.scopeKeys(scopeId);
    if (keys === undefined) return { kind: 'unavailable', reason: 'this node does not hold the scope' };

    const candidates = [this.selfId];
    for (const session of this.sessions.values()) {
      if (session.client !== undefined && this.claimVerified(session, session.client, scopeId)) candidates.push(session.id);
    }
    const owner = rendezvousOwner(key, candidates);
    if (owner === this.selfId || owner === undefined) return { kind: 'self' };
    const session = this.sessions.get(owner);
    const client = session?.client;
    if (session === undefined || client?.remoteChallenge === undefined) return { kind: 'unavailable', reason: 'owner disconnected' };

    const { id, answer } = client.requests.open(this.p2p.requestTimeoutMs, signal, this.limits.maxOwnerWaitMs);
    this.counters.requestsSent++;
    if (!client.channel.send({ type: 'get', id, key, proof: getProof(keys.proofKey, client.remoteChallenge, id, key) })) {
      client.requests.settle(id, { kind: 'closed' });
    }
    const result = await answer;
    switch (result.kind) {
      case 'entry':
        try {
          const entry = openEntry(result.sealed, key, keys.entryKey, {
            maxEntryTtlSeconds: this.p2p.maxEntryTtl, now: this.now, maxClockSkewMs: this.limits.maxClockSkewMs,
          });
          this.counters.entriesReceived++;
          return { kind: 'entry', entry, peerId: owner };
        } catch (err) {
          const reason = err instanceof PeerEntryRejected ? err.reason : 'schema';
          this.reject(owner, reason, errorMessage(err));
          return { kind: 'unavailable', reason: `rejected the owner's entry (${reason})` };
        }
      case 'miss':
        return { kind: 'unavailable', reason: `owner miss (${result.reason})` };
      case 'error':
        return { kind: 'unavailable', reason: `owner error: ${result.message}` };
      case 'timeout':
        this.counters.timeouts++;
        return { kind: 'unavailable', reason: `owner did not answer within ${this.p2p.requestTimeoutMs} ms` };
      case 'closed':
        return { kind: 'unavailable', reason: 'owner disconnected' };
      case 'aborted':
        return { kind: 'unavailable', reason: 'aborted' };
    }
  }

  /** Call when heldScopes() changed: tells connected peers. */
  announceScopes(): void {
    if (this.stopped) return;
    for (const session of this.sessions.values()) {
      for (const server of session.servers) {
        if (server.remoteChallenge !== undefined) server.channel.send(this.scopesFrame(server.remoteChallenge));
      }
    }
  }

  // ---------------------------------------------------------------- scopes and proofs

  /** Entry key and proof key of a scope this node holds; undefined when it does not. */
  private scopeKeys(scopeId: string): { entryKey: Uint8Array; proofKey: Uint8Array } | undefined {
    const entryKey = scopeId === ANONYMOUS_SCOPE ? this.anonymousKey : this.backend.scopes.entryKey(scopeId);
    if (entryKey === undefined) return undefined;
    const cached = this.proofKeys.get(scopeId);
    if (cached !== undefined && Buffer.compare(cached.entryKey, entryKey) === 0) return cached;
    const keys = { entryKey, proofKey: proofKeyOf(entryKey) };
    this.proofKeys.set(scopeId, keys);
    return keys;
  }

  private heldScopeIds(): string[] {
    const scopes = new Set<string>([ANONYMOUS_SCOPE, ...this.backend.scopes.heldScopes()]);
    return [...scopes].slice(0, WIRE_LIMITS.scopes);
  }

  private scopesFrame(remoteChallenge: Uint8Array): Frame {
    const claims: ScopeClaim[] = [];
    for (const scopeId of this.heldScopeIds()) {
      const keys = this.scopeKeys(scopeId);
      if (keys !== undefined) claims.push({ id: scopeId, proof: scopeClaimProof(keys.proofKey, remoteChallenge, scopeId) });
    }
    return { type: 'scopes', scopes: claims, peers: this.knownPeers() };
  }

  /** Whether the peer proved it holds `scopeId` (verified once per claim, on first use). */
  private claimVerified(session: PeerSession, client: ClientSide, scopeId: string): boolean {
    if (client.remoteChallenge === undefined || client.channel.closed || this.isBanned(session.id)) return false;
    const cached = client.verified.get(scopeId);
    if (cached !== undefined) return cached;
    const proof = client.claims.get(scopeId);
    const keys = proof === undefined ? undefined : this.scopeKeys(scopeId);
    if (proof === undefined || keys === undefined) return false;
    const ok = verifyScopeClaim(keys.proofKey, client.challenge, scopeId, proof);
    client.verified.set(scopeId, ok);
    if (!ok) this.reject(session.id, 'proof', `a claim of scope ${scopeId.slice(0, 12)} without a valid proof`);
    return ok;
  }

  // ---------------------------------------------------------------- peer exchange

  private ownAddrs(): string[] {
    return this.node.getMultiaddrs()
      .map((ma) => withoutPeerId(ma))
      .filter((ma) => ma.getComponents().some((c) => c.code === CODE_TCP))
      .map((ma) => ma.toString())
      .filter((text) => text.length <= WIRE_LIMITS.addrLength)
      .slice(0, WIRE_LIMITS.addrs);
  }

  private knownPeers(): PeerRecord[] {
    const peers: PeerRecord[] = [];
    for (const session of this.sessions.values()) {
      if (session.addrs.length === 0 || this.isBanned(session.id)) continue;
      peers.push({ id: session.id, addrs: session.addrs });
      if (peers.length >= WIRE_LIMITS.peers) break;
    }
    return peers;
  }

  private learnPeer(session: PeerSession, addrs: readonly string[], peers: readonly PeerRecord[]): void {
    const known = session.addrs.length > 0;
    session.addrs = [...addrs];
    if (!known && addrs.length > 0) this.schedulePeerExchange();
    this.exchangePeers(peers);
  }

  /** Dials the peers another node knows and this one does not. */
  private exchangePeers(peers: readonly PeerRecord[]): void {
    for (const peer of peers) {
      if (peer.id === this.selfId || this.sessions.has(peer.id) || this.dialing.has(peer.id) || this.isBanned(peer.id)) continue;
      if (this.sessions.size + this.dialing.size >= this.limits.maxPeers) return;
      this.dialPeer(peer.id, peer.addrs, 'peer exchange');
    }
  }

  private dialPeer(id: string, addrs: readonly string[], how: string): void {
    if (this.stopped || this.dialing.has(id) || id === this.selfId || this.isBanned(id)) return;
    let targets: Multiaddr[];
    try {
      peerIdFromString(id);
      targets = addrs.map((addr) => multiaddr(`${addr}/p2p/${id}`)).filter((ma) => ma.getComponents().some((c) => c.code === CODE_TCP));
    } catch (err) {
      this.log.debug('ignoring peer %s from %s: %s', id, how, errorMessage(err));
      return;
    }
    if (targets.length === 0) return;
    this.dialing.add(id);
    this.track(this.node.dial(targets, { signal: AbortSignal.timeout(this.p2p.dialTimeoutMs) })
      .then(
        () => this.log.debug('connected to %s (%s)', id, how),
        (err: unknown) => this.log.debug('could not dial %s (%s): %s', id, how, errorMessage(err)),
      )
      .finally(() => this.dialing.delete(id)));
  }

  /** Tells every peer the current peer list, batched over a short delay. */
  private schedulePeerExchange(): void {
    if (this.stopped || this.exchangeTimer !== undefined) return;
    this.exchangeTimer = setTimeout(() => {
      this.exchangeTimer = undefined;
      this.announceScopes();
    }, this.limits.peerExchangeDelayMs);
  }

  // ---------------------------------------------------------------- abuse

  private isBanned(id: string): boolean {
    const until = this.bans.get(id);
    if (until === undefined) return false;
    if (Date.now() < until) return true;
    this.bans.delete(id);
    return false;
  }

  /** Counts rejected data from a peer; past maxStrikes within the window, disconnects and bans it. */
  private reject(peerId: string, kind: RejectionKind, detail: string): void {
    this.rejected[kind] = (this.rejected[kind] ?? 0) + 1;
    this.log.debug('rejected %s from %s: %s', kind, peerId, detail);
    if (this.stopped || this.isBanned(peerId)) return;
    const now = Date.now();
    const recent = (this.strikes.get(peerId) ?? []).filter((at) => now - at < this.limits.strikeWindowMs);
    recent.push(now);
    this.strikes.set(peerId, recent);
    if (recent.length < this.limits.maxStrikes) return;
    this.strikes.delete(peerId);
    this.bans.set(peerId, now + this.limits.banMs);
    this.counters.disconnectedForAbuse++;
    this.log.warn(`disconnected peer ${peerId}: ${recent.length} bad frames or entries within ${this.limits.strikeWindowMs / 1000} s (last: ${kind}: ${detail}); refusing it for ${this.limits.banMs / 1000} s`);
    const session = this.sessions.get(peerId);
    if (session !== undefined) {
      this.sessions.delete(peerId);
      this.closeSession(session);
      this.track(this.node.hangUp(session.peerId));
    }
  }

  // ---------------------------------------------------------------- stats

  private listenAddrs(): string[] {
    return this.node.getMultiaddrs().map((ma) => ma.toString());
  }

  private boundPort(): number {
    for (const ma of this.node.getMultiaddrs()) {
      const port = ma.getComponents().find((c) => c.code === CODE_TCP)?.value;
      if (port !== undefined) return Number(port);
    }
    return 0;
  }

  /** This node's peer id. */
  get peerId(): string {
    return this.selfId;
  }

  stats(): PeerNetworkStats {
    const peers: Array<{ id: string; scopes: number }> = [];
    for (const session of this.sessions.values()) {
      const client = session.client;
      if (client === undefined || client.remoteChallenge === undefined) continue;
      let scopes = 0;
      for (const scopeId of client.claims.keys()) if (this.claimVerified(session, client, scopeId)) scopes++;
      peers.push({ id: session.id, scopes });
    }
    return {
      peerId: this.selfId,
      listenAddrs: this.stopped ? [] : this.listenAddrs(),
      connectedPeers: this.stopped ? 0 : this.node.getPeers().length,
      peers,
      ...this.counters,
      rejected: { ...this.rejected },
      boundPort: this.stopped ? 0 : this.boundPort(),
      portFallback: this.portFallbackUsed,
    };
  }
}
