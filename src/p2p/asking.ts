import type { CacheEntry } from '../cache/entry.js';
import type { FleetAnswer, FleetFetchOptions, FleetLease } from '../cache/ports.js';
import { parseRequestKey } from '../cache/request-key.js';
import type { ResolvedP2POptions } from '../options.js';
import { openEntry, openPlainEntry, PeerEntryRejected, sealEntry } from './envelope.js';
import type { LeaseTable, LeaseWaiter } from './lease.js';
import { errorMessage } from './limits.js';
import { rendezvousOwner } from './rendezvous.js';
import { keyTag, sealKey } from './sealed-key.js';
import { ScopeAbsence } from './cold-owner.js';
import type { ScopeClaims, ScopeKeyPair } from './scope-claims.js';
import { getProof } from './scope-proof.js';
import type { Answer } from './request-table.js';
import type { ClientSide, PeerSessions } from './sessions.js';
import type { ProtocolCounters, RejectionKind } from './stats.js';
import { isShareableKey, WIRE_LIMITS, type GetFrame } from './wire.js';

/**
 * Asking a key's owner for its entry.
 *
 * Guarantees:
 * - The owner of a key is chosen by rendezvous hashing among this node and every peer speaking the protocol,
 *   except those remembered as not holding the key's scope (cold-owner.ts) unless they proved it since. Nodes
 *   with the same view send each key to the same one node, which makes the one upstream request for it, from
 *   the fleet's first request on: no node has to have seen the others' scope claims first.
 * - A peer that has not proved the scope is asked with the key sealed under the scope and the key's tag
 *   (sealed-key.ts): it learns no URL of a scope it does not hold. Not holding the scope, it owns the key blind
 *   (lease.ts): it answers a sealed entry another asker put, or keeps this ask waiting while another asker holds
 *   the key's lease (and says `working`: this node waits as long as it hears from it), or hands this node the
 *   lease: the answer is then 'self' with a FleetLease, and the caller fetches the key and ends the lease
 *   (`put` of the sealed entry, or `release`, marked `unshareable` when the answer is not to be shared: its
 *   waiters then fetch it themselves at once). A sealed entry from such an owner that fails verification is
 *   counted but not struck (an honest blind owner relays what a holder put, unread): the key is asked again of
 *   it once with `refresh: 1`, so it drops that entry and answers as if it kept none; a second bad one, or an
 *   owner that answers `not-held`, is remembered as not holding the scope, and the key is asked of its owner
 *   among the remaining candidates (so holders of the scope still agree on one owner). A tagged ask that times
 *   out does not mark the owner (a blind owner never answers `not-held` to it: it is slow, not absent).
 * - `refresh` (the caller refused the entry an owner answered: stale by its clock, older than what it holds, or
 *   written since): asked of a blind owner with `refresh: 1` (it drops its copy and leases the key out, once);
 *   of an owner that holds the scope, not asked ('self': the caller goes upstream, as before).
 * - A key this node owned blind, before it held the scope, may still be under a lease it handed out: a fetch of
 *   it (this node's own caller, or a peer's ask served as owner) waits on that lease and takes its entry
 *   (verified), or takes the lease next, instead of fetching the key a second time.
 * - `fetch` never throws for peer failures and resolves within `requestTimeoutMs` of the owner's last news
 *   (`maxOwnerWaitMs` in all): 'self' (this node owns the key), 'entry' (an entry that passed every check of
 *   envelope.ts under the scope's key) or 'unavailable'. A request whose stream dies settles at once, and the key
 *   is asked again of its owner among the members left (at most MAX_LOST_OWNERS times), so the askers of a crashed
 *   owner's keys fetch each of them once between them, not once each.
 * - Withholding is bounded, counted and struck: an owner that keeps sending `working` until `maxOwnerWaitMs` runs
 *   out without answering gets one 'withheld' strike, and for `withholdingMemoryMs` after that its `working`
 *   frames buy nothing (each request to it waits `requestTimeoutMs` at most, and one withheld again is another
 *   strike). So a request to a withholding owner waits `maxOwnerWaitMs` at most if it was opened before the owner
 *   first withheld, `requestTimeoutMs` if after, until `maxStrikes` ban the owner.
 * - An entry that fails verification is never returned and counts one strike against the owner.
 * - A key that is not shareable (wire.ts, isShareableKey) is answered 'unavailable' at once: nothing is sent.
 * - Hand-off: when this node owns the key (or serves it as owner for a peer: `asOwner`) and keys moved to it
 *   within `handoffWindowMs` (this node started, so it joined a fleet, or a peer left; a peer joining only takes
 *   keys away), it first asks the key's previous holder
 *   (the owner by rendezvous among the other members that proved the scope, i.e. the owner were this node not
 *   there) with a `get` marked `handoff`, which that peer answers from its cache only (never forwarded, so it
 *   never cascades), waiting `requestTimeoutMs` of its silence at most. A verified entry is answered 'entry'; anything else
 *   'self' (the caller goes upstream). The window is the fleet's `maxEntryTtl`: an entry the previous holder
 *   held when ownership moved has expired by then, so past it the ask could only cost a round trip.
 */

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Owners lost in the middle of one fetch before the caller is told to go upstream itself. */
const MAX_LOST_OWNERS = 2;

