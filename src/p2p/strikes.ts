import type { PeerNetworkLimits } from './limits.js';

/**
 * Strikes and bans of misbehaving peers.
 *
 * Guarantee: a peer is banned exactly when it collects `maxStrikes` strikes within `strikeWindowMs` (older strikes
 * are forgotten), and stays banned for `banMs` from then, by the injected clock; a banned peer collects no
 * strikes, and its strikes start from zero once the ban has passed. The book only decides: disconnecting is the
 * caller's job (the connection gater and the protocol ask `isBanned`).
 */
export class StrikeBook {
  readonly #limits: Pick<PeerNetworkLimits, 'maxStrikes' | 'strikeWindowMs' | 'banMs'>;
  readonly #now: () => number;
  readonly #strikes = new Map<string, number[]>();
  readonly #bans = new Map<string, number>();

  constructor(limits: Pick<PeerNetworkLimits, 'maxStrikes' | 'strikeWindowMs' | 'banMs'>, now: () => number) {
    this.#limits = limits;
    this.#now = now;
  }

  isBanned(peerId: string): boolean {
    const until = this.#bans.get(peerId);
    if (until === undefined) return false;
    if (this.#now() < until) return true;
    this.#bans.delete(peerId);
    return false;
  }

  /** Counts one strike. Returns the strikes within the window when this one bans the peer, else undefined. */
  strike(peerId: string): number | undefined {
    if (this.isBanned(peerId)) return undefined;
    const now = this.#now();
    const recent = (this.#strikes.get(peerId) ?? []).filter((at) => now - at < this.#limits.strikeWindowMs);
    recent.push(now);
    this.#strikes.set(peerId, recent);
    if (recent.length < this.#limits.maxStrikes) return undefined;
    this.#strikes.delete(peerId);
    this.#bans.set(peerId, now + this.#limits.banMs);
    return recent.length;
  }
}
