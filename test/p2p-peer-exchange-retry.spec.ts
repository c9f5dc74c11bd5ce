import { expect } from 'chai';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { PeerExchange } from '../src/p2p/peer-exchange.js';
import { PeerSessions } from '../src/p2p/sessions.js';
import { RecordingLogger, waitFor } from './support/p2p-fixtures.js';

/**
 * Peer exchange on a busy machine: a dial to a peer heard of by exchange that times out is tried again (once its
 * address backoff has passed), so the fleet still becomes fully connected; a peer in session by then is not.
 */

const newPeerId = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));

describe('peer exchange: dials that failed', function () {
  this.timeout(60_000);

  it('dials a peer whose dial timed out again after the backoff, and not one that connected meanwhile', async () => {
    const [self, slow, meanwhile] = await Promise.all([newPeerId(), newPeerId(), newPeerId()]);
    const sessions = new PeerSessions();
    const dials = new Map<string, number>();
    const tracked: Array<Promise<unknown>> = [];
    let stopped = false;
    const exchange = new PeerExchange({
      selfId: self.toString(), sessions, isBanned: () => false, maxPeers: 64, delayMs: 10, dialTimeoutMs: 1_000,
      log: new RecordingLogger(), now: Date.now, addresses: () => [], announce: () => undefined, stopped: () => stopped,
      track: (promise) => tracked.push(promise),
      dial: async (targets: Multiaddr[]) => {
        const id = targets[0]!.getComponents().at(-1)!.value!;
        const n = (dials.get(id) ?? 0) + 1;
        dials.set(id, n);
        if (n === 1) throw new Error('The operation was aborted due to timeout');
        sessions.ensure(id === slow.toString() ? slow : meanwhile);
      },
    });
    try {
      exchange.exchange([
        { id: slow.toString(), addrs: ['/ip4/127.0.0.1/tcp/40001'] },
        { id: meanwhile.toString(), addrs: ['/ip4/127.0.0.1/tcp/40002'] },
      ]);
      await waitFor(() => dials.get(slow.toString()) === 1 && dials.get(meanwhile.toString()) === 1, 'the first dials', 10_000);
      // The other peer dialled this node meanwhile: it is in session.
      sessions.ensure(meanwhile);
      await waitFor(() => sessions.has(slow.toString()), 'the slow peer dialled again and connected', 30_000, 50);
      expect(dials.get(slow.toString())).to.equal(2);
      expect(dials.get(meanwhile.toString())).to.equal(1);
    } finally {
      stopped = true;
      exchange.stop();
      sessions.clear();
      await Promise.allSettled(tracked);
    }
  });
});
