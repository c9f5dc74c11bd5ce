import net from 'node:net';
import { yamux } from '@chainsafe/libp2p-yamux';
import { bootstrap } from '@libp2p/bootstrap';
import { identify, type Identify } from '@libp2p/identify';
import { KEEP_ALIVE, type Libp2p, type PeerId } from '@libp2p/interface';
import { ping, type Ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { CODE_P2P, CODE_TCP, multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { CacheConfigError, CacheError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ResolvedP2POptions } from '../options.js';
import type { CacheProtocol, CacheProtocolComponents } from './cache-protocol.js';
import { handshakePrologueOf, swarmKeyOf } from './fleet-keys.js';
import { acquirePeerIdentity, type PeerIdentity } from './identity.js';
import { hostOf, InboundGate } from './inbound-gate.js';
import type { InvalidationComponents, InvalidationService } from './invalidation.js';
import { errorMessage, type PeerNetworkLimits } from './limits.js';
import { keepOneConnectionPerPeer } from './one-connection.js';
import { fleetNoiseCrypto } from './noise-crypto.js';
import { fleetNoise } from './noise-decoder.js';

/**
 * The fleet's libp2p host: assembly (TCP, noise bound to the shared secret or pnet beneath it, yamux, connection
 * gater, persistent identity, bootstrap, optional mDNS), start with port fallback, stop. The cache protocol runs
 * in it as a service, and the invalidation protocol (invalidation.ts) as another beside it.
 *
 * Guarantees:
 * - Starting completes or fails with `PeerNetworkStartError` within `startTimeoutMs`; on failure nothing is left
 *   running (a creation that finishes after the deadline is stopped) and the identity slot is free.
 * - Only nodes holding the shared secret connect: with `p2p.membership` 'handshake' (the default) a key derived
 *   from it is noise's prologue, so a node without it fails the handshake at its second message (fleet-keys.ts);
 *   with 'pnet' the connection runs inside libp2p's private network under a key derived from it
 *   (private-network.ts). A peer the gater is told is banned is neither dialled nor accepted.
 * - Outsiders flooding the port cannot lock members out: one host holds at most MAX_PENDING_INBOUND_PER_HOST of
 *   the MAX_PENDING_INBOUND pending inbound slots (inbound-gate.ts), each for at most twice dialTimeoutMs, and the
 *   bootstrap peers' hosts are let past the global limit, with MAX_PENDING_INBOUND_PER_KNOWN_HOST each.
 * - If the listen port is taken (a sibling process or worker holds it), the host listens on an ephemeral port and
 *   dials the holder on loopback as a peer; if that fails (not a member of the network), it runs alone and says why.
 * - One connection per pair of members: when two members dial each other at once, the surplus connection is
 *   closed by both ends alike (one-connection.ts), once the cache protocol's streams moved off it (a session
 *   never drops for it), within maxOwnerWaitMs.
 * - A bootstrap dial that fails at start (the peer does not listen yet, or the handshake timed out on a busy
 *   machine) is tried again START_RETRIES times within about 4 s (growing jittered delays, timeouts up to twice
 *   dialTimeoutMs), unless the peer is connected by then; an address this node listens on is not dialled.
 * - A bootstrap peer named with `/p2p/<id>` that is not connected is dialled again every REJOIN_INTERVAL_MS for as
 *   long as the host runs (one dial per peer at a time), so a member cut off for longer than libp2p's own
 *   reconnect attempts (5, over about 30 s) rejoins once the network heals.
 * - `stop()` is idempotent; once it resolves the port is released, the identity slot is free, the rejoin timer is
 *   cleared and no dial this host began is pending.
 *
 * Size: assembling libp2p, starting it with the port fallback and keeping the fleet joined (local holder,
 * bootstrap peers, rejoining them) share the node and its dials; they read as one unit.
 */

/** The host could not be created; `cause` holds the underlying error. Nothing was left running. */
export class PeerNetworkStartError extends CacheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_P2P_START', `Starting the P2P host failed: ${message}`, options);
  }
}

