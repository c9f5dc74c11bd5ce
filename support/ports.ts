/**
 * Loopback ports for servers and peers that must be told a fixed port. Guarantees only that the port was
 * free when asked: another process may take it before the caller binds it, so callers that can use an
 * ephemeral port (listen on 0) should.
 */
import net from 'node:net';

/** A TCP port that is free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
