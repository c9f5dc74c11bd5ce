import { LRUCache } from 'lru-cache';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from './entry-aead.js';
import { ENVELOPE_VERSION } from './envelope.js';

/**
 * Blind ownership with leases (after memcache's leases, NSDI 2013): an owner coordinates the keys it owns by
 * rendezvous even in a scope it does not hold, without reading them. A sealed `get` carries the key's tag
 * (sealed-key.ts); this table is keyed by (scope id, tag) and holds only sealed bytes it cannot open.
 *
 * Guarantees:
 * - `ask` answers a waiter at once from a sealed entry held (`entry`), or, when nobody is fetching the key, gives
 *   it the key's one lease (`lease`: it fetches with its own token and ends the lease with `put` or `release`),
 *   or queues it behind the lease out (`wait`), or refuses (`busy`: a bound below was reached). So at any time at
 *   most one asker of a key fetches it through this owner.
 * - A lease ends exactly once: `put` (its sealed entry answers every waiter and is kept), `release`, its holder
 *   gone (`holderGone`: the stream closed), or `leaseMs` after it was granted. So a lease lasts as long as its
 *   holder is alive (its stream open), bounded only by `leaseMs`, a generous bound well past any one upstream
 *   request (a slow GitHub or a queue at the holder is not a dead holder). Ended without an entry, it passes to
 *   the next waiter still alive (so a dead holder costs one more fetch, not one per waiter); with none, it ends.
 *   A `release` that says the answer cannot be shared (`unshareable`: too large, no-store, a redirect, a 4xx) ends
 *   it for every waiter at once (`unshared`: each fetches the key itself, in parallel, not one after another),
 *   and the key is remembered as unshareable for `unshareableMs` (at most `maxEntries` keys): asks for it are
 *   answered 'unshared' at once.
 * - Only the holder can end its lease: a `put` or `release` names the lease's number and must come on the stream
 *   it went to. One from a recent former holder of the lease (it expired, or a late put ended it) is 'late',
 *   never a fault: a late put that looks right answers the waiters of the lease out for the key now (ending it)
 *   or is kept if nothing is kept for the key; a late release changes nothing. Anything else is 'unknown' (the
 *   caller strikes it). A `put` whose bytes are not a sealed entry of envelope.ts's layout, or longer than
 *   `maxEntryBytes`, is refused ('garbage', 'oversize') and ends the lease as a release. Only that shape is
 *   checked: bytes that look right but do not open reach the waiters, and each asker refuses them (it verifies
 *   everything, envelope.ts); this owner can neither read nor check them.
 * - Fair: leases and kept bytes are counted per peer (`LeaseWaiter.peer`, not per stream): at most
 *   `maxLeasesPerPeer` leases out and `maxBytesPerPeer` bytes kept from one peer's puts (a put over its share
 *   still answers its waiters but is not kept), so one member cannot fill the table and starve the others.
 * - Bounded: at most `maxEntries` sealed entries and `maxBytes` bytes of them (least recently used dropped), each
 *   kept at most `maxEntryTtlMs` and never past the TTL its holder stated; at most `maxLeases` leases out in all;
 *   at most `maxWaiters` waiters per lease; at most `maxLeases` former leases remembered, each for `leaseMs`.
 *   `stop` drops everything and tells every waiter (`dropped`).
 */

/** Someone asking for a key through this table: an asker's `get` on a stream, or this node's own load. */
export interface LeaseWaiter {
  /** Where a lease given to it goes (the asker's stream, or a token of this node): `put`/`release` must come from it. */
  readonly holder: object;
  /** The member it asks for (its peer id; this node's own asks use their holder): leases and kept bytes are capped per peer. */
  readonly peer?: string;
  /** Whether it still wants an answer (its stream is open, it did not give up). */
  alive(): boolean;
  /** The key's sealed entry arrived: answer with it. */
  entry(sealed: Uint8Array): void;
  /** The key's lease is this waiter's now: it fetches the key and ends lease `lease`. */
  granted(lease: number): void;
  /** The key's answer cannot be shared: it fetches the key itself, without a lease. */
  unshared(): void;
  /** Nobody will answer it through this table (it is stopping, or it was found no longer alive). */
  dropped(): void;
}