export interface HostInit {
  /** Resolved P2P options (listen port and host, shared secret, bootstrap peers, timeouts). */
  readonly p2p: ResolvedP2POptions;
  /** The persistent identity lives in `<cacheDir>/p2p/`. */
  readonly cacheDir: string;
  readonly logger: Logger;
  readonly limits: Readonly<PeerNetworkLimits>;
  /** The P2P layer's clock, in ms since the epoch. */
  readonly now: () => number;
  /** Whether a peer is refused (asked by the connection gater on every dial and accepted connection). */
  readonly banned: (peerId: string) => boolean;
  /** The cache protocol's service factory (cache-protocol.ts). */
  readonly protocol: (components: CacheProtocolComponents) => CacheProtocol;
  /** The invalidation service's factory (invalidation.ts), registered beside the cache protocol. */
  readonly invalidation: (components: InvalidationComponents) => InvalidationService;
}

type HostServices = { identify: Identify; ping: Ping; cache: CacheProtocol; invalidation: InvalidationService };
type PeerDiscoveryFactory = NonNullable<Parameters<typeof createLibp2p>[0]>['peerDiscovery'] extends Array<infer F> | undefined ? F : never;

export class Libp2pHost {
  readonly #node: Libp2p<HostServices>;
  readonly #identity: PeerIdentity;
  readonly #init: HostInit;
  readonly #portFallback: boolean;
  readonly #background = new Set<Promise<unknown>>();
  /** Bootstrap peers named with an id (an entry naming this node is left out), for rejoining. */
  readonly #rejoin: Array<{ raw: string; ma: Multiaddr; id: string }> = [];
  readonly #rejoining = new Set<string>();
  #rejoinTimer: NodeJS.Timeout | undefined;
  /** Start-up retries of bootstrap dials that failed (#dialAtStart), cleared at stop. */
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  #stopping: Promise<void> | undefined;

  private constructor(node: Libp2p<HostServices>, identity: PeerIdentity, init: HostInit, portFallback: boolean) {
    this.#node = node;
    this.#identity = identity;
    this.#init = init;
    this.#portFallback = portFallback;
  }

