import { expect } from 'chai';
import type { Connection } from '@libp2p/interface';
import { surplusConnections } from '../src/p2p/one-connection.js';
import { tcpConnectionsOf } from '../support/tcp-connections.js';
import { forwarder, type Forwarder } from './support/forwarder.js';
import { removeTmpDirs, startNode, waitFor, type SpecNode } from './support/p2p-fixtures.js';

/**
 * One connection per pair of members (src/p2p/one-connection.ts): members that dial each other at once keep one
 * connection, the same one at both ends.
 */

const LOW = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const HIGH = '12D3KooWZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ';

let nextConnection = 0;
function connection(remote: string, direction: 'inbound' | 'outbound', opened: number, status = 'open'): Connection {
  return { id: `c${++nextConnection}`, remotePeer: { toString: () => remote }, direction, status, timeline: { open: opened } } as unknown as Connection;
}

describe('one connection per pair of members', function () {
  describe('which connection goes (both ends choose alike)', () => {
    it('keeps the connection the lower peer id dialled, at both ends of a simultaneous pair', () => {
      // LOW dialled c1 (outbound at LOW, inbound at HIGH); HIGH dialled c2.
      const lowSide = [connection(HIGH, 'outbound', 2), connection(HIGH, 'inbound', 1)];
      const highSide = [connection(LOW, 'inbound', 2), connection(LOW, 'outbound', 1)];
      expect(surplusConnections(LOW, lowSide)).to.deep.equal([lowSide[1]]);
      expect(surplusConnections(HIGH, highSide)).to.deep.equal([highSide[1]]);
    });

    it('never closes a lone connection, whoever dialled it, nor one that is not open', () => {
      expect(surplusConnections(LOW, [connection(HIGH, 'inbound', 1)])).to.deep.equal([]);
      expect(surplusConnections(HIGH, [connection(LOW, 'outbound', 1)])).to.deep.equal([]);
      expect(surplusConnections(LOW, [connection(HIGH, 'inbound', 1), connection(HIGH, 'outbound', 2, 'closing')])).to.deep.equal([]);
    });

    it('leaves duplicates in one direction to the end that dialled them, which keeps the oldest', () => {
      const dialler = [connection(LOW, 'outbound', 5), connection(LOW, 'outbound', 3)];
      expect(surplusConnections(HIGH, dialler)).to.deep.equal([dialler[0]]);
      expect(surplusConnections(LOW, [connection(HIGH, 'inbound', 5), connection(HIGH, 'inbound', 3)])).to.deep.equal([]);
    });
  });

  describe('five members whose bootstrap lists name each other, all dialling at once', function () {
    this.timeout(120_000);
    const nodes: SpecNode[] = [];
    const forwarders: Forwarder[] = [];

    before(function () {
      if (tcpConnectionsOf(process.pid, new Set()) === undefined) this.skip(); // counts sockets in Linux /proc
    });

    after(async () => {
      await Promise.all(nodes.splice(0).map((n) => n.network.stop()));
      for (const f of forwarders.splice(0)) f.close();
      removeTmpDirs();
    });

    it('settles with exactly one connection per pair (every pair was dialled from both ends)', async () => {
      // Each member is reached through a forwarder that holds the dials it accepts until every member listens: so
      // every member's bootstrap dials reach every other member at about the same time, whatever the start order.
      for (let i = 0; i < 5; i++) forwarders.push(await forwarder());
      const started = await Promise.all(forwarders.map((_, i) => startNode({
        p2p: { dialTimeoutMs: 60_000, bootstrapPeers: forwarders.filter((_, j) => j !== i).map((f) => `/ip4/127.0.0.1/tcp/${f.port}`) },
      })));
      nodes.push(...started);
      const ports = nodes.map((n) => n.network.stats().boundPort);
      forwarders.forEach((f, i) => f.release(ports[i]!));
      await waitFor(() => forwarders.every((f) => f.forwarded >= 4), 'every member dialled every other', 60_000, 50);
      // One accepting end per connection: a pair with two connections has two.
      const memberPorts = new Set(ports);
      let last = '';
      await waitFor(() => {
        const connections = tcpConnectionsOf(process.pid, memberPorts, true);
        const peers = nodes.map((n) => n.network.stats()).map((s) => `${s.connectedPeers}/${s.peers.length}`);
        last = `${connections} connections, peers ${peers.join(' ')}`;
        return connections === 10 && nodes.every((n) => n.network.stats().connectedPeers === 4 && n.network.stats().peers.length === 4);
      }, 'ten connections among five members, each with four peers', 60_000, 50).catch((err: Error) => {
        throw new Error(`${err.message}; last seen: ${last}`);
      });
    });
  });
});
