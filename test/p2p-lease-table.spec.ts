import { expect } from 'chai';
import { ENVELOPE_VERSION } from '../src/p2p/envelope.js';
import { LeaseTable, type LeaseTableInit, type LeaseWaiter } from '../src/p2p/lease.js';
import { waitFor } from '../support/wait.js';

/** The blind owner's table (lease.ts): one lease per key, waiters answered by the put, a dead holder's lease passed on. */

const SCOPE = '0123456789abcdef0123456789abcdef';
const TAG = new Uint8Array(32).fill(1);
const OTHER = new Uint8Array(32).fill(2);

function table(overrides: Partial<LeaseTableInit> = {}): LeaseTable {
  return new LeaseTable({
    maxEntries: 100, maxBytes: 1 << 20, maxEntryBytes: 1024, maxEntryTtlMs: 60_000, leaseMs: 60_000, unshareableMs: 60_000,
    maxLeases: 100, maxLeasesPerPeer: 10, maxBytesPerPeer: 1 << 20, maxWaiters: 10, ...overrides,
  });
}

/** A waiter that records what it was told. */
class Asker implements LeaseWaiter {
  readonly holder = {};
  constructor(readonly peer?: string) {}
  gone = false;
  readonly told: Array<{ kind: 'entry'; sealed: Uint8Array } | { kind: 'lease'; lease: number } | { kind: 'unshared' } | { kind: 'dropped' }> = [];
  alive(): boolean {
    return !this.gone;
  }
  entry(sealed: Uint8Array): void {
    this.told.push({ kind: 'entry', sealed });
  }
  granted(lease: number): void {
    this.told.push({ kind: 'lease', lease });
  }
  unshared(): void {
    this.told.push({ kind: 'unshared' });
  }
  dropped(): void {
    this.told.push({ kind: 'dropped' });
  }
  get lease(): number {
    const last = this.told.at(-1);
    if (last?.kind !== 'lease') throw new Error('no lease');
    return last.lease;
  }
}

/** An asker that runs `then` in the moment it is granted a lease (inside the table's own call). */
class OnGrant extends Asker {
  constructor(private readonly then: () => void) {
    super();
  }
  override granted(lease: number): void {
    super.granted(lease);
    this.then();
  }
}

/** Bytes laid out as a sealed entry/** Bytes laid out as a sealed entry (version byte, nonce, ciphertext, tag): the table cannot tell more. */
function sealedLike(n = 64, fill = 5): Uint8Array {
  const bytes = new Uint8Array(n).fill(fill);
  bytes[0] = ENVELOPE_VERSION;
  return bytes;
}

