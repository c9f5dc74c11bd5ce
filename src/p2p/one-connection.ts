import type { Connection, Libp2p, PeerId } from '@libp2p/interface';
import type { Logger } from '../log.js';
import { errorMessage } from './limits.js';

/**
 * One connection per pair of members. Two members that dial each other at about the same time (both have the
 * other in their bootstrap list, both heard of the other by peer exchange or mDNS) end up with two connections,
 * one in each direction; libp2p keeps both (at 8 members, 12 connections for 7 peers). This closes the surplus.
 *
 * Guarantee: whenever a connection to a peer opens, the surplus ones to that peer are closed, and both ends pick
 * the same one to keep without talking: the connection dialled by the lower peer id (string order) wins. Of
 * several connections in one direction, the end that dialled them keeps the oldest and closes the rest (the
 * other end leaves them to it). A lone connection is never closed, whoever dialled it, so a pair whose lower id
 * cannot dial the higher one still connects. Make-before-break: a surplus connection is first left (`moveOff`:
 * the cache protocol moves its streams to the connection that stays, cache-protocol.ts) and closed once nothing
 * of the protocol is left on it, or after `drainTimeoutMs` at most (the host gives maxOwnerWaitMs); so a session
 * running on it never drops (its asks in flight are answered on it). Closing is graceful for up to `closeTimeoutMs`, then abrupt.
 */

/** The connections to one peer that should close, of `connections` (all to that peer), seen from `selfId`. */
export function surplusConnections(selfId: string, connections: readonly Connection[]): Connection[] {
  const open = connections.filter((c) => c.status === 'open');
  if (open.length <= 1) return [];
  const preferred = selfId < open[0]!.remotePeer.toString() ? 'outbound' : 'inbound';
  const surplus = open.some((c) => c.direction === preferred) ? open.filter((c) => c.direction !== preferred) : [];
  const mine = open.filter((c) => c.direction === 'outbound' && !surplus.includes(c)).sort((a, b) => a.timeline.open - b.timeline.open);
  surplus.push(...mine.slice(1));
  return surplus;
}

/** The open connection to one peer a new stream should go on: one that is kept, never a surplus one (or undefined). */
export function keptConnection(selfId: string, connections: readonly Connection[], leaving: (c: Connection) => boolean = () => false): Connection | undefined {
  const surplus = surplusConnections(selfId, connections);
  return connections.find((c) => c.status === 'open' && !surplus.includes(c) && !leaving(c));
}

export interface OneConnectionOptions {
  /** How long a graceful close may take before the connection is aborted. */
  readonly closeTimeoutMs: number;
  /** How long a surplus connection is left to its streams (`moveOff`) at most before it is closed. */
  readonly drainTimeoutMs: number;
  readonly logger: Logger;
  /** Moves the protocol's streams off a surplus connection; resolves once none is left on it. */
  readonly moveOff?: ((connection: Connection) => Promise<void>) | undefined;
}

/** Closes surplus connections as connections open on `node` (until it stops). */
export function keepOneConnectionPerPeer(node: Libp2p, options: OneConnectionOptions): void {
  const selfId = node.peerId.toString();
  const leaving = new WeakSet<Connection>();
  const close = (connection: Connection): void => {
    if (connection.status !== 'open') return;
    options.logger.debug('closing a surplus %s connection to %s', connection.direction, connection.remotePeer.toString());
    connection.close({ signal: AbortSignal.timeout(options.closeTimeoutMs) }).catch((err: unknown) => {
      connection.abort(err instanceof Error ? err : new Error(errorMessage(err)));
    });
  };
  const check = (peer: PeerId): void => {
    for (const connection of surplusConnections(selfId, node.getConnections(peer))) {
      if (leaving.has(connection)) continue;
      leaving.add(connection);
      if (options.moveOff === undefined) {
        close(connection);
        continue;
      }
      options.logger.debug('leaving a surplus %s connection to %s', connection.direction, peer.toString());
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, options.drainTimeoutMs);
        timer.unref();
      });
      void Promise.race([options.moveOff(connection).catch(() => undefined), bound]).then(() => {
        clearTimeout(timer);
        close(connection);
      });
    }
  };
  // libp2p's connection manager records the connection in its own listener, registered before this one.
  node.addEventListener('connection:open', (event) => check(event.detail.remotePeer));
}
