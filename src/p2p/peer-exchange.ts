import { peerIdFromString } from '@libp2p/peer-id';
import { CODE_P2P, CODE_TCP, multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { Logger } from '../log.js';
import { errorMessage } from './limits.js';
import type { PeerSession, PeerSessions } from './sessions.js';
import { WIRE_LIMITS, type PeerRecord } from './wire.js';

/**
 * Peer exchange: every `hello` and `scopes` frame carries the peers this node knows, and this node dials the
 * peers it hears of, so a fleet whose members each know one other member becomes fully connected.
 *
 * Guarantee: at most one dial per peer is in progress at a time, and none to this node itself, to a banned peer,
 * to a peer already in session, or once sessions plus dials in progress reach `maxPeers`. The peers sent out are
 * those with known listen addresses that are not banned, at most WIRE_LIMITS.peers. Announcements caused by peers
 * joining or leaving are batched: at most one per `delayMs`, and none once stopped.
 */

export interface PeerExchangeInit {
  readonly selfId: string;
  readonly sessions: PeerSessions;
  readonly isBanned: (peerId: string) => boolean;
  readonly maxPeers: number;
  readonly delayMs: number;
  readonly dialTimeoutMs: number;
  readonly log: Logger;
  /** Dials one of `targets` (the same peer at several addresses). */
  readonly dial: (targets: Multiaddr[], signal: AbortSignal) => Promise<unknown>;
  /** This node's listen multiaddrs. */
  readonly addresses: () => Multiaddr[];
  /** Keeps `promise` until the protocol stops (stop waits for it). */
  readonly track: (promise: Promise<unknown>) => void;
  readonly stopped: () => boolean;
  /** Sends every peer the current peer list (with fresh scope claims). */
  readonly announce: () => void;
}

export function withoutPeerId(ma: Multiaddr): Multiaddr {
  return ma.getComponents().some((c) => c.code === CODE_P2P) ? ma.decapsulateCode(CODE_P2P) : ma;
}

export class PeerExchange {
  readonly #init: PeerExchangeInit;
  readonly #dialing = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(init: PeerExchangeInit) {
    this.#init = init;
  }

  /** This node's TCP listen addresses, without /p2p/, as sent in `hello`. */
  ownAddrs(): string[] {
    return this.#init.addresses()
      .map((ma) => withoutPeerId(ma))
      .filter((ma) => ma.getComponents().some((c) => c.code === CODE_TCP))
      .map((ma) => ma.toString())
      .filter((text) => text.length <= WIRE_LIMITS.addrLength)
      .slice(0, WIRE_LIMITS.addrs);
  }

  /** The peers to tell others about. */
  knownPeers(): PeerRecord[] {
    const peers: PeerRecord[] = [];
    for (const session of this.#init.sessions.values()) {
      if (session.addrs.length === 0 || this.#init.isBanned(session.id)) continue;
      peers.push({ id: session.id, addrs: session.addrs });
      if (peers.length >= WIRE_LIMITS.peers) break;
    }
    return peers;
  }

  /** Takes a peer's `hello`: its own addresses and the peers it knows. */
  learn(session: PeerSession, addrs: readonly string[], peers: readonly PeerRecord[]): void {
    const known = session.addrs.length > 0;
    session.addrs = [...addrs];
    if (!known && addrs.length > 0) this.schedule();
    this.exchange(peers);
  }

  /** Dials the peers another node knows and this one does not. */
  exchange(peers: readonly PeerRecord[]): void {
    const { selfId, sessions, isBanned, maxPeers } = this.#init;
    for (const peer of peers) {
      if (peer.id === selfId || sessions.has(peer.id) || this.#dialing.has(peer.id) || isBanned(peer.id)) continue;
      if (sessions.size + this.#dialing.size >= maxPeers) return;
      this.dial(peer.id, peer.addrs, 'peer exchange');
    }
  }

  /** Dials a peer heard of by `how` (discovery, peer exchange) at `addrs` (without /p2p/). */
  dial(id: string, addrs: readonly string[], how: string): void {
    const { selfId, isBanned, log } = this.#init;
    if (this.#init.stopped() || this.#dialing.has(id) || id === selfId || isBanned(id)) return;
    let targets: Multiaddr[];
    try {
      peerIdFromString(id);
      targets = addrs.map((addr) => multiaddr(`${addr}/p2p/${id}`)).filter((ma) => ma.getComponents().some((c) => c.code === CODE_TCP));
    } catch (err) {
      log.debug('ignoring peer %s from %s: %s', id, how, errorMessage(err));
      return;
    }
    if (targets.length === 0) return;
    this.#dialing.add(id);
    this.#init.track(this.#init.dial(targets, AbortSignal.timeout(this.#init.dialTimeoutMs))
      .then(
        () => log.debug('connected to %s (%s)', id, how),
        (err: unknown) => log.debug('could not dial %s (%s): %s', id, how, errorMessage(err)),
      )
      .finally(() => this.#dialing.delete(id)));
  }

  /** Tells every peer the current peer list, batched over a short delay. */
  schedule(): void {
    if (this.#init.stopped() || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#init.announce();
    }, this.#init.delayMs);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
