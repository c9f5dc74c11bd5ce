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
 * to a peer already in session, or once sessions plus dials in progress reach `maxPeers`. A peer cannot make this
 * node flood an address: at most one dial per address (host and port) is in progress at a time, whatever peer id
 * it is dialled as; an address whose dial failed is not dialled again for a while (FIRST_ADDRESS_BACKOFF_MS,
 * doubling with each further failure up to ADDRESS_BACKOFF_MS, reset by a success); and at most
 * `maxPeers` dials start per minute in all. So 20 `scopes` frames listing 64 fake peers at one address cost one
 * connection to it over their 2 s, and a handful a minute however long they go on (1,180 in 7 s before). A peer whose
 * dial failed is dialled again once its addresses' backoff has passed, at most DIAL_RETRIES times, unless it is in
 * session by then (a busy machine times dials out, and nothing else would make this node try that peer again: the
 * mesh stayed incomplete); the retries count in the dial budget. The peers sent out are those with known listen addresses that
 * are not banned, at most WIRE_LIMITS.peers. Announcements caused by peers joining or leaving are batched: at most
 * one per `delayMs`, and none once stopped.
 */

/** How long an address whose dial failed once is not dialled again, in ms (an honest peer may just be slow). */
const FIRST_ADDRESS_BACKOFF_MS = 5_000;
/** The longest wait before an address whose dials keep failing is dialled again, in ms. */
export const ADDRESS_BACKOFF_MS = 60_000;
/** The window of the total dial budget (`maxPeers` dials per window), in ms. */
export const DIAL_BUDGET_WINDOW_MS = 60_000;
/** How many times a peer whose dial failed is dialled again (each after its addresses' backoff). */
const DIAL_RETRIES = 3;

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
  /** The P2P layer's clock, in ms. */
  readonly now: () => number;
  /** Sends every peer the current peer list (with fresh scope claims). */
  readonly announce: () => void;
}

export function withoutPeerId(ma: Multiaddr): Multiaddr {
  return ma.getComponents().some((c) => c.code === CODE_P2P) ? ma.decapsulateCode(CODE_P2P) : ma;
}

export class PeerExchange {
  readonly #init: PeerExchangeInit;
  readonly #dialing = new Set<string>();
  /** Addresses (without /p2p/) with a dial in progress. */
  readonly #addressesDialing = new Set<string>();
  /** Addresses whose last dial failed: when they may be dialled again, and how many dials failed in a row. */
  readonly #addressBackoff = new Map<string, { until: number; failures: number }>();
  /** Start times of the dials within the budget window. */
  #dialStarts: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Peers whose dial failed: failed dials in a row, and the timer of the next one. */
  readonly #retries = new Map<string, { failures: number; timer: NodeJS.Timeout | undefined }>();

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
    const now = this.#init.now();
    const usable = [...new Set(addrs)].filter((addr) => !this.#addressesDialing.has(addr) && !this.#backingOff(addr, now));
    let targets: Multiaddr[];
    try {
      peerIdFromString(id);
      targets = usable.map((addr) => multiaddr(`${addr}/p2p/${id}`)).filter((ma) => ma.getComponents().some((c) => c.code === CODE_TCP));
    } catch (err) {
      log.debug('ignoring peer %s from %s: %s', id, how, errorMessage(err));
      return;
    }
    if (targets.length === 0) return;
    this.#dialStarts = this.#dialStarts.filter((at) => now - at < DIAL_BUDGET_WINDOW_MS);
    if (this.#dialStarts.length >= this.#init.maxPeers) {
      log.debug('not dialling %s (%s): %d dials within the last minute', id, how, this.#dialStarts.length);
      return;
    }
    this.#dialStarts.push(now);
    const dialled = targets.map((ma) => withoutPeerId(ma).toString());
    this.#dialing.add(id);
    for (const addr of dialled) this.#addressesDialing.add(addr);
    this.#init.track(this.#init.dial(targets, AbortSignal.timeout(this.#init.dialTimeoutMs))
      .then(
        () => {
          for (const addr of dialled) this.#addressBackoff.delete(addr);
          this.#retries.delete(id);
          log.debug('connected to %s (%s)', id, how);
        },
        (err: unknown) => {
          const at = this.#init.now();
          // Entries exist only for dialled addresses (the dial budget bounds them); long-expired ones go now and then.
          if (this.#addressBackoff.size > 4 * WIRE_LIMITS.peers) {
            for (const [addr, { until }] of this.#addressBackoff) if (until + ADDRESS_BACKOFF_MS <= at) this.#addressBackoff.delete(addr);
          }
          for (const addr of dialled) {
            const failures = (this.#addressBackoff.get(addr)?.failures ?? 0) + 1;
            this.#addressBackoff.set(addr, { until: at + Math.min(ADDRESS_BACKOFF_MS, FIRST_ADDRESS_BACKOFF_MS * 2 ** (failures - 1)), failures });
          }
          log.debug('could not dial %s (%s): %s', id, how, errorMessage(err));
          this.#retryLater(id, addrs, how, Math.max(...dialled.map((addr) => this.#addressBackoff.get(addr)!.until)) - at);
        },
      )
      .finally(() => {
        this.#dialing.delete(id);
        for (const addr of dialled) this.#addressesDialing.delete(addr);
      }));
  }

  /** Dials a peer whose dial failed again after `waitMs`, unless it is in session by then (DIAL_RETRIES at most). */
  #retryLater(id: string, addrs: readonly string[], how: string, waitMs: number): void {
    const retry = this.#retries.get(id) ?? { failures: 0, timer: undefined };
    retry.failures++;
    if (this.#init.stopped() || retry.timer !== undefined) return;
    if (retry.failures > DIAL_RETRIES) {
      // Given up: the entry goes (a peer heard of again later starts afresh, within the dial budget).
      this.#retries.delete(id);
      return;
    }
    // Entries exist only for peers with a retry pending (the dial budget bounds them); a full table retries nothing new.
    if (!this.#retries.has(id) && this.#retries.size >= 4 * WIRE_LIMITS.peers) return;
    retry.timer = setTimeout(() => {
      retry.timer = undefined;
      if (this.#init.sessions.has(id)) this.#retries.delete(id); // it connected meanwhile (perhaps to us)
      else this.dial(id, addrs, how.endsWith(', again') ? how : `${how}, again`);
    }, Math.max(0, waitMs) + 1);
    retry.timer.unref();
    this.#retries.set(id, retry);
  }

  /** Whether `addr` failed recently (its failure count is kept past the wait, so repeated failures wait longer). */
  #backingOff(addr: string, now: number): boolean {
    const backoff = this.#addressBackoff.get(addr);
    return backoff !== undefined && now < backoff.until;
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
    for (const retry of this.#retries.values()) if (retry.timer !== undefined) clearTimeout(retry.timer);
    this.#retries.clear();
  }
}
