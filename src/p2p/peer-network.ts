import '../polyfills.js';
import type { Fleet, FleetAnswer, FleetFetchOptions, FleetHost, FleetStats } from '../cache/ports.js';
import { createLogger, type Logger } from '../log.js';
import type { ResolvedP2POptions } from '../options.js';
import { cacheProtocol, type CacheProtocol } from './cache-protocol.js';
import { Libp2pHost } from './host.js';
import { invalidationService, type FleetLink, type InvalidationService } from './invalidation.js';
import { resolveLimits, type PeerNetworkLimits } from './limits.js';
import { ProtocolCounters } from './stats.js';
import { StrikeBook } from './strikes.js';

/**
 * The fleet as the cache sees it (`Fleet` of src/cache/ports.ts): the libp2p host (host.ts) with the cache
 * protocol running in it as a service (cache-protocol.ts). This file only composes them; each module states its
 * own guarantee.
 *
 * Guarantees of the whole: `start` completes or fails with `PeerNetworkStartError` within `startTimeoutMs`
 * (nothing left running on failure); `fetch` never throws for peer failures; `stop()` is idempotent, and once it
 * resolves the port is released, the identity slot is free and no timer or socket of this node is left.
 *
 * @example
 * ```ts
 * const network = await PeerNetwork.start({ p2p: options.p2p, cacheDir: options.cacheDir, host });
 * const answer = await network.fetch(key, scopeIdOf(token));
 * if (answer.kind === 'entry') store(answer.entry); else goUpstream(); // 'self' or 'unavailable'
 * await network.stop();
 * ```
 */

export { PeerNetworkStartError } from './host.js';
export { DEFAULT_PEER_NETWORK_LIMITS, type PeerNetworkLimits } from './limits.js';

/** What the network needs from the cache that hosts it (declared by the cache: see src/cache/ports.ts). */
export type PeerBackend = FleetHost;
/** What the fleet answered for a key. */
export type PeerFetchResult = FleetAnswer;
/** Counters and gauges of the P2P host. */
export type PeerNetworkStats = FleetStats;

export interface PeerNetworkStartOptions {
  /** Resolved P2P options (listen port and host, shared secret, bootstrap peers, timeouts, limits). */
  p2p: ResolvedP2POptions;
  /** Cache directory: the persistent identity lives in `<cacheDir>/p2p/`. */
  cacheDir: string;
  /** The cache that serves as owner and lends the scope keys. */
  host: FleetHost;
  /** Logger of this component. Default: createLogger('p2p'). */
  logger?: Logger;
  /** The one clock of the P2P layer, in ms since the epoch (entry checks, strikes, bans, deadlines). Default: Date.now. */
  now?: () => number;
  /** Protocol limits (see PeerNetworkLimits). */
  limits?: Partial<PeerNetworkLimits>;
}

export class PeerNetwork implements Fleet {
  readonly #host: Libp2pHost;
  readonly #protocol: CacheProtocol;
  readonly #invalidation: InvalidationService;
  readonly #counters: ProtocolCounters;
  #stopping: Promise<void> | undefined;

  private constructor(host: Libp2pHost, counters: ProtocolCounters) {
    this.#host = host;
    this.#protocol = host.protocol;
    this.#invalidation = host.invalidation;
    this.#counters = counters;
  }

  /**
   * Creates the host (persistent identity, private network, listen port with fallback), joins the fleet
   * (local port holder, bootstrap peers) and starts serving the protocol. Completes or fails within
   * `limits.startTimeoutMs`; on failure nothing is left running.
   */
  static async start(options: PeerNetworkStartOptions): Promise<PeerNetwork> {
    const logger = options.logger ?? createLogger('p2p');
    const limits = resolveLimits(options.limits);
    const now = options.now ?? Date.now;
    // Both outlive a failed first listen attempt (port fallback builds the service again).
    const strikes = new StrikeBook(limits, now);
    const counters = new ProtocolCounters();
    // The invalidation service asks the cache protocol of the same libp2p node who proved which scope (a port
    // fallback builds both again: the latest one is the one running).
    let link: FleetLink | undefined;
    const makeProtocol = cacheProtocol({ p2p: options.p2p, limits, host: options.host, logger, now, strikes, counters });
    const host = await Libp2pHost.start({
      p2p: options.p2p, cacheDir: options.cacheDir, logger, limits, now,
      banned: (peerId) => strikes.isBanned(peerId),
      protocol: (components) => {
        const made = makeProtocol(components);
        // Built once, with the protocol: the invalidation service asks for it on every notice.
        link = {
          peers: () => made.protocolPeers(),
          standing: (peerId, scopeId) => made.scopeStanding(peerId, scopeId),
          reject: (peerId, kind, detail) => made.rejectFrom(peerId, kind, detail),
        };
        return made;
      },
      invalidation: invalidationService({
        host: options.host, logger, now, dialTimeoutMs: options.p2p.dialTimeoutMs, counters,
        isBanned: (peerId) => strikes.isBanned(peerId),
        link: () => link,
      }),
    });
    return new PeerNetwork(host, counters);
  }

  /** This node's peer id. */
  get peerId(): string {
    return this.#host.peerId;
  }

  /**
   * Ask the key's owner: 'self' (go upstream), 'entry' (verified) or 'unavailable'. Never throws for peer failures.
   * A key this node owns (or, `asOwner`, serves as owner) is first asked of its previous holder while ownership
   * moved recently (asking.ts, hand-off).
   */
  fetch(key: string, scopeId: string, signal?: AbortSignal, options?: FleetFetchOptions): Promise<PeerFetchResult> {
    return this.#protocol.fetch(key, scopeId, signal, options);
  }

  /** Tells every peer to drop its entries of a resource this node wrote (invalidation.ts). Fire and forget. */
  invalidate(resource: string, scopeId: string): void {
    if (this.#stopping !== undefined) return;
    this.#invalidation.invalidate(resource, scopeId);
  }

  /** Call when heldScopes() changed: tells connected peers. */
  announceScopes(): void {
    this.#protocol.announceScopes();
  }

  /** Calls `listener` synchronously when a session comes up or ends (the start-up wait, fleet-start.ts). */
  onSessionsChanged(listener: () => void): () => void {
    return this.#protocol.onSessionsChanged(listener);
  }

  stats(): PeerNetworkStats {
    const stopped = this.#stopping !== undefined;
    return {
      peerId: this.#host.peerId,
      listenAddrs: stopped ? [] : this.#host.listenAddrs(),
      connectedPeers: stopped ? 0 : this.#host.connectedPeers(),
      peers: this.#protocol.peers(),
      ...this.#counters.snapshot(),
      boundPort: stopped ? 0 : this.#host.boundPort(),
      portFallback: this.#host.portFallback,
      membership: this.#host.membership,
    };
  }

  /** Stops the host: in-flight asks settle 'unavailable', serving stops, the port and identity are released. Idempotent. */
  stop(): Promise<void> {
    // The protocol halts at once (before libp2p winds down), so nothing new starts meanwhile.
    this.#protocol.halt();
    this.#invalidation.halt();
    this.#stopping ??= this.#host.stop();
    return this.#stopping;
  }
}
