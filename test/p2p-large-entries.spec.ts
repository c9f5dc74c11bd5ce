import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import { ANONYMOUS_SCOPE, scopeIdOf } from '../src/cache/scope.js';
import { sealEntry } from '../src/p2p/envelope.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { addressOf, entryFor, removeTmpDirs, requestKey, startNode, UpstreamCounter, waitFor, type SpecNode } from './support/p2p-fixtures.js';
import { ANONYMOUS_KEY, HostilePeer } from './support/p2p-hostile.js';

/**
 * Large entries over the fleet (serving.ts, transfers.ts): entries above `maxFrameBytes` are shared in `part`
 * frames, and a large answer does not hold up small answers on the same stream. Real libp2p nodes on loopback.
 */

const TOKEN = `test_large${'L'.repeat(30)}`;
const MiB = 1024 * 1024;

function bigEntry(bytes: number, now = Date.now()): CacheEntry {
  const body = Buffer.from(randomBytes(bytes));
  return { body, digest: sha256Hex(body), storedAt: now, expiresAt: now + 60_000, status: 200, headers: { 'content-type': 'application/octet-stream' } };
}

/** An upstream whose answers are `bytes` long. */
class BigUpstream extends UpstreamCounter {
  constructor(readonly bytes: number) {
    super();
  }

  override async fetch(key: string): Promise<CacheEntry> {
    await super.fetch(key);
    return bigEntry(this.bytes);
  }
}

/** Keys of `scopeId` that `owner` owns among `ids`. */
function keysOwnedBy(owner: string, ids: string[], scopeId: string, count: number, tag: string): string[] {
  const keys: string[] = [];
  for (let n = 0; keys.length < count; n++) {
    const key = requestKey(scopeId, `${tag}-${n}`);
    if (rendezvousOwner(key, ids) === owner) keys.push(key);
  }
  return keys;
}

