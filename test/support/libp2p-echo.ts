import { randomBytes } from 'node:crypto';
import type { Libp2p } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { expect } from 'chai';

/**
 * An echo protocol between two real libp2p nodes, for specs that check a layer of the connection (pnet, noise)
 * carries bytes unchanged: `echoing` answers every length-prefixed message on `protocol` with itself, `exchange`
 * sends messages of the given sizes and expects each back byte for byte.
 */

const MAX_MESSAGE = 4 * 1024 * 1024;

/** Sizes from 1 B to just over 1 MiB: one chunk, several noise messages, several yamux windows. */
export const ECHO_SIZES: readonly number[] = [1, 24, 4_900, 65_537, 1024 * 1024 + 3];

export async function echoing(node: Libp2p, protocol: string): Promise<void> {
  await node.handle(protocol, (stream) => {
    const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE });
    void (async () => {
      try {
        for (;;) await lp.write(await lp.read());
      } catch {
        // the stream closed
      }
    })();
  });
}

export async function exchange(from: Libp2p, to: Libp2p, protocol: string, sizes: readonly number[] = ECHO_SIZES): Promise<void> {
  const lp = lpStream(await from.dialProtocol(to.getMultiaddrs()[0]!, protocol), { maxDataLength: MAX_MESSAGE });
  for (const size of sizes) {
    const message = new Uint8Array(randomBytes(size));
    await lp.write(message);
    const echoed = await lp.read();
    expect(Buffer.from(echoed.subarray()).equals(Buffer.from(message)), `echo of ${size} bytes`).to.equal(true);
  }
}
