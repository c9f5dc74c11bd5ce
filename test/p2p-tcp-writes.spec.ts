import '../src/polyfills.js';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { lpStream } from '@libp2p/utils';
import { expect } from 'chai';
import { createLibp2p } from 'libp2p';
import { fleetNoise } from '../src/p2p/noise-decoder.js';
import { oneWritePerSend } from '../src/p2p/tcp-writes.js';
import { echoing } from './support/libp2p-echo.js';

const PROTOCOL = '/github-cache-spec/tcp-writes/1.0.0';

type WriteGeneric = (this: net.Socket, writev: boolean, data: unknown, encoding: string, cb: (err?: Error) => void) => unknown;

/**
 * The bytes of each write Node makes while `run` runs (one entry per system call), on the sockets of one
 * connection: those with `port` at either end (any other socket a spec left open is not counted).
 */
async function socketWrites(port: number, run: () => Promise<void>): Promise<Buffer[]> {
  const proto = net.Socket.prototype as unknown as { _writeGeneric: WriteGeneric };
  const original = proto._writeGeneric;
  const writes: Buffer[] = [];
  proto._writeGeneric = function (writev, data, encoding, cb) {
    if (this.localPort !== port && this.remotePort !== port) return original.call(this, writev, data, encoding, cb);
    const chunks = writev ? (data as Array<{ chunk: Uint8Array } | Uint8Array>).map((c) => ('chunk' in c ? c.chunk : c)) : [data as Uint8Array];
    writes.push(Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))));
    return original.call(this, writev, data, encoding, cb);
  };
  try {
    await run();
  } finally {
    proto._writeGeneric = original;
  }
  return writes;
}

/** Whether `bytes` is whole noise messages: each a 2-byte big-endian length and that many bytes, nothing left over. */
function wholeNoiseMessages(bytes: Buffer): boolean {
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 2) return false;
    const length = bytes.readUInt16BE(at);
    at += 2 + length;
  }
  return at === bytes.length && bytes.length > 2;
}

describe('one socket write per send on the fleet\'s connections (tcp-writes.ts)', function () {
  this.timeout(30_000);
  let nodes: Libp2p[] = [];

  afterEach(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    nodes = [];
  });

  async function pair(oneWrite: boolean): Promise<[Libp2p, Libp2p]> {
    const make = () => createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], streamMuxers: [yamux()],
      connectionEncrypters: [fleetNoise({ oneWritePerSend: oneWrite })], connectionMonitor: { enabled: false },
    });
    const made = await Promise.all([make(), make()]);
    nodes.push(...made);
    await echoing(made[1], PROTOCOL);
    return made;
  }

  /** 100 messages of 4,900 B each way over one stream; every echo checked byte for byte. */
  async function writesOfExchange(oneWrite: boolean): Promise<Buffer[]> {
    const [client, server] = await pair(oneWrite);
    const address = server.getMultiaddrs()[0]!;
    const lp = lpStream(await client.dialProtocol(address, PROTOCOL));
    return socketWrites(Number(address.getComponents().find((c) => c.name === 'tcp')!.value), async () => {
      for (let i = 0; i < 100; i++) {
        const message = randomBytes(4_900);
        await lp.write(message);
        expect(Buffer.from((await lp.read()).subarray()).equals(message), `echo ${i}`).to.equal(true);
      }
    });
  }

  it('writes every send as whole noise messages in one socket write: never a length prefix alone, half the writes', async () => {
    const writes = await writesOfExchange(true);
    expect(writes.filter((w) => w.length === 2)).to.have.length(0);
    expect(writes.every(wholeNoiseMessages), 'each write is whole noise messages').to.equal(true);
    // As @libp2p/tcp writes without it: each message's prefix and ciphertext in writes of their own.
    const asShipped = await writesOfExchange(false);
    expect(asShipped.filter((w) => w.length === 2).length).to.be.at.least(200);
    expect(writes.length).to.be.at.least(200);
    expect(writes.length * 2).to.be.at.most(asShipped.length + 4);
  });

  it('leaves a connection of another shape unchanged, and wraps a connection once', () => {
    expect(oneWritePerSend(undefined)).to.equal(false);
    expect(oneWritePerSend({ sendData: () => undefined })).to.equal(false);
    const socket = new net.Socket();
    const ownSendData = { socket, sendData: () => 'own' };
    expect(oneWritePerSend(ownSendData)).to.equal(false);
    expect(ownSendData.sendData()).to.equal('own');
    class Connection {
      readonly socket = socket;
      sendData(data: Iterable<Uint8Array>): number {
        return [...data].length;
      }
    }
    const connection = new Connection();
    expect(oneWritePerSend(connection)).to.equal(true);
    const wrapped = connection.sendData;
    expect(oneWritePerSend(connection)).to.equal(true);
    expect(connection.sendData).to.equal(wrapped);
    expect(Object.hasOwn(Connection.prototype, 'sendData') && Connection.prototype.sendData !== wrapped).to.equal(true);
    socket.destroy();
  });
});