describe('LeaseTable (a blind owner\'s keys)', () => {
  it('gives one lease per key; the others wait and get the holder\'s put, which is kept for later askers', () => {
    const t = table();
    const [a, b, c, d] = [new Asker(), new Asker(), new Asker(), new Asker()];
    expect(t.ask(SCOPE, TAG, a)).to.equal('lease');
    expect(t.ask(SCOPE, TAG, b)).to.equal('wait');
    expect(t.ask(SCOPE, TAG, c)).to.equal('wait');
    expect(t.ask(SCOPE, OTHER, d)).to.equal('lease');
    expect(t.has(SCOPE, TAG) && t.knows(SCOPE)).to.equal(true);
    expect(t.put(a.holder, a.lease, sealedLike(), 30_000)).to.equal('kept');
    expect(b.told.map((x) => x.kind)).to.deep.equal(['entry']);
    expect(c.told.map((x) => x.kind)).to.deep.equal(['entry']);
    const later = new Asker();
    expect(t.ask(SCOPE, TAG, later)).to.equal('entry');
    expect(t.put(a.holder, a.lease, sealedLike(), 30_000), 'a second put of an ended lease').to.equal('unknown');
    t.stop();
  });

  it('passes a lease on when its holder releases it, is gone, or lets it expire; skips waiters that are gone', async () => {
    const t = table({ leaseMs: 50 });
    const [a, b, c, d] = [new Asker(), new Asker(), new Asker(), new Asker()];
    t.ask(SCOPE, TAG, a);
    t.ask(SCOPE, TAG, b);
    t.ask(SCOPE, TAG, c);
    t.ask(SCOPE, TAG, d);
    expect(t.release(a.holder, a.lease)).to.equal('released');
    expect(b.told.map((x) => x.kind)).to.deep.equal(['lease']);
    expect(t.release(a.holder, 0), 'a release by someone else').to.equal('unknown');
    c.gone = true;
    t.holderGone(b.holder);
    expect(c.told.map((x) => x.kind), 'a waiter gone is skipped (and told)').to.deep.equal(['dropped']);
    expect(d.told.map((x) => x.kind)).to.deep.equal(['lease']);
    await waitFor(() => t.leases === 0, 'the last lease to expire', 10_000, 5);
    expect(t.has(SCOPE, TAG)).to.equal(false);
    t.stop();
  });

  it('refuses a put for a lease the holder does not hold, a put that is not a sealed entry, and an oversized put: the waiters never get them', () => {
    const t = table();
    const [a, b] = [new Asker(), new Asker()];
    t.ask(SCOPE, TAG, a);
    t.ask(SCOPE, TAG, b);
    expect(t.put(b.holder, a.lease, sealedLike(), 1_000), 'a waiter putting under the holder\'s lease').to.equal('unknown');
    expect(t.put(a.holder, a.lease, new Uint8Array(64).fill(7), 1_000)).to.equal('garbage');
    expect(b.told.map((x) => x.kind), 'the lease passed on, nothing relayed').to.deep.equal(['lease']);
    const c = new Asker();
    t.ask(SCOPE, TAG, c);
    expect(t.put(b.holder, b.lease, sealedLike(2048), 1_000)).to.equal('oversize');
    expect(c.told.map((x) => x.kind)).to.deep.equal(['lease']);
    t.stop();
  });

  it('is bounded: waiters per lease, leases per holder and in all, bytes kept', () => {
    const t = table({ maxWaiters: 1, maxLeasesPerPeer: 2, maxLeases: 3, maxBytes: 100, maxEntryBytes: 100 });
    const a = new Asker();
    expect(t.ask(SCOPE, TAG, a)).to.equal('lease');
    expect(t.ask(SCOPE, TAG, new Asker())).to.equal('wait');
    expect(t.ask(SCOPE, TAG, new Asker())).to.equal('busy');
    expect(t.ask(SCOPE, OTHER, a)).to.equal('lease');
    expect(t.ask(SCOPE, new Uint8Array(32).fill(3), a), 'a third lease for one holder').to.equal('busy');
    expect(t.ask(SCOPE, new Uint8Array(32).fill(3), new Asker())).to.equal('lease');
    expect(t.ask(SCOPE, new Uint8Array(32).fill(4), new Asker()), 'a fourth lease in all').to.equal('busy');
    const [first, second] = (a.told as Array<{ lease: number }>).map((x) => x.lease) as [number, number];
    t.put(a.holder, first, sealedLike(80), 1_000);
    t.put(a.holder, second, sealedLike(80), 1_000);
    expect([t.has(SCOPE, TAG), t.has(SCOPE, OTHER)], 'the least recently used entry dropped for the bytes bound').to.deep.equal([false, true]);
    t.stop();
  });

  it('gives a waiter that went away no place in the queue: a live asker waits where it would have been refused', () => {
    const t = table({ maxWaiters: 2 });
    const holder = new Asker();
    const [gone1, gone2, live] = [new Asker(), new Asker(), new Asker()];
    expect(t.ask(SCOPE, TAG, holder)).to.equal('lease');
    expect(t.ask(SCOPE, TAG, gone1)).to.equal('wait');
    expect(t.ask(SCOPE, TAG, gone2)).to.equal('wait');
    gone1.gone = gone2.gone = true;
    expect(t.ask(SCOPE, TAG, live), 'a live asker behind two gone ones').to.equal('wait');
    expect([gone1.told, gone2.told].map((told) => told.map((x) => x.kind)), 'the gone ones are dropped').to.deep.equal([['dropped'], ['dropped']]);
    t.put(holder.holder, holder.lease, sealedLike(), 30_000);
    expect(live.told.map((x) => x.kind)).to.deep.equal(['entry']);
    t.stop();
  });

  it('takes a late put or release from a holder whose lease passed on (a slow holder, not a cheat): never "unknown", the put answers the waiters', async () => {
    // Former leases are remembered for leaseMs (20 ms here) from the moment theirs ran out: everything below happens
    // in that moment (the next holder's grant, run by the expiry's own timer), so a busy machine, which may wake
    // this spec long after the expiry, cannot make the memory run out first.
    const t = table({ leaseMs: 20 });
    const [slow, waiting] = [new Asker(), new Asker()];
    expect(t.ask(SCOPE, TAG, slow)).to.equal('lease');
    const atPassOn = new Promise<{ waitingAsk: string; latePut: string; waitingTold: string[]; keptAsk: string; nextPut: string; nextRelease: string }>((resolve) => {
      const next = new OnGrant(() => {
        const waitingAsk = t.ask(SCOPE, TAG, waiting);
        const latePut = t.put(slow.holder, slow.lease, sealedLike(), 30_000);
        const waitingTold = waiting.told.map((x) => x.kind);
        const keptAsk = t.ask(SCOPE, TAG, new Asker());
        const nextPut = t.put(next.holder, next.lease, sealedLike(), 30_000);
        const nextRelease = t.release(next.holder, next.lease);
        resolve({ waitingAsk, latePut, waitingTold, keptAsk, nextPut, nextRelease });
      });
      t.ask(SCOPE, TAG, next);
    });
    const seen = await atPassOn;
    expect(seen.waitingAsk).to.equal('wait');
    expect(seen.latePut, 'the slow holder\'s late put (the owner strikes "unknown")').to.equal('late');
    expect(seen.waitingTold, 'the late put answers the waiters of the lease out now').to.deep.equal(['entry']);
    expect(seen.keptAsk, 'and is kept').to.equal('entry');
    expect(seen.nextPut, 'the next holder\'s put, ended by the late one').to.equal('late');
    expect(seen.nextRelease, 'remembered once').to.equal('unknown');
    // A release that comes late, from a holder whose lease expired with nobody waiting (checked when that expiry
    // hands the key to an asker that came meanwhile), and a put for that lease by someone else.
    const other = new Asker();
    t.ask(SCOPE, OTHER, other);
    const atExpiry = new Promise<{ lateRelease: string; strangerPut: string }>((resolve) => {
      t.ask(SCOPE, OTHER, new OnGrant(() => resolve({
        lateRelease: t.release(other.holder, other.lease),
        strangerPut: t.put(new Asker().holder, other.lease, sealedLike(), 30_000),
      })));
    });
    const late = await atExpiry;
    expect(late.lateRelease, 'a late release').to.equal('late');
    expect(late.strangerPut, 'a put by someone else').to.equal('unknown');
    t.stop();
  });

  it('lets every waiter go at once when the holder releases the key as unshareable, and answers later asks "unshared" (no queue of fetches)', () => {
    const t = table();
    const [a, b, c] = [new Asker(), new Asker(), new Asker()];
    t.ask(SCOPE, TAG, a);
    t.ask(SCOPE, TAG, b);
    t.ask(SCOPE, TAG, c);
    expect(t.release(a.holder, a.lease, true)).to.equal('released');
    expect([b, c].map((x) => x.told.map((y) => y.kind)), 'each waiter fetches it itself, now').to.deep.equal([['unshared'], ['unshared']]);
    expect(t.ask(SCOPE, TAG, new Asker()), 'a later ask').to.equal('unshared');
    expect(t.leases).to.equal(0);
    t.stop();
  });

  it('drops a kept entry an asker refused (refresh), so the key is leased out again', () => {
    const t = table();
    const a = new Asker();
    t.ask(SCOPE, TAG, a);
    t.put(a.holder, a.lease, sealedLike(), 60_000);
    t.drop(SCOPE, TAG);
    expect(t.ask(SCOPE, TAG, new Asker())).to.equal('lease');
    t.stop();
  });

  it('caps leases and kept bytes per peer, not per stream: one member cannot fill the table or evict the others\' entries', () => {
    const t = table({ maxLeases: 100, maxLeasesPerPeer: 4, maxBytes: 1024, maxBytesPerPeer: 256, maxEntryBytes: 128 });
    const honest = new Asker('honest');
    t.ask(SCOPE, TAG, honest);
    expect(t.put(honest.holder, honest.lease, sealedLike(128), 60_000)).to.equal('kept');
    const streams = Array.from({ length: 8 }, () => new Asker('hostile')); // one member, many streams
    const outcomes = streams.map((s, i) => t.ask(SCOPE, new Uint8Array(32).fill(100 + i), s));
    expect(outcomes.filter((o) => o === 'lease'), 'leases to one member over all its streams').to.have.length(4);
    expect(t.ask(SCOPE, OTHER, new Asker('third')), 'a lease to another member').to.equal('lease');
    for (const s of streams.filter((x) => x.told.length > 0)) t.put(s.holder, s.lease, sealedLike(128), 60_000);
    expect(t.has(SCOPE, TAG), 'the honest entry is still kept').to.equal(true);
    t.stop();
  });

  it('tells every waiter when it stops, and keeps nothing', () => {
    const t = table();
    const [a, b] = [new Asker(), new Asker()];
    t.ask(SCOPE, TAG, a);
    t.ask(SCOPE, TAG, b);
    t.stop();
    expect(b.told.map((x) => x.kind)).to.deep.equal(['dropped']);
    expect(t.leases).to.equal(0);
    expect(t.knows(SCOPE)).to.equal(false);
  });
});
