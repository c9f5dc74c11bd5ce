import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Tools of the hostile specs that need no key: an outsider's TCP connection flood, a listener that counts the
 * connections a victim opens to it, and a heap measure after a full garbage collection.
 */

/**
 * An outsider without the fleet's key: holds `count` idle TCP connections to a port, from `localAddress`,
 * re-opening each (after `reopenDelayMs`) as the victim drops it.
 */
export class ConnectionFlood {
  opened = 0;
  dropped = 0;
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;

  constructor(readonly host: string, readonly port: number, readonly count: number, readonly localAddress = '127.0.0.2', readonly reopenDelayMs = 50) {
    for (let i = 0; i < count; i++) this.#open();
  }

  /** Connections open right now. */
  get open(): number {
    return this.#sockets.size;
  }

  #open(): void {
    if (this.#stopped) return;
    const socket = net.connect({ host: this.host, port: this.port, localAddress: this.localAddress });
    socket.on('connect', () => {
      this.opened++;
    });
    socket.on('error', () => undefined);
    socket.on('data', () => undefined); // never answers: the PSK exchange never completes
    this.#sockets.add(socket);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.dropped++;
      if (this.#stopped) return;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#open();
      }, this.reopenDelayMs);
      this.#timers.add(timer);
    });
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }
}

/** A TCP listener that counts the connections made to it and closes each at once. */
export class CountingListener {
  connections = 0;
  readonly #server = net.createServer((socket) => {
    this.connections++;
    socket.on('error', () => undefined);
    socket.destroy();
  });

  static async start(): Promise<CountingListener> {
    const listener = new CountingListener();
    await new Promise<void>((resolve) => listener.#server.listen(0, '127.0.0.1', resolve));
    return listener;
  }

  /** Its multiaddr, without /p2p/. */
  get addr(): string {
    return `/ip4/127.0.0.1/tcp/${(this.#server.address() as net.AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

let gc: (() => void) | undefined;

/** Bytes of heap in use after a full garbage collection. */
export function heapAfterGc(): number {
  if (gc === undefined) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  }
  gc();
  gc();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}