export interface AskerInit {
  readonly selfId: string;
  readonly sessions: PeerSessions;
  readonly claims: ScopeClaims;
  readonly counters: ProtocolCounters;
  readonly reject: (peerId: string, kind: RejectionKind, detail: string) => void;
  readonly p2p: Pick<ResolvedP2POptions, 'requestTimeoutMs' | 'maxEntryTtl'>;
  readonly maxOwnerWaitMs: number;
  /** How long an owner that withheld an answer gets no extension for `working` (the strike window). */
  readonly withholdingMemoryMs: number;
  readonly maxClockSkewMs: number;
  readonly now: () => number;
  readonly stopped: () => boolean;
  /** How long after the member set changed an owner asks a key's previous holder before going upstream (0: never). */
  readonly handoffWindowMs: number;
  /** This node's blind ownership (lease.ts), shared with serving.ts. */
  readonly leases: LeaseTable;
  /** Largest sealed entry put under a lease (a larger one is released: the blind owner would refuse it). */
  readonly maxPutBytes: number;
}

export class Asker {
  readonly #init: AskerInit;
  /** Owners that said (or showed) they do not hold a scope. */
  readonly #absence: ScopeAbsence;

  /** When keys last moved to this node (it started, or a peer left). */
  #membersChangedAt: number;

  constructor(init: AskerInit) {
    this.#init = init;
    this.#absence = new ScopeAbsence(init.now);
    this.#membersChangedAt = init.now();
  }