export interface LeaseTableInit {
  readonly maxEntries: number;
  readonly maxBytes: number;
  /** Largest sealed entry kept (and put); larger puts are refused. */
  readonly maxEntryBytes: number;
  readonly maxEntryTtlMs: number;
  readonly leaseMs: number;
  /** How long a key released as unshareable is answered 'unshared' at once. */
  readonly unshareableMs: number;
  readonly maxLeases: number;
  readonly maxLeasesPerPeer: number;
  /** Bytes of sealed entries kept from one peer's puts. */
  readonly maxBytesPerPeer: number;
  readonly maxWaiters: number;
}

interface Lease {
  readonly slot: string;
  holder: object;
  /** Whose share the lease counts in (the holder's peer). */
  peer: string | object;
  number: number;
  timer: NodeJS.Timeout | undefined;
  readonly waiters: LeaseWaiter[];
}

export type AskOutcome = 'entry' | 'lease' | 'wait' | 'unshared' | 'busy';
export type EndOutcome = 'kept' | 'released' | 'late' | 'unknown' | 'garbage' | 'oversize';

interface Kept {
  readonly sealed: Uint8Array;
  /** Whose share it counts in (the peer whose put it was). */
  readonly peer: string | object;
}

/** Smallest sealed entry: version byte, nonce, tag (envelope.ts). */
const MIN_SEALED_BYTES = 1 + AEAD_NONCE_BYTES + AEAD_TAG_BYTES;
const ID_SPACE = 0x1_0000_0000;

export class LeaseTable {
  readonly #init: LeaseTableInit;
  readonly #entries: LRUCache<string, Kept>;
  /** Lease out per slot (scope id and tag). */
  readonly #leases = new Map<string, Lease>();
  /** Leases out per holder, by number. */
  readonly #byHolder = new Map<object, Map<number, Lease>>();
  /** Leases out per peer. */
  readonly #leasesOfPeer = new Map<string | object, number>();
  /** Bytes kept per peer. */
  readonly #bytesOfPeer = new Map<string | object, number>();
  /** Leases that ended without their holder's put or release, by number: a late put or release from it is not a fault. */
  readonly #former: LRUCache<number, { holder: object; slot: string; peer: string | object }>;
  /** Keys (slots) whose answer was released as unshareable lately. */
  readonly #unshareable: LRUCache<string, true>;
  /** Slots per scope (held entries or leases out), so a node that never served blind skips the tag. */
  readonly #scopes = new Map<string, number>();
  #nextNumber = 0;