  /**
   * Creates and starts the host (persistent identity, private network, listen port with fallback) with the cache
   * protocol in it, and joins the fleet (local port holder, bootstrap peers). Completes or fails within
   * `limits.startTimeoutMs`; on failure nothing is left running.
   */
  static async start(init: HostInit): Promise<Libp2pHost> {
    const secret = init.p2p.sharedSecret;
    if (secret === undefined || secret.length < 16) {
      throw new PeerNetworkStartError('no shared secret of at least 16 characters (p2p.sharedSecret): an open network would let anyone in');
    }
    const { startTimeoutMs } = init.limits;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), startTimeoutMs);
    let host: Libp2pHost | undefined;
    const creation = Libp2pHost.#create(init, secret, deadline.signal).then((created) => {
      host = created;
      return created;
    });
    try {
      return await Promise.race([
        creation,
        new Promise<never>((_, reject) => {
          deadline.signal.addEventListener('abort', () => reject(new PeerNetworkStartError(`it did not complete within ${startTimeoutMs} ms`)), { once: true });
        }),
      ]);
    } catch (err) {
      // The creation may still finish after the deadline: stop whatever it made.
      creation.then((late) => late.stop(), () => undefined).catch(() => undefined);
      if (host !== undefined) await host.stop().catch(() => undefined);
      throw err instanceof PeerNetworkStartError || err instanceof CacheConfigError ? err : new PeerNetworkStartError(errorMessage(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  static async #create(init: HostInit, secret: string, deadline: AbortSignal): Promise<Libp2pHost> {
    const { p2p, logger: log } = init;
    const mdns = p2p.mdns ? await loadMdns(log) : undefined;
    const identity = await acquirePeerIdentity({ cacheDir: init.cacheDir, logger: log, now: init.now });
    let node: Libp2p<HostServices> | undefined;
    let host: Libp2pHost | undefined;
    try {
      let portFallback = false;
      const build = async (port: number): Promise<Libp2p<HostServices>> => {
        const created = await createNode(init, identity, secret, tcpListenAddr(p2p.listenHost, port), mdns);
        try {
          await created.start();
          if (!p2p.keepAlive) releaseEventLoop(created);
          // A surplus connection is left to the asks in flight on it for as long as an ask may wait on an owner.
          keepOneConnectionPerPeer(created, {
            closeTimeoutMs: p2p.dialTimeoutMs, drainTimeoutMs: init.limits.maxOwnerWaitMs, logger: log,
            moveOff: (connection) => created.services.cache.moveOff(connection),
          });
          return created;
        } catch (err) {
          await Promise.resolve(created.stop()).catch(() => undefined);
          throw err;
        }
      };
      try {
        node = await build(p2p.listenPort);
      } catch (err) {
        if (p2p.listenPort === 0 || !isAddressInUse(err)) throw listenFailure(p2p.listenHost, p2p.listenPort, err);
        log.debug('port %d is taken; listening on an ephemeral port and dialling the holder', p2p.listenPort);
        portFallback = true;
        node = await build(0);
      }
      if (deadline.aborted) throw new PeerNetworkStartError('start deadline passed');
      const created = new Libp2pHost(node, identity, init, portFallback);
      host = created;
      log.debug('listening on %s as %s', created.listenAddrs().join(', '), created.peerId);
      if (portFallback) await created.#joinLocalHolder(deadline);
      created.#dialBootstrapPeers();
      return created;
    } catch (err) {
      if (host !== undefined) await host.stop().catch(() => undefined);
      else {
        if (node !== undefined) await Promise.resolve(node.stop()).catch(() => undefined);
        identity.release();
      }
      throw err;
    }
  }

  /** The cache protocol service running in this host. */
  get protocol(): CacheProtocol {
    return this.#node.services.cache;
  }

  /** The invalidation service running beside it. */
  get invalidation(): InvalidationService {
    return this.#node.services.invalidation;
  }

  get peerId(): string {
    return this.#node.peerId.toString();
  }

  /** Whether the configured port was taken and an ephemeral one is used. */
  get portFallback(): boolean {
    return this.#portFallback;
  }

  /** How the shared secret admits members on this host (`p2p.membership`). */
  get membership(): 'handshake' | 'pnet' {
    return this.#init.p2p.membership;
  }

  /** Listen multiaddrs, with /p2p/<id>. */
  listenAddrs(): string[] {
    return this.#node.getMultiaddrs().map((ma) => ma.toString());
  }

  /** The TCP port actually bound (0 when not listening). */
  boundPort(): number {
    for (const ma of this.#node.getMultiaddrs()) {
      const port = ma.getComponents().find((c) => c.code === CODE_TCP)?.value;
      if (port !== undefined) return Number(port);
    }
    return 0;
  }

  /** Peers with an open connection. */
  connectedPeers(): number {
    return this.#node.getPeers().length;
  }

  /** Stops libp2p (and the protocol in it), then releases the identity. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#doStop();
    return this.#stopping;
  }

  async #doStop(): Promise<void> {
    clearInterval(this.#rejoinTimer);
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    try {
      await this.#node.stop();
    } catch (err) {
      this.#init.logger.warn(`stopping libp2p failed: ${errorMessage(err)}`);
    }
    await Promise.allSettled([...this.#background]);
    this.#identity.release();
  }

  /** After a port fallback: dial the sibling that holds the configured port. */
  async #joinLocalHolder(deadline: AbortSignal): Promise<void> {
    const { p2p, logger: log } = this.#init;
    const addr = localHolderAddr(p2p.listenHost, p2p.listenPort);
    try {
      const connection = await this.#node.dial(multiaddr(addr), { signal: AbortSignal.any([AbortSignal.timeout(p2p.dialTimeoutMs), deadline]) });
      await this.#keepAlive(connection.remotePeer);
      log.debug('port %d is held by peer %s; joined it', p2p.listenPort, connection.remotePeer.toString());
    } catch (err) {
      log.warn(`port ${p2p.listenPort} is taken by a process that is not a member of this network (dialling ${addr} failed: ${dialProblem(err)}); ` +
        `running on port ${this.boundPort()} and reaching the fleet only through bootstrap peers. Check that it uses the same p2p.sharedSecret, or free the port.`);
    }
  }

  #dialBootstrapPeers(): void {
    const { p2p, logger: log } = this.#init;
    for (const raw of p2p.bootstrapPeers) {
      let ma: Multiaddr;
      try {
        ma = multiaddr(raw);
      } catch (err) {
        log.warn(`ignoring bootstrap peer ${JSON.stringify(raw)}: not a multiaddr (${errorMessage(err)})`);
        continue;
      }
      const id = ma.getComponents().findLast((c) => c.code === CODE_P2P)?.value;
      // A fleet-wide list usually names this node too.
      if (id === this.peerId) continue;
      if (id !== undefined) this.#rejoin.push({ raw, ma, id });
      // Named by address only, it may be this node's own address: never dialled.
      if (id === undefined && this.#isOwnAddress(ma)) continue;
      this.#dialAtStart(raw, ma, id, 0);
    }
    if (this.#rejoin.length > 0) {
      this.#rejoinTimer = setInterval(() => this.#rejoinBootstrapPeers(), REJOIN_INTERVAL_MS);
      this.#rejoinTimer.unref();
    }
  }

  /**
   * Dials a bootstrap peer as the host starts. A dial that fails (the peer does not listen yet: members started
   * together; or its handshake outlasted the timeout on a busy machine, where two members dialling each other at
   * once may both time out) is tried again soon, START_RETRIES times, after a growing, jittered delay (so two
   * members that failed together do not retry together) with a longer timeout (up to the accepting end's own
   * bound, twice dialTimeoutMs); a peer already connected (its id, or, for an address without one, a connected
   * peer listening there) is not dialled again. Later the rejoin timer takes over for peers named with an id.
   */
  #dialAtStart(raw: string, ma: Multiaddr, id: string | undefined, attempt: number): void {
    const { p2p, logger: log } = this.#init;
    const timeoutMs = Math.min(p2p.dialTimeoutMs * (attempt + 1), 2 * p2p.dialTimeoutMs);
    this.#track(this.#node.dial(ma, { signal: AbortSignal.timeout(timeoutMs) }).then(
      (connection) => this.#keepAlive(connection.remotePeer),
      (err: unknown) => {
        const message = errorMessage(err);
        if (attempt === 0) log.warn(`could not reach bootstrap peer ${raw}: ${dialProblem(err)}${START_RETRIES > 0 ? ' (trying again)' : ''}`);
        else log.debug('bootstrap peer %s still unreachable (attempt %d): %s', raw, attempt + 1, dialProblem(err));
        if (attempt >= START_RETRIES || this.#stopping !== undefined || /\bself\b/i.test(message)) return;
        const delayMs = START_RETRY_MS * 2 ** attempt * (0.5 + Math.random());
        const timer = setTimeout(() => {
          this.#retryTimers.delete(timer);
          this.#track(this.#reached(ma, id).then((reached) => {
            if (!reached && this.#stopping === undefined) this.#dialAtStart(raw, ma, id, attempt + 1);
          }));
        }, delayMs);
        timer.unref();
        this.#retryTimers.add(timer);
      },
    ));
  }

  /** Whether the peer at `ma` (with id `id`, if known) is connected already. */
  async #reached(ma: Multiaddr, id: string | undefined): Promise<boolean> {
    const peers = this.#node.getPeers();
    if (id !== undefined) return peers.some((peer) => peer.toString() === id);
    const wanted = ma.toString();
    for (const peer of peers) {
      const known = await this.#node.peerStore.get(peer).catch(() => undefined);
      if (known?.addresses.some((a) => a.multiaddr.toString() === wanted) === true) return true;
    }
    return false;
  }

  /** Whether `ma` (an address without /p2p/) is one this node listens on. */
  #isOwnAddress(ma: Multiaddr): boolean {
    const wanted = ma.toString();
    return this.#node.getMultiaddrs().some((own) => own.toString().split('/p2p/')[0] === wanted);
  }

  /**
   * Dials the bootstrap peers that are not connected. libp2p redials a keep-alive peer only 5 times after it
   * drops, then forgets it: without this, a partition longer than that splits the fleet until a restart.
   */
  #rejoinBootstrapPeers(): void {
    const { p2p, logger: log } = this.#init;
    if (this.#stopping !== undefined) return;
    const connected = new Set(this.#node.getPeers().map((peer) => peer.toString()));
    for (const { raw, ma, id } of this.#rejoin) {
      if (connected.has(id) || this.#rejoining.has(id)) continue;
      this.#rejoining.add(id);
      this.#track(this.#node.dial(ma, { signal: AbortSignal.timeout(p2p.dialTimeoutMs) }).then(
        async (connection) => {
          log.debug('rejoined bootstrap peer %s', raw);
          await this.#keepAlive(connection.remotePeer);
        },
        (err: unknown) => log.debug('bootstrap peer %s still unreachable: %s', raw, dialProblem(err)),
      ).finally(() => this.#rejoining.delete(id)));
    }
  }

  async #keepAlive(peer: PeerId): Promise<void> {
    try {
      await this.#node.peerStore.merge(peer, { tags: { [KEEP_ALIVE]: { value: 1 } } });
    } catch (err) {
      this.#init.logger.debug('could not tag %s keep-alive: %s', peer.toString(), errorMessage(err));
    }
  }

  #track(promise: Promise<unknown>): void {
    const tracked = promise.catch(() => undefined).finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }
}