describe('large entries over the fleet', function () {
  this.timeout(60_000);
  const nodes: SpecNode[] = [];
  let hostile: HostilePeer | undefined;

  afterEach(async () => {
    await Promise.all([...nodes.splice(0).map((n) => n.network.stop()), hostile?.stop()]);
    hostile = undefined;
    removeTmpDirs();
  });

  async function pair(upstream: UpstreamCounter): Promise<[SpecNode, SpecNode]> {
    const a = await startNode({ upstream, tokens: [TOKEN] });
    nodes.push(a);
    const b = await startNode({ upstream, tokens: [TOKEN], p2p: { bootstrapPeers: [addressOf(a)] } });
    nodes.push(b);
    await waitFor(() => [a, b].every((n) => n.network.stats().peers.some((p) => p.scopes >= 2)), 'both to prove the scope', 40_000);
    return [a, b];
  }

  it('shares an entry above maxFrameBytes: a 6 MiB entry owned by A, read on B, costs one upstream request', async () => {
    const upstream = new BigUpstream(6 * MiB);
    const [a, b] = await pair(upstream);
    const [key] = keysOwnedBy(a.network.peerId, [a.network.peerId, b.network.peerId], scopeIdOf(TOKEN), 1, 'big');
    const entry = await b.backend.get(key!, scopeIdOf(TOKEN));
    expect(entry.body.byteLength).to.equal(6 * MiB);
    expect(sha256Hex(entry.body)).to.equal(entry.digest);
    expect(upstream.calls, 'upstream requests').to.equal(1);
    expect(b.backend.sources).to.deep.include({ peer: 1, upstream: 0 });
    expect(b.network.stats().entriesReceived).to.equal(1);
    expect(a.network.stats().requestsServed).to.equal(1);
  });

  it('answers a small hit before a large answer asked together with it is complete', async () => {
    const [a, b] = await pair(new UpstreamCounter());
    const scope = scopeIdOf(TOKEN);
    const [bigKey, smallKey] = keysOwnedBy(a.network.peerId, [a.network.peerId, b.network.peerId], scope, 2, 'mixed');
    a.backend.store.set(bigKey!, bigEntry(2 * MiB));
    a.backend.store.set(smallKey!, entryFor(smallKey!));
    const order: string[] = [];
    // Asked in one turn: both gets leave in one write and the owner handles them in one turn, the large one first.
    const big = b.network.fetch(bigKey!, scope).then((answer) => {
      order.push('big');
      return answer;
    });
    const small = b.network.fetch(smallKey!, scope).then((answer) => {
      order.push('small');
      return answer;
    });
    const [bigAnswer, smallAnswer] = await Promise.all([big, small]);
    expect(order, 'the order the answers arrived in').to.deep.equal(['small', 'big']);
    expect(smallAnswer.kind).to.equal('entry');
    expect(bigAnswer.kind).to.equal('entry');
    if (bigAnswer.kind === 'entry') expect(bigAnswer.entry.body.byteLength).to.equal(2 * MiB);
  });

  it('answers `miss too-large` above maxPartedEntryBytes (the asker goes upstream)', async () => {
    const upstream = new BigUpstream(2 * MiB);
    const a = await startNode({ upstream, tokens: [TOKEN], limits: { maxPartedEntryBytes: MiB } });
    nodes.push(a);
    const b = await startNode({ upstream, tokens: [TOKEN], p2p: { bootstrapPeers: [addressOf(a)] } });
    nodes.push(b);
    await waitFor(() => [a, b].every((n) => n.network.stats().peers.some((p) => p.scopes >= 2)), 'both to prove the scope', 40_000);
    const [key] = keysOwnedBy(a.network.peerId, [a.network.peerId, b.network.peerId], scopeIdOf(TOKEN), 1, 'huge');
    expect(await b.network.fetch(key!, scopeIdOf(TOKEN))).to.deep.equal({ kind: 'unavailable', reason: 'owner miss (too-large)' });
  });

  describe('from a hostile owner', () => {
    let victim: SpecNode;

    beforeEach(async () => {
      victim = await startNode({ limits: { maxStrikes: 100, maxPartedEntryBytes: 8 * MiB } });
      nodes.push(victim);
      hostile = await HostilePeer.start();
      await hostile.connect(addressOf(victim));
      await waitFor(() => victim.network.stats().peers.some((p) => p.id === hostile!.peerId && p.scopes === 1), 'the victim to see the hostile peer', 40_000);
    });

    it('strikes a peer for parts out of order, an oversize announcement or garbage, and uses none of it', async () => {
      const ids = [victim.network.peerId, hostile!.peerId];
      const keys = keysOwnedBy(hostile!.peerId, ids, ANONYMOUS_SCOPE, 4, 'parts');
      const piece = new Uint8Array(randomBytes(1024));
      const cases: Array<{ answer: (id: number, key: string) => void | Promise<void>; reason: string }> = [
        // The first piece must start at 0.
        { answer: (id) => hostile!.sendAsOwner(victim.network.peerId, { type: 'part', id, size: 4096, offset: 1024, bytes: piece }), reason: 'owner error' },
        // Above the victim's limit.
        { answer: (id) => hostile!.sendAsOwner(victim.network.peerId, { type: 'part', id, size: 9 * MiB, offset: 0, bytes: piece }), reason: 'owner error' },
        // A gap between pieces.
        {
          answer: async (id) => {
            await hostile!.sendAsOwner(victim.network.peerId, { type: 'part', id, size: 4096, offset: 0, bytes: piece });
            await hostile!.sendAsOwner(victim.network.peerId, { type: 'part', id, size: 4096, offset: 2048, bytes: piece });
          },
          reason: 'owner error',
        },
        // Complete, but garbage: it does not open under the scope's key.
        {
          answer: async (id) => {
            await hostile!.sendAsOwner(victim.network.peerId, { type: 'part', id, size: 2048, offset: 0, bytes: piece });
            await hostile!.sendAsOwner(victim.network.peerId, { type: 'part', id, size: 2048, offset: 1024, bytes: piece });
          },
          reason: 'rejected the owner\'s entry (decrypt)',
        },
      ];
      for (const [i, { answer, reason }] of cases.entries()) {
        hostile!.answer = (get) => {
          void answer(get.id, get.key);
          return undefined;
        };
        const result = await victim.network.fetch(keys[i]!, ANONYMOUS_SCOPE);
        expect(result.kind, reason).to.equal('unavailable');
        if (result.kind === 'unavailable') expect(result.reason).to.include(reason);
      }
      expect(victim.network.stats().rejected).to.deep.equal({ frame: 2, oversize: 1, decrypt: 1 });
      expect(victim.network.stats().entriesReceived).to.equal(0);
      // The stream still works: a well-formed large answer in parts is taken.
      const [good] = keysOwnedBy(hostile!.peerId, ids, ANONYMOUS_SCOPE, 1, 'good');
      const sealed = sealEntry(bigEntry(600 * 1024), good!, ANONYMOUS_KEY);
      hostile!.answer = (get) => {
        void (async () => {
          for (let offset = 0; offset < sealed.byteLength; offset += 256 * 1024) {
            const bytes = sealed.subarray(offset, Math.min(sealed.byteLength, offset + 256 * 1024));
            await hostile!.sendAsOwner(victim.network.peerId, { type: 'part', id: get.id, size: sealed.byteLength, offset, bytes });
          }
        })();
        return undefined;
      };
      const result = await victim.network.fetch(good!, ANONYMOUS_SCOPE);
      expect(result.kind).to.equal('entry');
    });
  });
});