  /** Whether keys moved to this node recently enough that their previous holder may still hold them fresh. */
  #inHandoffWindow(): boolean {
    return this.#init.now() - this.#membersChangedAt < this.#init.handoffWindowMs;
  }

  /** A peer left: the keys it owned moved to the others, this node among them. */
  membersChanged(): void {
    this.#membersChangedAt = this.#init.now();
  }

  fetch(key: string, scopeId: string, signal?: AbortSignal, options: FleetFetchOptions = {}): Promise<FleetAnswer> {
    return this.#fetch(key, scopeId, signal, options, 0);
  }

  /** `lost`: owners of this key that went away during this fetch (each retry has one candidate fewer). */
  async #fetch(key: string, scopeId: string, signal: AbortSignal | undefined, options: FleetFetchOptions, lost: number): Promise<FleetAnswer> {
    const { selfId, sessions, claims, counters, p2p } = this.#init;
    if (this.#init.stopped()) return { kind: 'unavailable', reason: 'the P2P host is stopped' };
    // Never send what the wire refuses: the owner would strike this (honest) node for it.
    if (!isShareableKey(key)) return { kind: 'unavailable', reason: `the key is longer than the wire allows (${WIRE_LIMITS.keyLength} characters): it stays local` };
    const parts = options.parts ?? parseRequestKey(key);
    if (parts === undefined || parts.scopeId !== scopeId) return { kind: 'unavailable', reason: 'not a request key of this scope' };
    const keys = claims.keysOf(scopeId);
    if (keys === undefined) return { kind: 'unavailable', reason: 'this node does not hold the scope' };
    // A key this node owned blind may be under a lease it handed out: wait on it rather than fetch it too (an
    // entry kept for it that the caller refused is dropped first).
    if (options.refresh === true && this.#init.leases.knows(scopeId)) this.#init.leases.drop(scopeId, keyTag(key, keys.entryKey));
    if (this.#init.leases.knows(scopeId)) {
      const leased = await this.#fromLeases(key, scopeId, keys, signal);
      if (leased !== undefined) return leased;
    }

    // Serving as owner, outside the hand-off window, nobody is asked: skip the walk over the sessions.
    if (options.asOwner === true && !this.#inHandoffWindow()) return { kind: 'self' };
    const candidates = [selfId];
    const provers = [selfId];
    for (const session of sessions.values()) {
      const client = session.client;
      if (client === undefined || client.remoteChallenge === undefined || client.channel.closed) continue;
      if (claims.proved(session, client, scopeId)) {
        candidates.push(session.id);
        provers.push(session.id);
      } else if (client.verified.get(scopeId) !== false && !this.#absence.lacks(client, scopeId)) {
        // Not proved (yet): a candidate, unless it claimed the scope with a bad proof or is known not to hold it.
        candidates.push(session.id);
      }
    }
    if (options.asOwner === true) return this.#handoff(key, keys, provers, signal);
    let owner = rendezvousOwner(key, candidates);
    let sealed: string | undefined;
    if (owner !== undefined && owner !== selfId && !provers.includes(owner)) {
      // An owner that has not proved the scope gets the key sealed; a key too long to seal goes to the provers.
      sealed = sealKey(key, scopeId, keys.entryKey);
      if (sealed === undefined) owner = rendezvousOwner(key, provers);
    }
    const tag = sealed === undefined ? undefined : keyTag(key, keys.entryKey);
    // A refused answer of an owner that holds the scope (or of a previous holder): it would answer the same again.
    if (options.refresh === true && tag === undefined) return { kind: 'self' };
    if (owner === selfId || owner === undefined) return this.#handoff(key, keys, provers, signal);
    const session = sessions.get(owner);
    const client = session?.client;
    if (session === undefined || client?.remoteChallenge === undefined) return { kind: 'unavailable', reason: 'owner disconnected' };

    const maxWaitMs = session.withheldUntil > this.#init.now() ? p2p.requestTimeoutMs : this.#init.maxOwnerWaitMs;
    const { id, answer } = client.requests.open(p2p.requestTimeoutMs, signal, maxWaitMs);
    counters.count('requestsSent');
    const proof = getProof(keys.proofKey, client.remoteChallenge, id, key, { prover: selfId, verifier: owner });
    const refresh = tag !== undefined && options.refresh === true;
    // An owner that proved the scope to this node may answer unsealed: the stream is noise's, between two holders.
    const plain = sealed === undefined && provers.includes(owner);
    // Fields in canonical CBOR order (by length, then bytewise), which the encoder then only checks.
    const get: Mutable<GetFrame> = plain ? { id, key, type: 'get', plain: 1, proof } : { id, key: sealed ?? key, type: 'get', proof };
    if (tag !== undefined) get.tag = tag;
    if (refresh) get.refresh = 1;
    // A lone request (none other in flight on this stream) leaves at once; others leave together after this turn.
    if (!client.channel.send(get, client.requests.size === 1)) {
      client.requests.settle(id, { kind: 'closed' });
    }
    // A blind owner is waited for as long as it is heard from (request-table.ts): no fixed grace.
    const result = await answer;
    if (sealed !== undefined && result.kind === 'entry' && !claims.proved(session, client, scopeId)) {
      // Relayed unread by an owner without the scope: verified here; a bad one is not the owner's to answer for.
      try {
        const entry = this.#open(result, key, keys.entryKey, false);
        counters.count('entriesReceived');
        return { kind: 'entry', entry, peerId: owner };
      } catch (err) {
        counters.countRejected(err instanceof PeerEntryRejected ? err.reason : 'schema');
        if (signal?.aborted === true) return { kind: 'unavailable', reason: 'aborted' };
        // Most likely garbage another member put: once more with `refresh`, so the owner drops it.
        if (!refresh) return this.#fetch(key, scopeId, signal, { ...options, refresh: true }, lost);
        this.#absence.mark(client, scopeId);
        return this.#fetch(key, scopeId, signal, { ...options, refresh: false }, lost);
      }
    }
    // A tagged get that times out is not a sign of absence: a blind owner never answers it not-held (it is slow).
    if (sealed !== undefined && ((result.kind === 'miss' && result.reason === 'not-held') || (result.kind === 'timeout' && tag === undefined))
      && !claims.proved(session, client, scopeId)) {
      // It does not hold the scope: the key's owner among the others (each retry has one candidate fewer).
      this.#absence.mark(client, scopeId);
      if (signal?.aborted !== true) {
        if (result.kind === 'timeout') counters.count('timeouts'); // else counted once below
        return this.#fetch(key, scopeId, signal, options, lost);
      }
    }
    switch (result.kind) {
      case 'entry':
        try {
          const entry = this.#open(result, key, keys.entryKey, plain);
          counters.count('entriesReceived');
          return { kind: 'entry', entry, peerId: owner };
        } catch (err) {
          const reason = err instanceof PeerEntryRejected ? err.reason : 'schema';
          this.#init.reject(owner, reason, errorMessage(err));
          return { kind: 'unavailable', reason: `rejected the owner's entry (${reason})` };
        }
      case 'lease':
        counters.count('leasesTaken');
        return { kind: 'self', lease: this.#remoteLease(client, result.lease, key, keys.entryKey) };
      case 'miss':
        return { kind: 'unavailable', reason: `owner miss (${result.reason})` };
      case 'error':
        return { kind: 'unavailable', reason: `owner error: ${result.message}` };
      case 'timeout':
        counters.count('timeouts');
        if (result.withheld === true) {
          session.withheldUntil = this.#init.now() + this.#init.withholdingMemoryMs;
          this.#init.reject(owner, 'withheld', `it said it was working for ${maxWaitMs} ms and never answered`);
          return { kind: 'unavailable', reason: `owner withheld the answer (working for ${maxWaitMs} ms, never done)` };
        }
        return { kind: 'unavailable', reason: `owner did not answer within ${p2p.requestTimeoutMs} ms` };
      case 'closed':
        // The owner went away with the ask in flight (it crashed, or its link went down): its keys move to the
        // others, and every asker that lost it now agrees on the key's new owner. Asking that owner (or going
        // upstream as the owner, under the singleflight the others' asks join) costs the fleet one request for
        // the key, where each asker going upstream on its own cost one each.
        if (signal?.aborted !== true && !this.#init.stopped() && lost < MAX_LOST_OWNERS) {
          this.membersChanged();
          return this.#fetch(key, scopeId, signal, options, lost + 1);
        }
        return { kind: 'unavailable', reason: 'owner disconnected' };
      case 'aborted':
        return { kind: 'unavailable', reason: 'aborted' };
    }
  }

  /**
   * `key` is in this node's lease table (it owned it blind): its sealed entry (verified), or a wait on its lease
   * out until it is put (the entry), released or expired (this node may get the lease next: 'self' with it), or
   * undefined when nothing is there or the wait is refused (the fetch goes on as usual).
   */
  #fromLeases(key: string, scopeId: string, keys: ScopeKeyPair, signal: AbortSignal | undefined): Promise<FleetAnswer | undefined> {
    const { leases, counters } = this.#init;
    const tag = keyTag(key, keys.entryKey);
    if (!leases.has(scopeId, tag)) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const holder = {}; // this fetch's own token: only it can end a lease it gets
      let settled = false;
      const finish = (answer: FleetAnswer | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(limit);
        signal?.removeEventListener('abort', onAbort);
        resolve(answer);
      };
      // Waited on as a remote asker waits on an owner: at most maxOwnerWaitMs, then fetched as if no lease were out.
      const limit = setTimeout(() => finish(undefined), this.#init.maxOwnerWaitMs);
      limit.unref();
      const onAbort = (): void => finish({ kind: 'unavailable', reason: 'aborted' });
      if (signal?.aborted === true) return onAbort();
      const waiter: LeaseWaiter = {
        holder,
        peer: this.#init.selfId,
        alive: () => !settled && !this.#init.stopped(),
        entry: (sealed) => {
          try {
            const entry = this.#open({ kind: 'entry', sealed }, key, keys.entryKey, false);
            finish({ kind: 'entry', entry, peerId: this.#init.selfId });
          } catch (err) {
            counters.countRejected(err instanceof PeerEntryRejected ? err.reason : 'schema');
            finish(undefined);
          }
        },
        granted: (lease) => {
          if (settled) return void leases.release(holder, lease);
          counters.count('leasesTaken');
          finish({ kind: 'self', lease: this.#lease((entry, unshareable) => {
            if (entry === undefined) return void leases.release(holder, lease, unshareable);
            const sealed = this.#seal(entry, key, keys.entryKey);
            if (sealed === undefined) leases.release(holder, lease, true);
            else leases.put(holder, lease, sealed.bytes, sealed.ttlMs);
          }) });
        },
        unshared: () => finish(undefined),
        dropped: () => finish(undefined),
      };
      if (leases.ask(scopeId, tag, waiter) === 'busy') return finish(undefined);
      if (!settled) signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A peer's entry for `key` (envelope.ts): a sealed one opened and checked under the scope's key; an unsealed one
   * checked alike, taken only when this node asked for it (`plain`). Throws PeerEntryRejected if it fails.
   */
  #open(answer: Answer & { kind: 'entry' }, key: string, entryKey: Uint8Array, plain: boolean): CacheEntry {
    const options = { maxEntryTtlSeconds: this.#init.p2p.maxEntryTtl, now: this.#init.now, maxClockSkewMs: this.#init.maxClockSkewMs };
    if ('sealed' in answer) return openEntry(answer.sealed, key, entryKey, options);
    if (!plain) throw new PeerEntryRejected('unsealed', 'an unsealed entry answered a get that did not ask for one');
    return openPlainEntry(answer.payload, key, options);
  }

  /** The lease a blind owner gave this node on `client`'s stream: ended with `put` or `release` on it. */
  #remoteLease(client: ClientSide, lease: number, key: string, entryKey: Uint8Array): FleetLease {
    client.leasesOut++; // the stream is kept until the lease ends (a connection swap, sessions.ts)
    return this.#lease((entry, unshareable) => {
      client.leasesOut--;
      if (client.channel.closed) return; // the owner saw the stream close: the lease passed on already
      const sealed = entry === undefined ? undefined : this.#seal(entry, key, entryKey);
      // An entry that cannot be put (stale already, or too large) is as unshareable as a no-store answer.
      if (sealed === undefined) client.channel.send({ type: 'release', lease, ...(unshareable || entry !== undefined ? { unshareable: 1 } : {}) });
      else client.channel.send({ type: 'put', lease, sealed: sealed.bytes, ttlMs: sealed.ttlMs });
      client.leaseEnded();
    });
  }

  /** A FleetLease whose first `end` runs `end` (later calls do nothing); it never throws. */
  #lease(end: (entry: CacheEntry | undefined, unshareable: boolean) => void): FleetLease {
    let ended = false;
    return {
      end: (entry, unshareable) => {
        if (ended) return;
        ended = true;
        try {
          end(entry, unshareable === true);
        } catch {
          // A lease not ended passes on when it expires (lease.ts).
        }
      },
    };
  }

  /** `entry` sealed for the fleet (its TTL capped at maxEntryTtl, as an owner sends it); undefined when stale or too large to put. */
  #seal(entry: CacheEntry, key: string, entryKey: Uint8Array): { bytes: Uint8Array; ttlMs: number } | undefined {
    const now = this.#init.now();
    const maxExpiresAt = Math.floor(entry.storedAt + this.#init.p2p.maxEntryTtl * 1000);
    const expiresAt = Math.min(entry.expiresAt, maxExpiresAt);
    if (expiresAt <= now) return undefined;
    const bytes = sealEntry(expiresAt < entry.expiresAt ? { ...entry, expiresAt } : entry, key, entryKey);
    return bytes.byteLength <= this.#init.maxPutBytes ? { bytes, ttlMs: expiresAt - now } : undefined;
  }

  /**
   * This node owns `key` (or serves it as owner): while ownership moved recently, the key's previous holder is
   * asked (never forwarded) before the caller goes upstream. 'entry' (verified) or 'self'.
   */
  async #handoff(key: string, keys: ScopeKeyPair, provers: readonly string[], signal: AbortSignal | undefined): Promise<FleetAnswer> {
    const { selfId, sessions, counters, p2p } = this.#init;
    const self: FleetAnswer = { kind: 'self' };
    if (!this.#inHandoffWindow()) return self;
    const holder = rendezvousOwner(key, provers.filter((id) => id !== selfId));
    if (holder === undefined) return self;
    const session = sessions.get(holder);
    const client = session?.client;
    if (client?.remoteChallenge === undefined || client.channel.closed) return self;
    // The holder answers from its cache at once (no `working`): a timeout of its silence, extended only while its
    // frames keep coming (a large answer in parts), within maxOwnerWaitMs.
    const { id, answer } = client.requests.open(p2p.requestTimeoutMs, signal, this.#init.maxOwnerWaitMs);
    counters.count('handoffsSent');
    const proof = getProof(keys.proofKey, client.remoteChallenge, id, key, { prover: selfId, verifier: holder });
    // The holder proved the scope (it is one of `provers`): it may answer unsealed.
    if (!client.channel.send({ id, key, type: 'get', plain: 1, proof, handoff: 1 })) client.requests.settle(id, { kind: 'closed' });
    const result = await answer;
    if (result.kind === 'timeout') counters.count('timeouts');
    if (result.kind !== 'entry') return self;
    try {
      const entry = this.#open(result, key, keys.entryKey, true);
      counters.count('entriesReceived');
      counters.count('handoffEntries');
      return { kind: 'entry', entry, peerId: holder };
    } catch (err) {
      const reason = err instanceof PeerEntryRejected ? err.reason : 'schema';
      this.#init.reject(holder, reason, errorMessage(err));
      return self;
    }
  }
}
