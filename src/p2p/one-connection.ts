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
 * cannot dial the higher one still connects. Closing is graceful for up to `closeTimeoutMs`, then abrupt; the
 * cache protocol reopens its stream on the connection that stays (cache-protocol.ts).
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

/** Closes surplus connections as connections open on `node` (until it stops). */
export function keepOneConnectionPerPeer(node: Libp2p, options: { closeTimeoutMs: number; logger: Logger }): void {
  const selfId = node.peerId.toString();
  const check = (peer: PeerId): void => {
    for (const connection of surplusConnections(selfId, node.getConnections(peer))) {
      options.logger.debug('closing a surplus %s connection to %s', connection.direction, peer.toString());
      connection.close({ signal: AbortSignal.timeout(options.closeTimeoutMs) }).catch((err: unknown) => {
        connection.abort(err instanceof Error ? err : new Error(errorMessage(err)));
      });
    }
  };
  // libp2p's connection manager records the connection in its own listener, registered before this one.
  node.addEventListener('connection:open', (event) => check(event.detail.remotePeer));
}
