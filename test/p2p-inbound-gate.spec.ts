import type { MultiaddrConnection } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { expect } from 'chai';
import { InboundGate } from '../src/p2p/inbound-gate.js';

/** A stand-in for a raw inbound connection: its remote address, and a close event the spec fires. */
function connection(addr: string): MultiaddrConnection & { close(): void } {
  const listeners: Array<() => void> = [];
  return {
    remoteAddr: multiaddr(addr),
    addEventListener: (_type: string, listener: () => void) => listeners.push(listener),
    close: () => listeners.splice(0).forEach((listener) => listener()),
  } as unknown as MultiaddrConnection & { close(): void };
}

describe('InboundGate (pending inbound connections per host)', () => {
  it('refuses a host\'s connections beyond its limit while they are pending, and lets them in again as they settle or close', () => {
    const gate = new InboundGate(2);
    const a = connection('/ip4/10.0.0.1/tcp/1001');
    const b = connection('/ip4/10.0.0.1/tcp/1002');
    expect(gate.deny(a)).to.equal(false);
    expect(gate.deny(b)).to.equal(false);
    expect(gate.deny(connection('/ip4/10.0.0.1/tcp/1003'))).to.equal(true);
    // Another host is unaffected.
    expect(gate.deny(connection('/ip4/10.0.0.2/tcp/1001'))).to.equal(false);
    gate.settled(a); // through the key exchange
    expect(gate.deny(connection('/ip4/10.0.0.1/tcp/1004'))).to.equal(false);
    b.close();
    b.close(); // idempotent
    gate.settled(b);
    expect(gate.deny(connection('/ip4/10.0.0.1/tcp/1005'))).to.equal(false);
    expect(gate.deny(connection('/ip4/10.0.0.1/tcp/1006'))).to.equal(true);
    expect(gate.refused).to.equal(2);
  });

  it('gives the allowed hosts (bootstrap peers) a limit of their own, still a limit', () => {
    const gate = new InboundGate(1, ['10.0.0.9'], 3);
    const results = Array.from({ length: 4 }, (_, i) => gate.deny(connection(`/ip4/10.0.0.9/tcp/${2000 + i}`)));
    expect(results).to.deep.equal([false, false, false, true]);
    expect(gate.deny(connection('/ip4/10.0.0.3/tcp/1'))).to.equal(false);
    expect(gate.deny(connection('/ip4/10.0.0.3/tcp/2'))).to.equal(true);
    expect(gate.pending).to.equal(4);
  });
});