  constructor(init: LeaseTableInit) {
    this.#init = init;
    this.#entries = new LRUCache<string, Kept>({
      max: init.maxEntries, maxSize: init.maxBytes, sizeCalculation: (kept) => Math.max(1, kept.sealed.byteLength),
      ttl: init.maxEntryTtlMs, ttlAutopurge: false,
      dispose: (kept, slot) => {
        this.#unscope(slot);
        add(this.#bytesOfPeer, kept.peer, -kept.sealed.byteLength);
      },
    });
    this.#unshareable = new LRUCache({ max: Math.max(1, init.maxEntries), ttl: Math.max(1, init.unshareableMs), ttlAutopurge: false });
    this.#former = new LRUCache({ max: Math.max(1, init.maxLeases), ttl: Math.max(1, init.leaseMs), ttlAutopurge: false });
  }

  /** Whether anything (an entry or a lease) of `scopeId` is here. */
  knows(scopeId: string): boolean {
    return this.#scopes.has(scopeId);
  }

  /** Whether a lease is out, or a sealed entry kept, for the key (its tag) of `scopeId`. */
  has(scopeId: string, tag: Uint8Array): boolean {
    const slot = slotOf(scopeId, tag);
    return this.#leases.has(slot) || this.#entries.has(slot);
  }

  /** An asker refused the entry kept for the key (stale, written since, or not opening): it is dropped. */
  drop(scopeId: string, tag: Uint8Array): void {
    this.#entries.delete(slotOf(scopeId, tag));
  }

  /** Leases out (for stats and tests). */
  get leases(): number {
    return this.#leases.size;
  }

  /** See the module guarantee. `waiter` is answered in this call for 'entry' and 'lease', later for 'wait', never for 'unshared' and 'busy'. */
  ask(scopeId: string, tag: Uint8Array, waiter: LeaseWaiter): AskOutcome {
    const slot = slotOf(scopeId, tag);
    const kept = this.#entries.get(slot);
    if (kept !== undefined) {
      waiter.entry(kept.sealed);
      return 'entry';
    }
    const lease = this.#leases.get(slot);
    if (lease === undefined && this.#unshareable.has(slot)) return 'unshared';
    if (lease !== undefined) {
      // Waiters gone meanwhile (their asker gave up, their stream closed) hold no place in the queue.
      if (lease.waiters.length >= this.#init.maxWaiters) {
        const gone = lease.waiters.filter((w) => !w.alive());
        for (const w of gone) lease.waiters.splice(lease.waiters.indexOf(w), 1);
        for (const w of gone) w.dropped();
        if (lease.waiters.length >= this.#init.maxWaiters) return 'busy';
      }
      lease.waiters.push(waiter);
      return 'wait';
    }
    if (this.#leases.size >= this.#init.maxLeases || (this.#leasesOfPeer.get(peerOf(waiter)) ?? 0) >= this.#init.maxLeasesPerPeer) return 'busy';
    const fresh: Lease = { slot, holder: waiter.holder, peer: peerOf(waiter), number: 0, timer: undefined, waiters: [] };
    this.#leases.set(slot, fresh);
    this.#scope(slot);
    this.#grant(fresh, waiter);
    return 'lease';
  }

  /** The holder's sealed entry for lease `number`, fresh for `ttlMs`. See the module guarantee. */
  put(holder: object, number: number, sealed: Uint8Array, ttlMs: number): EndOutcome {
    const lease = this.#byHolder.get(holder)?.get(number);
    if (lease === undefined) return this.#latePut(holder, number, sealed, ttlMs);
    if (sealed.byteLength > this.#init.maxEntryBytes) {
      this.#passOn(lease);
      return 'oversize';
    }
    if (sealed.byteLength < MIN_SEALED_BYTES || sealed[0] !== ENVELOPE_VERSION) {
      this.#passOn(lease);
      return 'garbage';
    }
    this.#end(lease);
    this.#answer(lease, lease.slot, lease.peer, sealed, ttlMs);
    return 'kept';
  }

  /** Keeps `sealed` for `slot` (within `peer`'s share) and answers `lease`'s waiters, if any, with it. */
  #answer(lease: Lease | undefined, slot: string, peer: string | object, sealed: Uint8Array, ttlMs: number): void {
    const kept = sealed.slice(); // never a view of the received frame
    const ttl = Math.min(ttlMs, this.#init.maxEntryTtlMs);
    if (ttl > 0 && (this.#bytesOfPeer.get(peer) ?? 0) + kept.byteLength <= this.#init.maxBytesPerPeer) {
      this.#scope(slot);
      this.#entries.set(slot, { sealed: kept, peer }, { ttl });
      if (this.#entries.has(slot)) add(this.#bytesOfPeer, peer, kept.byteLength);
      else this.#unscope(slot); // too large for the budget: not kept
    }
    for (const waiter of lease?.waiters ?? []) {
      if (waiter.alive()) waiter.entry(kept);
      else waiter.dropped();
    }
  }

  /**
   * A put for a lease `holder` does not hold. From a recent former holder of it, 'late': bytes of the right shape
   * answer the waiters of the key's lease out now (its holder's own put will be late in turn), or are kept if
   * nothing is kept for the key; anything else is ignored. From anyone else, 'unknown'.
   */
  #latePut(holder: object, number: number, sealed: Uint8Array, ttlMs: number): EndOutcome {
    const former = this.#former.get(number);
    if (former?.holder !== holder) return 'unknown';
    this.#former.delete(number);
    if (sealed.byteLength > this.#init.maxEntryBytes || sealed.byteLength < MIN_SEALED_BYTES || sealed[0] !== ENVELOPE_VERSION) return 'late';
    if (this.#entries.has(former.slot)) return 'late';
    const current = this.#leases.get(former.slot);
    if (current !== undefined) this.#end(current, true);
    this.#answer(current, former.slot, former.peer, sealed, ttlMs);
    return 'late';
  }

  /**
   * The holder has nothing to put under lease `number`: it passes on, or, `unshareable`, every waiter is told
   * (`unshared`) and the key remembered. 'unknown' when it holds no such lease.
   */
  release(holder: object, number: number, unshareable = false): EndOutcome {
    const lease = this.#byHolder.get(holder)?.get(number);
    if (lease === undefined) {
      if (this.#former.get(number)?.holder !== holder) return 'unknown';
      this.#former.delete(number);
      return 'late';
    }
    if (!unshareable) {
      this.#passOn(lease);
      return 'released';
    }
    this.#end(lease);
    this.#unshareable.set(lease.slot, true);
    for (const waiter of lease.waiters) {
      if (waiter.alive()) waiter.unshared();
      else waiter.dropped();
    }
    return 'released';
  }

  /** `holder` is gone (its stream closed): every lease it held passes on. */
  holderGone(holder: object): void {
    const leases = this.#byHolder.get(holder);
    if (leases === undefined) return;
    for (const lease of [...leases.values()]) this.#passOn(lease);
  }

  /** Drops every entry and lease; every waiter is told (`dropped`). */
  stop(): void {
    const waiters = [...this.#leases.values()].flatMap((lease) => {
      clearTimeout(lease.timer);
      return lease.waiters;
    });
    this.#leases.clear();
    this.#byHolder.clear();
    this.#leasesOfPeer.clear();
    this.#former.clear();
    this.#unshareable.clear();
    this.#entries.clear();
    this.#bytesOfPeer.clear();
    this.#scopes.clear();
    for (const waiter of waiters) waiter.dropped();
  }

  #grant(lease: Lease, waiter: LeaseWaiter): void {
    const number = this.#nextNumber;
    this.#nextNumber = (number + 1) % ID_SPACE;
    lease.holder = waiter.holder;
    lease.peer = peerOf(waiter);
    lease.number = number;
    add(this.#leasesOfPeer, lease.peer, 1);
    let held = this.#byHolder.get(waiter.holder);
    if (held === undefined) {
      held = new Map();
      this.#byHolder.set(waiter.holder, held);
    }
    held.set(number, lease);
    lease.timer = setTimeout(() => this.#passOn(lease, true), this.#init.leaseMs);
    lease.timer.unref();
    waiter.granted(number);
  }

  /** The lease ended without an entry: the next waiter still alive gets it; with none, it ends. */
  #passOn(lease: Lease, expired = false): void {
    this.#end(lease, expired);
    for (let waiter = lease.waiters.shift(); waiter !== undefined; waiter = lease.waiters.shift()) {
      if (!waiter.alive()) {
        waiter.dropped();
        continue;
      }
      this.#leases.set(lease.slot, lease);
      this.#scope(lease.slot);
      this.#grant(lease, waiter);
      return;
    }
  }

  /** Takes the lease out of the tables (its waiters stay on it, for the caller); `unended`: its holder may still end it, late. */
  #end(lease: Lease, unended = false): void {
    clearTimeout(lease.timer);
    lease.timer = undefined;
    const held = this.#byHolder.get(lease.holder);
    if (held?.get(lease.number) === lease) {
      held.delete(lease.number);
      if (held.size === 0) this.#byHolder.delete(lease.holder);
      add(this.#leasesOfPeer, lease.peer, -1);
      if (unended) this.#former.set(lease.number, { holder: lease.holder, slot: lease.slot, peer: lease.peer });
    }
    if (this.#leases.get(lease.slot) === lease) {
      this.#leases.delete(lease.slot);
      this.#unscope(lease.slot);
    }
  }

  #scope(slot: string): void {
    const scopeId = scopeOfSlot(slot);
    this.#scopes.set(scopeId, (this.#scopes.get(scopeId) ?? 0) + 1);
  }

  #unscope(slot: string): void {
    const scopeId = scopeOfSlot(slot);
    const n = (this.#scopes.get(scopeId) ?? 0) - 1;
    if (n <= 0) this.#scopes.delete(scopeId);
    else this.#scopes.set(scopeId, n);
  }
}

function peerOf(waiter: LeaseWaiter): string | object {
  return waiter.peer ?? waiter.holder;
}

/** Adds `n` to `key`'s count in `counts`, dropping it at zero. */
function add(counts: Map<string | object, number>, key: string | object, n: number): void {
  const total = (counts.get(key) ?? 0) + n;
  if (total <= 0) counts.delete(key);
  else counts.set(key, total);
}

function slotOf(scopeId: string, tag: Uint8Array): string {
  return `${scopeId}:${Buffer.from(tag.buffer, tag.byteOffset, tag.byteLength).toString('base64url')}`;
}

function scopeOfSlot(slot: string): string {
  return slot.slice(0, slot.indexOf(':'));
}