/** How often bootstrap peers that are not connected are dialled again, in ms. */
const REJOIN_INTERVAL_MS = 10_000;
/** Times a bootstrap dial that failed at start is tried again, and the first delay (doubling, jittered ±50 %), in ms. */
const START_RETRIES = 4;
const START_RETRY_MS = 250;

/** Inbound connections from one host that may be pending (not through the key exchange yet) at a time. */
export const MAX_PENDING_INBOUND_PER_HOST = 8;
/** Inbound connections that may be pending at a time, from all hosts (libp2p's maxIncomingPendingConnections). */
export const MAX_PENDING_INBOUND = 64;
/** The same for the host of a bootstrap peer, which libp2p's allow list lets past MAX_PENDING_INBOUND. */
const MAX_PENDING_INBOUND_PER_KNOWN_HOST = 32;

async function createNode(init: HostInit, identity: PeerIdentity, secret: string, listen: string, mdns: PeerDiscoveryFactory | undefined): Promise<Libp2p<HostServices>> {
  const { p2p, limits, banned } = init;
  const withPeerId = p2p.bootstrapPeers.filter((addr) => addr.includes('/p2p/'));
  // Known peers keep their room during a flood: libp2p's allow list lets their hosts past the global pending
  // limit, and the gate gives them a per-host limit of their own (still a limit: an outsider may share the host).
  const known = bootstrapHosts(p2p.bootstrapPeers);
  const gate = new InboundGate(MAX_PENDING_INBOUND_PER_HOST, known, MAX_PENDING_INBOUND_PER_KNOWN_HOST);
  const peerDiscovery: PeerDiscoveryFactory[] = [];
  if (withPeerId.length > 0) peerDiscovery.push(bootstrap({ list: withPeerId }));
  if (mdns !== undefined) peerDiscovery.push(mdns);
  const noiseCrypto = fleetNoiseCrypto();
  // pnet's code (and its ciphers) is loaded only by a node that runs it: the default membership never does.
  const privateNetwork = init.p2p.membership === 'pnet' ? await import('./private-network.js') : undefined;
  init.logger.debug('membership: %s; noise ChaCha20-Poly1305: %s', privateNetwork !== undefined ? `pnet (cipher: ${privateNetwork.pnetCipher()})` : 'noise handshake prologue',
    noiseCrypto === undefined ? 'noise\'s own' : 'libsodium below 16 KiB');
  const noiseInit = {
    ...(noiseCrypto === undefined ? {} : { crypto: noiseCrypto }),
    ...(privateNetwork !== undefined ? {} : { prologueBytes: handshakePrologueOf(secret) }),
  };
  return createLibp2p<HostServices>({
    start: false,
    privateKey: identity.privateKey,
    addresses: { listen: [listen] },
    transports: [tcp()],
    // noise, each connection reading its messages without an Error per TCP chunk (noise-decoder.ts), short
    // messages enciphered by libsodium when it loads (noise-crypto.ts).
    // (p2p.membership 'handshake': the shared secret's prologue bound into each handshake, fleet-keys.ts)
    connectionEncrypters: [fleetNoise({ logger: init.logger, init: noiseInit })],
    // Without keepAlive the muxer's own 30 s pings are off (its timer would hold the process open); libp2p's
    // connection monitor still pings every peer.
    streamMuxers: [yamux({ enableKeepAlive: init.p2p.keepAlive })],
    // p2p.membership 'pnet': pnet's protocol with libsodium's XSalsa20, or pnet's wasm cipher kept from growing its
    // memory (private-network.ts).
    ...(privateNetwork !== undefined ? { connectionProtector: privateNetwork.fleetPrivateNetwork(swarmKeyOf(secret)) } : {}),
    connectionGater: {
      denyDialPeer: (peer) => banned(peer.toString()),
      denyInboundConnection: (maConn) => gate.deny(maConn),
      denyInboundEncryptedConnection: (peer, maConn) => {
        gate.settled(maConn);
        return banned(peer.toString());
      },
      denyOutboundEncryptedConnection: (peer) => banned(peer.toString()),
    },
    connectionManager: {
      dialTimeout: p2p.dialTimeoutMs,
      maxConnections: Math.max(limits.maxPeers * 2, 64),
      // Siblings on one host all connect from 127.0.0.1: the default (5 per second per host) would refuse them.
      inboundConnectionThreshold: 100,
      // Outsiders cannot lock members out (hardening item 2): one host holds at most
      // MAX_PENDING_INBOUND_PER_HOST of these slots (InboundGate), each for at most inboundUpgradeTimeout, which
      // is twice the time a member's own dial may take; known peers' hosts are let past.
      maxIncomingPendingConnections: MAX_PENDING_INBOUND,
      inboundUpgradeTimeout: 2 * p2p.dialTimeoutMs,
      allow: known.map((host) => (net.isIPv6(host) ? `/ip6/${host}` : `/ip4/${host}`)),
    },
    peerDiscovery,
    services: { identify: identify(), ping: ping(), cache: init.protocol, invalidation: init.invalidation },
  });
}

