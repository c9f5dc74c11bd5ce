import net from 'node:net';

/**
 * A loopback TCP forwarder for the P2P specs that need to order dials: it accepts at once and holds what it
 * accepted until `release` names the target port, then passes each connection on (and every later one at once).
 * `live` counts the connections passed on that are still up: a node closing its end ends the pair. With
 * `dropFirst: n`, the first n connections it accepts are closed at once instead (a dial that fails).
 */
export interface Forwarder {
  port: number;
  /** Connections passed on so far. */
  readonly forwarded: number;
  /** Connections passed on and still up at both ends. */
  readonly live: number;
  release(targetPort: number): void;
  close(): void;
}

export async function forwarder(options: { dropFirst?: number } = {}): Promise<Forwarder> {
  let drop = options.dropFirst ?? 0;
  const sockets = new Set<net.Socket>();
  let target: number | undefined;
  const held: net.Socket[] = [];
  const state = { forwarded: 0, live: 0 };
  const pass = (client: net.Socket, port: number) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(upstream);
    state.forwarded++;
    state.live++;
    let ended = false;
    const end = () => {
      if (!ended) state.live--;
      ended = true;
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) s.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const server = net.createServer((client) => {
    if (drop > 0) {
      drop--;
      client.destroy();
      return;
    }
    sockets.add(client);
    client.pause();
    if (target === undefined) held.push(client);
    else pass(client, target);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get forwarded() {
      return state.forwarded;
    },
    get live() {
      return state.live;
    },
    release(port) {
      target = port;
      for (const client of held.splice(0)) pass(client, port);
    },
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
