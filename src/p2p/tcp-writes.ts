import net from 'node:net';

/**
 * One socket write per send on the fleet's TCP connections.
 *
 * Why: `@libp2p/tcp` (11.0.x) hands its socket each chunk of what a layer above sends with a socket.write of its
 * own, and noise sends every message as two chunks, its 2-byte length prefix and the ciphertext. On an idle
 * socket each socket.write is a system call of its own, so every message a member sent cost two system calls,
 * and the receiving member was often woken for the 2 bytes alone, then again for the rest (a peer hit at 1 in
 * flight: the asker 3,010 writes of 2 bytes beside 3,000 `get`s; the owner read the `get`'s prefix alone 885
 * times of 3,000). pnet, beneath noise until 2026-12, enciphered the chunks into one buffer and hid it.
 *
 * Guarantee: on a connection given `oneWritePerSend`, a send of several chunks reaches the socket as one write
 * (Node's cork and uncork around @libp2p/tcp's own `sendData`: the chunks go out in one writev), with the same
 * bytes in the same order, and `sendData`'s own result (how much was taken, whether more may be sent), since
 * its own code still runs. Only that connection instance changes (an own property); a connection of another
 * shape (a @libp2p/tcp upgrade without `socket` or `sendData`, or pnet's stream, which writes one buffer per
 * send already) is left as it is, and the function says so.
 *
 * docs/p2p-protocol.md ("Transport cost") has the upstream proposal (cork in @libp2p/tcp's `sendData`) that
 * makes this module removable.
 */

/** Marks a `sendData` this module installed, so that a connection is never wrapped twice. */
const ONE_WRITE = Symbol('one socket write per send');

interface TcpConnectionShape {
  socket: net.Socket;
  sendData(data: Iterable<Uint8Array> & { byteLength: number }): unknown;
}

/** The chunks a send holds: a Uint8ArrayList's own count, or 1 for bytes. */
function chunkCount(data: unknown): number {
  const bufs = (data as { bufs?: unknown } | null)?.bufs;
  return Array.isArray(bufs) ? bufs.length : 1;
}

/**
 * Makes `connection` (a MultiaddrConnection of @libp2p/tcp) write each send of several chunks in one socket write.
 * Returns whether it does (or already did); false for a connection of another shape, which is left unchanged.
 */
export function oneWritePerSend(connection: unknown): boolean {
  if (typeof connection !== 'object' || connection === null) return false;
  const shaped = connection as Partial<TcpConnectionShape>;
  const { socket, sendData } = shaped;
  if (!(socket instanceof net.Socket) || typeof sendData !== 'function') return false;
  if ((sendData as { [ONE_WRITE]?: true })[ONE_WRITE] === true) return true;
  // Another own sendData (someone else wrapped this instance): leave it to them.
  if (Object.hasOwn(shaped, 'sendData')) return false;
  const corked = function (this: unknown, data: Iterable<Uint8Array> & { byteLength: number }): unknown {
    if (chunkCount(data) < 2 || socket.destroyed) return sendData.call(this, data);
    socket.cork();
    try {
      return sendData.call(this, data);
    } finally {
      socket.uncork();
    }
  };
  (corked as { [ONE_WRITE]?: true })[ONE_WRITE] = true;
  shaped.sendData = corked;
  return true;
}