/** The mDNS discovery factory of the optional `@libp2p/mdns`, or undefined (logged) when it is not installed. */
async function loadMdns(log: Logger): Promise<PeerDiscoveryFactory | undefined> {
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

/**
 * A failed dial's reason for a log line. A noise handshake that fails to authenticate (libp2p's
 * EncryptionFailedError) is, between fleet nodes, nearly always a peer with another shared secret or membership
 * mode (their prologues differ): the line says so, without naming either secret.
 */
function dialProblem(err: unknown): string {
  const message = errorMessage(err);
  return (err as { name?: unknown } | null)?.name === 'EncryptionFailedError'
    ? `the noise handshake failed (${message}): the peer does not hold this node's p2p.sharedSecret, or runs another p2p.membership`
    : message;
}

/** The IP addresses of the bootstrap peers that name one (DNS names and unreadable entries are skipped). */
function bootstrapHosts(peers: readonly string[]): string[] {
  const hosts = new Set<string>();
  for (const raw of peers) {
    try {
      const host = hostOf(multiaddr(raw));
      if (host !== undefined) hosts.add(host);
    } catch {
      // reported when dialled
    }
  }
  return [...hosts];
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

/**
 * A listen address libp2p could not bind, as a configuration error that names the address, the port and the
 * options to change (libp2p's own text speaks of its transport manager). Other errors pass through.
 */
function listenFailure(host: string, port: number, err: unknown): unknown {
  const text = err instanceof Error ? err.message : String(err);
  const code = /\b(EADDRNOTAVAIL|EACCES|EADDRINUSE|EINVAL|EPERM)\b/.exec(text)?.[1];
  if (code === undefined && !/listen/i.test(text)) return err;
  const hint = code === 'EADDRNOTAVAIL' ? 'no network interface of this machine has that address'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied (ports below 1024 need privileges)'
      : code === 'EADDRINUSE' ? 'the port is in use' : code ?? 'the address was refused';
  const option = code === 'EADDRNOTAVAIL' || code === 'EINVAL' ? 'p2p.listenHost' : 'p2p.listenPort';
  return new CacheConfigError(option,
    `cannot listen on ${host}:${port} for P2P: ${hint}. Set p2p.listenHost (--listen-host) to an address of this machine ` +
    'such as 127.0.0.1 or 0.0.0.0, or p2p.listenPort (--listen-port, CACHE_LISTEN_PORT) to a free port', { cause: err });
}

/**
 * Lets the process exit while the host runs (p2p.keepAlive false): its TCP listeners, its peer connections'
 * sockets and libp2p's connection-monitor timer stop holding the event loop open, so a script ends when its own
 * work does; a server (the proxy, `serve`) holds the loop itself. libp2p exposes none of these as options, so
 * this reaches into its components by name; a spec (`test/p2p-keep-alive.spec.ts`) notices if that stops working.
 */
function releaseEventLoop(node: Libp2p<HostServices>): void {
  interface Internals {
    components?: {
      transportManager?: { getListeners(): Array<{ server?: net.Server }> };
      connectionMonitor?: { heartbeatInterval?: NodeJS.Timeout };
    };
  }
  const components = (node as unknown as Internals).components;
  for (const listener of components?.transportManager?.getListeners() ?? []) listener.server?.unref();
  components?.connectionMonitor?.heartbeatInterval?.unref();
  const unrefSocket = (connection: unknown): void => {
    (connection as { maConn?: { socket?: net.Socket } }).maConn?.socket?.unref();
  };
  for (const connection of node.getConnections()) unrefSocket(connection);
  node.addEventListener('connection:open', (event) => unrefSocket(event.detail));
}
