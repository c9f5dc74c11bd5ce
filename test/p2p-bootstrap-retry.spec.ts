import { expect } from 'chai';
import { forwarder, type Forwarder } from './support/forwarder.js';
import { fullyConnected, removeTmpDirs, startNode, waitFor, type SpecNode } from './support/p2p-fixtures.js';

/**
 * A bootstrap dial that fails at start is tried again (host.ts): members started together may dial a peer before
 * it listens, or time out on a busy machine; a member named by address only (no /p2p/ id, so no rejoin timer)
 * that is never dialled back would otherwise stay alone. The failure is forced, not left to timing: the address
 * given is a forwarder that closes the first connection it accepts and passes the next ones on.
 */
describe('bootstrap dials at start', function () {
  this.timeout(120_000);
  const nodes: SpecNode[] = [];
  const forwarders: Forwarder[] = [];

  after(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.network.stop()));
    for (const f of forwarders.splice(0)) f.close();
    removeTmpDirs();
  });

  it('a first dial that failed is tried again: the member joins a peer that never dials it', async () => {
    const peer = await startNode(); // no bootstrap peers: it never dials
    nodes.push(peer);
    const front = await forwarder({ dropFirst: 1 });
    forwarders.push(front);
    front.release(peer.network.stats().boundPort);
    const member = await startNode({ p2p: { bootstrapPeers: [`/ip4/127.0.0.1/tcp/${front.port}`] } });
    nodes.push(member);
    await waitFor(() => member.logger.warnings.some((w) => w.startsWith('could not reach bootstrap peer')), 'the first dial to fail', 60_000);
    await waitFor(() => fullyConnected([member, peer], 0), 'the member in session with the peer', 60_000);
    expect(front.forwarded, 'dials passed on after the dropped one').to.be.at.least(1);
  });
});
