import { LRUCache } from 'lru-cache';
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
 *   gone (`holderGone`: the stream closed), or `leaseMs` after it was granted. Ended without an entry, it passes to
 *   the next waiter still alive (so a dead holder costs one more fetch, not one per waiter); with none, it ends.
 * - Only the holder can end its lease: a `put` or `release` names the lease's number and must come on the stream
 *   it went to; anything else is 'unknown' (the caller strikes it). A `put` whose bytes are not a sealed entry of
 *   envelope.ts's layout, or longer than `maxEntryBytes`, is refused ('garbage', 'oversize') and ends the lease
 *   as a release: its waiters never get those bytes. Bytes that look right but do not open are refused by each
 *   asker (it verifies everything, envelope.ts): this owner can neither read nor check them.
 * - Bounded: at most `maxEntries` sealed entries and `maxBytes` bytes of them (least recently used dropped), each
 *   kept at most `maxEntryTtlMs` and never past the TTL its holder stated; at most `maxLeases` leases out in all
 *   and `maxLeasesPerHolder` per holder; at most `maxWaiters` waiters per lease. `stop` drops everything and
 *   tells every waiter (`dropped`).
 */

/** Someone asking for a key through this table: an asker's `get` on a stream, or this node's own load. */
export interface LeaseWaiter {
  /** Where a lease given to it goes (the asker's stream, or a token of this node): `put`/`release` must come from it. */
  readonly holder: object;
  /** Whether it still wants an answer (its stream is open, it did not give up). */
  alive(): boolean;
  /** The key's sealed entry arrived: answer with it. */
  entry(sealed: Uint8Array): void;
  /** The key's lease is this waiter's now: it fetches the key and ends lease `lease`. */
  granted(lease: number): void;
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
  readonly maxLeases: number;
  readonly maxLeasesPerHolder: number;
  readonly maxWaiters: number;
}

interface Lease {
  readonly slot: string;
  holder: object;
  number: number;
  timer: NodeJS.Timeout | undefined;
  readonly waiters: LeaseWaiter[];
}

export type AskOutcome = 'entry' | 'lease' | 'wait' | 'busy';
export type EndOutcome = 'kept' | 'released' | 'unknown' | 'garbage' | 'oversize';

/** Smallest sealed entry: version byte, nonce, tag (envelope.ts). */
const MIN_SEALED_BYTES = 1 + 12 + 16;
const ID_SPACE = 0x1_0000_0000;

export class LeaseTable {
  readonly #init: LeaseTableInit;
  readonly #entries: LRUCache<string, Uint8Array>;
  /** Lease out per slot (scope id and tag). */
  readonly #leases = new Map<string, Lease>();
  /** Leases out per holder, by number. */
  readonly #byHolder = new Map<object, Map<number, Lease>>();
  /** Slots per scope (held entries or leases out), so a node that never served blind skips the tag. */
  readonly #scopes = new Map<string, number>();
  #nextNumber = 0;

  constructor(init: LeaseTableInit) {
    this.#init = init;
    this.#entries = new LRUCache<string, Uint8Array>({
      max: init.maxEntries, maxSize: init.maxBytes, sizeCalculation: (sealed) => Math.max(1, sealed.byteLength),
      ttl: init.maxEntryTtlMs, ttlAutopurge: false,
      dispose: (_value, slot) => this.#unscope(slot),
    });
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

  /** Leases out (for stats and tests). */
  get leases(): number {
    return this.#leases.size;
  }

  /** See the module guarantee. `waiter` is answered in this call for 'entry' and 'lease', later for 'wait', never for 'busy'. */
  ask(scopeId: string, tag: Uint8Array, waiter: LeaseWaiter): AskOutcome {
    const slot = slotOf(scopeId, tag);
    const sealed = this.#entries.get(slot);
    if (sealed !== undefined) {
      waiter.entry(sealed);
      return 'entry';
    }
    const lease = this.#leases.get(slot);
    if (lease !== undefined) {
      if (lease.waiters.length >= this.#init.maxWaiters) return 'busy';
      lease.waiters.push(waiter);
      return 'wait';
    }
    if (this.#leases.size >= this.#init.maxLeases || (this.#byHolder.get(waiter.holder)?.size ?? 0) >= this.#init.maxLeasesPerHolder) return 'busy';
    const fresh: Lease = { slot, holder: waiter.holder, number: 0, timer: undefined, waiters: [] };
    this.#leases.set(slot, fresh);
    this.#scope(slot);
    this.#grant(fresh, waiter);
    return 'lease';
  }

  /** The holder's sealed entry for lease `number`, fresh for `ttlMs`. See the module guarantee. */
  put(holder: object, number: number, sealed: Uint8Array, ttlMs: number): EndOutcome {
    const lease = this.#byHolder.get(holder)?.get(number);
    if (lease === undefined) return 'unknown';
    if (sealed.byteLength > this.#init.maxEntryBytes) {
      this.#passOn(lease);
      return 'oversize';
    }
    if (sealed.byteLength < MIN_SEALED_BYTES || sealed[0] !== ENVELOPE_VERSION) {
      this.#passOn(lease);
      return 'garbage';
    }
    const kept = sealed.slice(); // never a view of the received frame
    this.#end(lease);
    const ttl = Math.min(ttlMs, this.#init.maxEntryTtlMs);
    if (ttl > 0) {
      this.#scope(lease.slot);
      this.#entries.set(lease.slot, kept, { ttl });
      if (!this.#entries.has(lease.slot)) this.#unscope(lease.slot); // too large for the budget: not kept
    }
    for (const waiter of lease.waiters) {
      if (waiter.alive()) waiter.entry(kept);
      else waiter.dropped();
    }
    return 'kept';
  }

  /** The holder has nothing to put under lease `number`: it passes on. 'unknown' when it holds no such lease. */
  release(holder: object, number: number): EndOutcome {
    const lease = this.#byHolder.get(holder)?.get(number);
    if (lease === undefined) return 'unknown';
    this.#passOn(lease);
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
    this.#entries.clear();
    this.#scopes.clear();
    for (const waiter of waiters) waiter.dropped();
  }

  #grant(lease: Lease, waiter: LeaseWaiter): void {
    const number = this.#nextNumber;
    this.#nextNumber = (number + 1) % ID_SPACE;
    lease.holder = waiter.holder;
    lease.number = number;
    let held = this.#byHolder.get(waiter.holder);
    if (held === undefined) {
      held = new Map();
      this.#byHolder.set(waiter.holder, held);
    }
    held.set(number, lease);
    lease.timer = setTimeout(() => this.#passOn(lease), this.#init.leaseMs);
    lease.timer.unref();
    waiter.granted(number);
  }

  /** The lease ended without an entry: the next waiter still alive gets it; with none, it ends. */
  #passOn(lease: Lease): void {
    this.#end(lease);
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

  /** Takes the lease out of the tables (its waiters stay on it, for the caller). */
  #end(lease: Lease): void {
    clearTimeout(lease.timer);
    lease.timer = undefined;
    const held = this.#byHolder.get(lease.holder);
    if (held?.get(lease.number) === lease) {
      held.delete(lease.number);
      if (held.size === 0) this.#byHolder.delete(lease.holder);
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

function slotOf(scopeId: string, tag: Uint8Array): string {
  return `${scopeId}:${Buffer.from(tag.buffer, tag.byteOffset, tag.byteLength).toString('base64url')}`;
}

function scopeOfSlot(slot: string): string {
  return slot.slice(0, slot.indexOf(':'));
}
