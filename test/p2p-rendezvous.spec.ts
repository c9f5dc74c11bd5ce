import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { rendezvousOwner, rendezvousWeight, useRendezvousHashImplementation } from '../src/p2p/rendezvous.js';
import { loadSodium } from '../src/p2p/sodium.js';

const MASK64 = (1n << 64n) - 1n;

/** The weight as docs/p2p-protocol.md states it, in BigInt arithmetic: an implementation apart from the module's. */
function referenceWeight(peerId: string, key: string): bigint {
  const prefix = (text: string) => createHash('sha256').update(text, 'utf8').digest().readBigUInt64BE(0);
  let h = prefix(key) ^ prefix(peerId);
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & MASK64;
  h ^= h >> 33n;
  h = (h * 0xc4ceb9fe1a85ec53n) & MASK64;
  h ^= h >> 33n;
  return h;
}

describe('rendezvousOwner (highest-random-weight hashing)', () => {
  const nodes = ['12D3KooWAlpha', '12D3KooWBravo', '12D3KooWCharlie'];
  const keys = Array.from({ length: 3000 }, (_, i) => `anonymous GET https://api.github.com/repos/o/r${i} application/vnd.github+json`);

  it('is stable: the same key and candidates give the same owner, in any order', () => {
    for (const key of keys.slice(0, 200)) {
      const owner = rendezvousOwner(key, nodes);
      expect(rendezvousOwner(key, [...nodes].reverse())).to.equal(owner);
      expect(rendezvousOwner(key, [nodes[1]!, nodes[2]!, nodes[0]!])).to.equal(owner);
    }
  });

  it('spreads 3000 keys over 3 nodes within ±15% of an even share', () => {
    const counts = new Map<string, number>();
    for (const key of keys) {
      const owner = rendezvousOwner(key, nodes)!;
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    for (const node of nodes) expect(counts.get(node) ?? 0).to.be.within(1000 * 0.85, 1000 * 1.15);
  });

  it('moves only the removed node\'s keys when a node leaves, and only the new node\'s keys when one joins', () => {
    const before = new Map(keys.map((key) => [key, rendezvousOwner(key, nodes)]));
    const without = nodes.filter((n) => n !== '12D3KooWBravo');
    for (const key of keys) {
      const owner = rendezvousOwner(key, without);
      if (before.get(key) !== '12D3KooWBravo') expect(owner).to.equal(before.get(key));
    }
    const withDelta = [...nodes, '12D3KooWDelta'];
    let moved = 0;
    for (const key of keys) {
      const owner = rendezvousOwner(key, withDelta);
      if (owner !== before.get(key)) {
        expect(owner).to.equal('12D3KooWDelta');
        moved++;
      }
    }
    expect(moved).to.be.within(750 * 0.85, 750 * 1.15);
  });

  for (const implementation of ['auto', 'node', 'sodium'] as const) {
    it(`weighs fmix64(sha256(key)[0..8] xor sha256(peerId)[0..8]), as the protocol document states, on 20,000 pairs (${implementation})`, function () {
      if (implementation === 'sodium' && loadSodium() === null) this.skip();
      const previous = useRendezvousHashImplementation(implementation);
      try {
        const peers = ['12D3KooWPeer', '', 'é-peer', ...Array.from({ length: 17 }, (_, i) => `12D3KooW${'x'.repeat(i * 7)}${i}`)];
        // Keys of every length around SHA-256's block, and one with characters beyond ASCII.
        for (const key of [...keys.slice(0, 1000), ...Array.from({ length: 140 }, (_, i) => `GET https://api.github.com/${'k'.repeat(i)}`), 'GET é/ü/😀']) {
          for (const peer of peers) expect(rendezvousWeight(peer, key), `${peer} ${key}`).to.equal(referenceWeight(peer, key));
        }
        // The values docs/p2p-protocol.md ("Ownership") gives other implementations to check against.
        expect(rendezvousWeight('12D3KooWAlpha', keys[0]!).toString(16)).to.equal('9ffad240ce213b7b');
        expect(rendezvousWeight('12D3KooWBravo', keys[0]!).toString(16)).to.equal('f8f07287043c83bd');
      } finally {
        useRendezvousHashImplementation(previous);
      }
    });
  }

  it('picks the candidate of the highest weight, the smaller id on a tie', () => {
    const many = Array.from({ length: 64 }, (_, i) => `12D3KooWMember${i}`);
    for (const key of keys.slice(0, 300)) {
      const weights = many.map((id) => [id, referenceWeight(id, key)] as const);
      const top = weights.reduce((a, b) => (b[1] > a[1] || (b[1] === a[1] && b[0] < a[0]) ? b : a));
      expect(rendezvousOwner(key, many)).to.equal(top[0]);
    }
    // The same id twice is a tie with itself: still that id.
    expect(rendezvousOwner(keys[0]!, ['12D3KooWSame', '12D3KooWSame'])).to.equal('12D3KooWSame');
  });

  it('gives undefined without candidates and the only candidate otherwise', () => {
    expect(rendezvousOwner('k', [])).to.equal(undefined);
    expect(rendezvousOwner('k', ['solo'])).to.equal('solo');
  });
});
