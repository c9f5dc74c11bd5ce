import '../src/polyfills.js';
import { randomBytes } from 'node:crypto';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { lpStream } from '@libp2p/utils';
import { expect } from 'chai';
import { createLibp2p } from 'libp2p';
import { swarmKeyOf } from '../src/p2p/fleet-keys.js';
import { CIPHER_CHUNK, fleetPrivateNetwork, type PnetCipher } from '../src/p2p/private-network.js';

/**
 * The fleet's private network (private-network.ts) under large bodies. pnet's xsalsa20 keeps one WebAssembly
 * memory for the whole process; a yamux frame above ~640 KiB (a grown or configured stream window) made pnet
 * cipher it in one call, which grew that memory, after which every switch between the connection's two ciphers
 * grew it again, until `Memory.grow` threw inside the socket's listener and the process died (about 1000 small
 * round trips later). With the fleet's protector the memory never grows: the guarded wasm cipher (the fallback,
 * forced here) is fed bounded pieces, and the native cipher (the default) has no such memory. Real libp2p nodes on
 * loopback (TCP + pnet + noise + yamux, as host.ts builds them), with yamux's stream window at 4 MiB so large
 * frames are sure.
 */

const PROTOCOL = '/github-cache-spec/pnet-memory/1.0.0';
const SECRET = 'spec-pnet-memory-secret-0123456789abcdef';
const MiB = 1024 * 1024;

/** Counts `WebAssembly.Memory.prototype.grow` calls (the only wasm memory in this spec is xsalsa20's). */
function countMemoryGrowth(): { readonly grows: number; restore(): void } {
  // The build's lib has no WebAssembly types; the runtime has it.
  const proto = (globalThis as unknown as { WebAssembly: { Memory: { prototype: { grow(delta: number): number } } } }).WebAssembly.Memory.prototype;
  const original = proto.grow;
  const counter = { grows: 0, restore: () => { proto.grow = original; } };
  proto.grow = function (this: unknown, delta: number): number {
    counter.grows++;
    return original.call(this, delta);
  };
  return counter;
}

function node(cipher: PnetCipher): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ enableKeepAlive: false, streamOptions: { initialStreamWindowSize: 4 * MiB, maxStreamWindowSize: 16 * MiB } })],
    connectionProtector: fleetPrivateNetwork(swarmKeyOf(SECRET), { cipher }),
    connectionMonitor: { enabled: false },
  });
}

describe('the private network under large bodies (pnet xsalsa20 memory)', function () {
  this.timeout(120_000);
  let nodes: Libp2p[] = [];
  let growth: ReturnType<typeof countMemoryGrowth> | undefined;

  afterEach(async () => {
    growth?.restore();
    growth = undefined;
    await Promise.all(nodes.map((n) => n.stop()));
    nodes = [];
  });

  for (const cipher of ['wasm', 'native'] as const) it(`echoes 1-3 MiB messages both ways, then 1500 small round trips, without growing the cipher memory (${cipher})`, async () => {
    growth = countMemoryGrowth();
    const [a, b] = await Promise.all([node(cipher), node(cipher)]);
    nodes = [a, b];
    // Each node echoes every length-prefixed message back on the stream it came on.
    for (const n of nodes) {
      await n.handle(PROTOCOL, (stream) => {
        const lp = lpStream(stream, { maxDataLength: 8 * MiB });
        void (async () => {
          try {
            for (;;) await lp.write(await lp.read());
          } catch {
            // the stream closed
          }
        })();
      });
    }
    const ab = lpStream(await a.dialProtocol(b.getMultiaddrs()[0]!, PROTOCOL), { maxDataLength: 8 * MiB });
    const ba = lpStream(await b.dialProtocol(a.getMultiaddrs()[0]!, PROTOCOL), { maxDataLength: 8 * MiB });
    const roundTrip = async (lp: typeof ab, message: Uint8Array): Promise<void> => {
      await lp.write(message);
      const echoed = await lp.read();
      expect(Buffer.from(echoed.subarray()).equals(Buffer.from(message)), `echo of ${message.byteLength} bytes`).to.equal(true);
    };
    // Large messages both ways at once: yamux sends each in frames up to its 4 MiB window.
    await Promise.all([ab, ba].map(async (lp, side) => {
      for (let i = 1; i <= 3; i++) await roundTrip(lp, new Uint8Array(randomBytes(i * MiB + side * CIPHER_CHUNK + 7)));
    }));
    // Small round trips alternate the connection's inbound and outbound ciphers.
    for (let i = 0; i < 1500; i++) await roundTrip(i % 2 === 0 ? ab : ba, new Uint8Array(randomBytes(64)));
    expect(growth.grows, 'WebAssembly.Memory.grow calls').to.equal(0);
  });
});
