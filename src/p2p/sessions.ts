import type { Connection, PeerId } from '@libp2p/interface';
import type { FrameChannel } from './frame-channel.js';
import type { RequestTable } from './request-table.js';
import type { PartedAnswers } from './transfers.js';
import type { HeaderTableReader, HeaderTableWriter } from './header-table.js';

/**
 * The peers this node speaks the protocol with: one session per peer, holding its two directions.
 *
 * Guarantee: there is at most one session per peer id, and a session that leaves the table is closed: its
 * streams are closed and every request in flight on its outbound stream settles 'closed' at once. Listeners of
 * `onChange` hear, synchronously, of every session that comes up (`changed()`, called by the protocol when a
 * peer's hello arrives) or leaves the table.
 *
 * A session outlives a connection swap (make-before-break): when the connection its outbound stream runs on is
 * closed as surplus (one-connection.ts), the protocol opens the `next` stream on the connection that stays and
 * makes it the session's `client` once the peer's hello and scope claims arrived on it; the old one is `retiring`:
 * it carries the asks already in flight on it until they are answered and the leases taken on it until they end,
 * then closes. So a peer in session stays in
 * session (and an owner candidate) across the swap: its `client` is never unset by it.
 */

/** My outbound stream to a peer: I ask, it answers. */
export interface ClientSide {
  readonly channel: FrameChannel;
  /** The connection the stream runs on. */
  readonly connection: Connection;
  /** The challenge I sent: its scope claims are proved under it. */
  readonly challenge: Uint8Array;
  /** Its challenge: my get proofs are made under it. Undefined until its hello arrives. */
  remoteChallenge: Uint8Array | undefined;
  /** Its latest scope claims, by scope id. */
  claims: Map<string, Uint8Array>;
  /** Verification results of those claims (for scopes this node holds), computed on first use. */
  verified: Map<string, boolean>;
  readonly requests: RequestTable;
  /** The header pairs the peer defined on this stream (its unsealed entries name them by index: header-table.ts). */
  readonly headerTable: HeaderTableReader;
  /** Large answers being received in parts. */
  readonly parts: PartedAnswers;
  /** Leases the peer handed out on this stream that are not ended yet (their put or release goes on it). */
  leasesOut: number;
  /** Called when one of those leases ends (a retiring stream may close then). */
  readonly leaseEnded: () => void;
}

/** A peer's stream to me: it asks, I answer. */
export interface ServerSide {
  readonly channel: FrameChannel;
  /** The connection the stream runs on. */
  readonly connection: Connection;
  /** The challenge I sent: its get proofs are made under it. */
  readonly challenge: Uint8Array;
  /** Its challenge: my scope claims are proved under it. */
  remoteChallenge: Uint8Array | undefined;
  /** The header pairs defined to the peer on this stream (my unsealed entries name them by index: header-table.ts). */
  readonly headerTable: HeaderTableWriter;
}

export interface PeerSession {
  readonly id: string;
  readonly peerId: PeerId;
  /** Its own listen addresses (from its hello), without /p2p/. */
  addrs: string[];
  client: ClientSide | undefined;
  /** The stream replacing `client` (on the connection that stays), until its hello and claims arrive. */
  next: ClientSide | undefined;
  /** Former `client`s still answering the asks in flight on them (a connection swap); each closes once they are done. */
  readonly retiring: Set<ClientSide>;
  opening: boolean;
  readonly servers: Set<ServerSide>;
  /** Requests being served for it right now. */
  serving: number;
  /** Large answers being sent to it in parts right now. */
  largeTransfers: number;
  /** When its outbound stream was reopened (at most 3 a minute). */
  reopens: number[];
  /** Until when its `working` frames are not believed (it withheld an answer): its requests wait requestTimeoutMs at most. */
  withheldUntil: number;
}

export class PeerSessions {
  readonly #sessions = new Map<string, PeerSession>();
  readonly #listeners = new Set<() => void>();

  /** Calls `listener` on every change of the sessions in session (see `changed`). Returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tells the listeners the sessions changed (a listener that throws does not stop the others, nor the caller). */
  changed(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch {
        // a listener's failure is its own
      }
    }
  }

  get size(): number {
    return this.#sessions.size;
  }

  get(id: string): PeerSession | undefined {
    return this.#sessions.get(id);
  }

  has(id: string): boolean {
    return this.#sessions.has(id);
  }

  values(): IterableIterator<PeerSession> {
    return this.#sessions.values();
  }

  /** Whether `session` is still the table's session of its peer (not removed or replaced). */
  isCurrent(session: PeerSession): boolean {
    return this.#sessions.get(session.id) === session;
  }

  /** The peer's session, created empty if it has none. */
  ensure(peerId: PeerId): PeerSession {
    const id = peerId.toString();
    let session = this.#sessions.get(id);
    if (session === undefined) {
      session = {
        id, peerId, addrs: [], client: undefined, next: undefined, retiring: new Set(), opening: false, servers: new Set(), serving: 0,
        largeTransfers: 0, reopens: [], withheldUntil: 0,
      };
      this.#sessions.set(id, session);
    }
    return session;
  }

  /** Removes and closes the peer's session; returns it, or undefined when it had none. */
  remove(id: string): PeerSession | undefined {
    const session = this.#sessions.get(id);
    if (session === undefined) return undefined;
    this.#sessions.delete(id);
    closeSession(session);
    this.changed();
    return session;
  }

  /** Removes and closes every session. */
  clear(): void {
    for (const session of this.#sessions.values()) closeSession(session);
    this.#sessions.clear();
    this.changed();
  }
}

function closeSession(session: PeerSession): void {
  for (const client of [session.client, session.next, ...session.retiring]) {
    client?.channel.close(new Error('peer session closed'));
    client?.requests.closeAll();
    client?.parts.clear();
  }
  session.retiring.clear();
  for (const server of session.servers) server.channel.close(new Error('peer session closed'));
  session.servers.clear();
}
