import type { MultiaddrConnection } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';

/**
 * Room for members while outsiders flood the P2P port: a per-host limit on inbound connections that have not yet
 * proved they hold the fleet's key.
 *
 * Guarantee: at most `perHost` inbound connections from one IP address are pending (accepted, not yet through
 * the private-network handshake and noise) at a time; more from that host are refused at once, before any byte
 * is read, so a host without the key holds at most `perHost` of libp2p's `maxIncomingPendingConnections` slots,
 * each for at most libp2p's `inboundUpgradeTimeout`. Hosts on the allow list (the bootstrap peers' addresses),
 * which libp2p lets past its own global pending limit, have a limit of their own here (`perAllowedHost`), so
 * that an outsider sharing such an address is still bounded. A connection stops counting when it is encrypted
 * (it knew the key) or closes, whichever comes first.
 *
 * libp2p offers a global pending limit, a per-host rate (`inboundConnectionThreshold`, per second) and an allow
 * list, but no per-host pending limit: the gater's `denyInboundConnection` hook supplies it.
 */
export class InboundGate {
  readonly #perHost: number;
  readonly #perAllowedHost: number;
  readonly #allowed: ReadonlySet<string>;
  /** Pending connections by remote address (ip and port), with their host. */
  readonly #pending = new Map<string, string>();
  readonly #perHostCount = new Map<string, number>();
  /** Connections refused here (a counter for specs and logs). */
  refused = 0;

  constructor(perHost: number, allowedHosts: Iterable<string> = [], perAllowedHost = perHost) {
    this.#perHost = perHost;
    this.#perAllowedHost = perAllowedHost;
    this.#allowed = new Set(allowedHosts);
  }

  /** Connections pending right now. */
  get pending(): number {
    return this.#pending.size;
  }

  /** For the gater's denyInboundConnection: true refuses the connection. */
  deny(maConn: MultiaddrConnection): boolean {
    const host = hostOf(maConn.remoteAddr);
    if (host === undefined) return false;
    const count = this.#perHostCount.get(host) ?? 0;
    if (count >= (this.#allowed.has(host) ? this.#perAllowedHost : this.#perHost)) {
      this.refused++;
      return true;
    }
    const key = maConn.remoteAddr.toString();
    this.#pending.set(key, host);
    this.#perHostCount.set(host, count + 1);
    maConn.addEventListener('close', () => this.settled(maConn), { once: true });
    return false;
  }

  /** The connection is through the handshake, or gone: it no longer counts. Idempotent. */
  settled(maConn: Pick<MultiaddrConnection, 'remoteAddr'>): void {
    const key = maConn.remoteAddr.toString();
    const host = this.#pending.get(key);
    if (host === undefined) return;
    this.#pending.delete(key);
    const left = (this.#perHostCount.get(host) ?? 1) - 1;
    if (left <= 0) this.#perHostCount.delete(host);
    else this.#perHostCount.set(host, left);
  }
}

/** The IP address of a multiaddr, or undefined when it has none. */
export function hostOf(ma: Multiaddr): string | undefined {
  return ma.getComponents().find((c) => c.name === 'ip4' || c.name === 'ip6')?.value;
}
