import '../src/polyfills.js';
import { createRequire } from 'node:module';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { ConnectionProtector, Libp2p } from '@libp2p/interface';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { expect } from 'chai';
import { createLibp2p } from 'libp2p';
import { swarmKeyOf } from '../src/p2p/fleet-keys.js';
import { decodeSwarmKey, fleetPrivateNetwork, pnetCipher, PrivateNetworkError, type PnetCipher } from '../src/p2p/private-network.js';
import { echoing, exchange } from './support/libp2p-echo.js';

/**
 * The fleet's private network (private-network.ts) speaks pnet: each of its ciphers, the native one (libsodium)
 * and the guarded wasm one, exchanges messages with a stock `preSharedKey` node of @libp2p/pnet in both
 * directions, over real libp2p nodes on loopback (TCP + pnet + noise + yamux). A node with another key never
 * gets a connection. The native cipher is the default where sodium-native loads, and its state is wiped when
 * the connection closes.
 */

const PROTOCOL = '/github-cache-spec/pnet-interop/1.0.0';
const SECRET = 'spec-pnet-interop-secret-0123456789abcdef';

interface SodiumFinal { crypto_stream_xor_final(state: Uint8Array): void }

function node(protector: () => ConnectionProtector): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ enableKeepAlive: false })],
    connectionProtector: protector,
    connectionMonitor: { enabled: false },
  });
}

describe('the private network speaks pnet (native and wasm ciphers)', function () {
  this.timeout(60_000);
  let nodes: Libp2p[] = [];

  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    nodes = [];
  });

  it('uses the native cipher by default where sodium-native is installed', () => {
    // sodium-native is an optional dependency in the lockfile, with a prebuild for this platform.
    expect(() => createRequire(import.meta.url).resolve('sodium-native')).not.to.throw();
    expect(pnetCipher()).to.equal('native');
  });

  for (const cipher of ['native', 'wasm'] as const satisfies readonly PnetCipher[]) {
    for (const dialer of ['fleet', 'stock'] as const) {
      it(`exchanges messages with a stock @libp2p/pnet node, the ${dialer} node dialing (${cipher})`, async () => {
        const fleet = await node(fleetPrivateNetwork(swarmKeyOf(SECRET), { cipher }));
        const stock = await node(preSharedKey({ psk: swarmKeyOf(SECRET) }));
        nodes = [fleet, stock];
        await Promise.all(nodes.map((n) => echoing(n, PROTOCOL)));
        if (dialer === 'fleet') await exchange(fleet, stock, PROTOCOL);
        else await exchange(stock, fleet, PROTOCOL);
      });
    }
  }

  it('exchanges messages between a native and a wasm member', async () => {
    const native = await node(fleetPrivateNetwork(swarmKeyOf(SECRET), { cipher: 'native' }));
    const wasm = await node(fleetPrivateNetwork(swarmKeyOf(SECRET), { cipher: 'wasm' }));
    nodes = [native, wasm];
    await Promise.all(nodes.map((n) => echoing(n, PROTOCOL)));
    await exchange(native, wasm, PROTOCOL);
    await exchange(wasm, native, PROTOCOL);
  });

  for (const cipher of ['native', 'wasm'] as const) {
    it(`gives no connection to a node with another key (${cipher})`, async () => {
      const fleet = await node(fleetPrivateNetwork(swarmKeyOf(SECRET), { cipher }));
      const outsider = await node(preSharedKey({ psk: swarmKeyOf(`${SECRET}-other`) }));
      nodes = [fleet, outsider];
      await Promise.all(nodes.map((n) => echoing(n, PROTOCOL)));
      let failed: unknown;
      try {
        await exchange(outsider, fleet, PROTOCOL);
      } catch (err) {
        failed = err;
      }
      expect(failed, 'dial with the wrong key').to.be.instanceOf(Error);
      expect(fleet.getConnections()).to.have.length(0);
    });
  }

  it('wipes both native keystreams of a connection when it closes', async () => {
    const sodium = createRequire(import.meta.url)('sodium-native') as SodiumFinal;
    const original = sodium.crypto_stream_xor_final;
    let finals = 0;
    sodium.crypto_stream_xor_final = (state) => {
      finals++;
      original(state);
    };
    try {
      const fleet = await node(fleetPrivateNetwork(swarmKeyOf(SECRET), { cipher: 'native' }));
      const stock = await node(preSharedKey({ psk: swarmKeyOf(SECRET) }));
      nodes = [fleet, stock];
      await Promise.all(nodes.map((n) => echoing(n, PROTOCOL)));
      await exchange(fleet, stock, PROTOCOL);
      expect(finals, 'before close').to.equal(0);
      await fleet.hangUp(stock.peerId);
      expect(finals, 'after close').to.equal(2);
    } finally {
      sodium.crypto_stream_xor_final = original;
    }
  });

  it('rejects a malformed key, cipher or timeout with a PrivateNetworkError', () => {
    const text = (s: string): Uint8Array => new TextEncoder().encode(s);
    expect(() => decodeSwarmKey(text('/key/swarm/psk/1.0.0/\n/base16/\nabcd'))).to.throw(PrivateNetworkError, /32-byte/);
    expect(() => fleetPrivateNetwork(text('not a key'))).to.throw(PrivateNetworkError);
    expect(() => fleetPrivateNetwork(swarmKeyOf(SECRET), { cipher: 'aes' as PnetCipher })).to.throw(PrivateNetworkError, /cipher/);
    expect(() => fleetPrivateNetwork(swarmKeyOf(SECRET), { timeoutMs: 0 })).to.throw(PrivateNetworkError, /timeoutMs/);
    expect(decodeSwarmKey(swarmKeyOf(SECRET))).to.have.length(32);
  });
});
