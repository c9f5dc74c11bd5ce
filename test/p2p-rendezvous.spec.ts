import { expect } from 'chai';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';

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

  it('gives undefined without candidates and the only candidate otherwise', () => {
    expect(rendezvousOwner('k', [])).to.equal(undefined);
    expect(rendezvousOwner('k', ['solo'])).to.equal('solo');
  });
});
