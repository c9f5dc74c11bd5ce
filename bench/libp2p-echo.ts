/**
 * Two libp2p hosts on 127.0.0.1 built like the fleet's (TCP, noise, yamux, and pnet unless asked not to; noise as
 * shipped unless `fleetNoise`, with the shared secret's prologue if `prologue`, and yamux's window updates per
 * frame unless `batchWindowUpdates`; AS_THE_FLEET is the fleet's default assembly), the
 * server echoing a fixed reply to each length-prefixed request on one long-lived stream: the transport floor a
 * peer hit stands on, for the benchmarks that time it. The server host is in this process, or with
 * `serverInChild` in a child process (bench/libp2p-echo-server.ts, built with the same options; its pid is on the
 * pair, to count its CPU), as a peer hit's owner is in another process. `close()` stops both hosts (and the child);
 * a failed set-up stops them too.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Libp2p, Stream } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { batchWindowUpdates } from '../src/p2p/frame-channel.js';
import { handshakePrologueOf, swarmKeyOf } from '../src/p2p/fleet-keys.js';
import { fleetNoise, type NoiseDecoderCounts } from '../src/p2p/noise-decoder.js';
import type { PnetCipher } from '../src/p2p/private-network.js';

const ECHO_PROTOCOL = '/github-cache-bench/echo/1.0.0';
const SECRET = 'bench-echo-shared-secret-0123456789abcdef';
/** The echo server's child script (dist/bench/libp2p-echo-server.js). */
const SERVER_SCRIPT = fileURLToPath(new URL('./libp2p-echo-server.js', import.meta.url));

export interface EchoPair {
  roundTrip(): Promise<void>;
  close(): Promise<void>;
  /** The server's child process, with `serverInChild`. */
  serverPid?: number;
}

export interface EchoHostOptions {
  requestBytes: number;
  replyBytes: number;
  /** pnet (the private network beneath noise, `p2p.membership` 'pnet'); default on, as libp2p ships it. */
  pnet?: boolean;
  /** The shared secret's prologue in noise's handshake (`p2p.membership` 'handshake', fleet-keys.ts); default off. */
  prologue?: boolean;
  /** pnet's XSalsa20 (private-network.ts): `native` (libsodium) or `wasm` (pnet's own, guarded); default: the fleet's choice. */
  pnetCipher?: PnetCipher;
  /** yamux's stream window (bytes); default: yamux's own. */
  window?: number;
  /** yamux's keep-alive pings; default on, as in the fleet. */
  yamuxKeepAlive?: boolean;
  /** libp2p's connection monitor (pings); default on, as in the fleet. */
  connectionMonitor?: boolean;
  /** Largest length-prefixed message read; default: lpStream's own. */
  maxDataLength?: number;
  /** yamux window updates once half the window is used, as the fleet's streams send them (frame-channel.ts); default: per frame, as yamux does. */
  batchWindowUpdates?: boolean;
  /** noise as the fleet's hosts use it: no RangeError per TCP chunk (noise-decoder.ts); default: noise as shipped. */
  fleetNoise?: boolean;
  /** noise's ChaCha20-Poly1305 in libsodium below 16 KiB, as the fleet's hosts use it (noise-crypto.ts); default: noise's own. */
  noiseCrypto?: boolean;
  /** With `fleetNoise`: one socket write per send (tcp-writes.ts), as the fleet's hosts; false: as @libp2p/tcp writes. Default: true. */
  oneWritePerSend?: boolean;
}

/**
 * The transport as the fleet's hosts run it by default (host.ts with `p2p.membership` 'handshake'): no pnet, the
 * shared secret's prologue in noise's handshake, noise through fleetNoise with libsodium's ChaCha20-Poly1305,
 * window updates batched as FrameChannel batches them.
 */
export const AS_THE_FLEET = Object.freeze({ pnet: false, prologue: true, fleetNoise: true, noiseCrypto: true, batchWindowUpdates: true });

/** One host of the pair, built from `opts`; `noiseCounts` counts its fleetNoise decoders. */
export async function echoHost(opts: EchoHostOptions, noiseCounts: NoiseDecoderCounts): Promise<Libp2p> {
  await import('../src/polyfills.js'); // libp2p 3 needs Promise.withResolvers
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }, { fleetPrivateNetwork }, { fleetNoiseCrypto }] = await Promise.all([
    import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux'), import('../src/p2p/private-network.js'),
    import('../src/p2p/noise-crypto.js'),
  ]);
  const crypto = opts.noiseCrypto === true ? fleetNoiseCrypto() : undefined;
  if (opts.noiseCrypto === true && crypto === undefined) throw new Error('noiseCrypto: sodium-native did not load');
  const noiseInit = { ...(crypto === undefined ? {} : { crypto }), ...(opts.prologue === true ? { prologueBytes: handshakePrologueOf(SECRET) } : {}) };
  const streamOptions = opts.window === undefined ? {} : { streamOptions: { initialStreamWindowSize: opts.window, maxStreamWindowSize: Math.max(opts.window, 16 * 1024 * 1024) } };
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [opts.fleetNoise === true ? fleetNoise({ counts: noiseCounts, init: noiseInit, oneWritePerSend: opts.oneWritePerSend !== false }) : noise(noiseInit)],
    streamMuxers: [yamux({ ...(opts.yamuxKeepAlive === false ? { enableKeepAlive: false } : {}), ...streamOptions })],
    ...(opts.pnet !== false ? { connectionProtector: fleetPrivateNetwork(swarmKeyOf(SECRET), opts.pnetCipher === undefined ? {} : { cipher: opts.pnetCipher }) } : {}),
    ...(opts.connectionMonitor === false ? { connectionMonitor: { enabled: false } } : {}),
  });
}

/** Makes each stream's window updates batched when asked; throws on a stream of an unknown shape. */
function batcher(opts: EchoHostOptions): (stream: Stream) => void {
  return (stream) => {
    if (opts.batchWindowUpdates === true && batchWindowUpdates(stream) === undefined) throw new Error('not a yamux stream of the known shape');
  };
}

/** The server's side: each request on an echo stream answered with `replyBytes` bytes, until the stream closes. */
export async function serveEcho(server: Libp2p, opts: EchoHostOptions): Promise<void> {
  const { lpStream } = await import('@libp2p/utils');
  const batch = batcher(opts);
  const lpOptions = opts.maxDataLength === undefined ? {} : { maxDataLength: opts.maxDataLength };
  const reply = new Uint8Array(opts.replyBytes).fill(7);
  await server.handle(ECHO_PROTOCOL, (stream) => {
    batch(stream);
    const lp = lpStream(stream, lpOptions);
    void (async () => {
      try {
        for (;;) {
          await lp.read();
          await lp.write(reply);
        }
      } catch {
        // the stream closed
      }
    })();
  });
}

export async function libp2pEchoPair(opts: EchoHostOptions & {
  /** The server host in a child process (bench/libp2p-echo-server.ts); default: in this process. */
  serverInChild?: boolean;
}): Promise<EchoPair> {
  const { serverInChild, ...hostOptions } = opts;
  const { lpStream } = await import('@libp2p/utils');
  const noiseCounts: NoiseDecoderCounts = { fast: 0, leftAlone: 0 };
  const [server, client] = await Promise.all([serverInChild === true ? echoServerChild(hostOptions) : localServer(hostOptions, noiseCounts), echoHost(hostOptions, noiseCounts)]);
  const stopBoth = async () => {
    await Promise.all([client.stop(), server.stop()]);
  };
  try {
    const lpOptions = opts.maxDataLength === undefined ? {} : { maxDataLength: opts.maxDataLength };
    const stream = await client.dialProtocol(server.addr, ECHO_PROTOCOL);
    // Both ends of the one connection: each host's own count (the server's, from its process).
    if (opts.fleetNoise === true && noiseCounts.fast + (await server.fastDecoders()) !== 2) throw new Error('the connection\'s noise decoders were not both made fast');
    batcher(opts)(stream);
    const lp = lpStream(stream, lpOptions);
    const request = new Uint8Array(opts.requestBytes).fill(1);
    return {
      roundTrip: async () => {
        await lp.write(request);
        await lp.read();
      },
      close: async () => {
        await stream.close().catch(() => undefined);
        await stopBoth();
      },
      ...(server.pid !== undefined ? { serverPid: server.pid } : {}),
    };
  } catch (err) {
    await stopBoth();
    throw err;
  }
}

/** The server end as the pair sees it, in this process or in a child. */
interface EchoServer {
  addr: Multiaddr;
  /** The server's fleetNoise decoders made fast (0 in this process: they count in the pair's own counts). */
  fastDecoders(): Promise<number>;
  stop(): Promise<void>;
  pid?: number;
}

async function localServer(opts: EchoHostOptions, noiseCounts: NoiseDecoderCounts): Promise<EchoServer> {
  const server = await echoHost(opts, noiseCounts);
  try {
    await serveEcho(server, opts);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { addr: server.getMultiaddrs()[0]!, fastDecoders: async () => 0, stop: async () => server.stop() };
}

/** Messages of the child script (bench/libp2p-echo-server.ts). */
export type EchoServerMessage =
  | { type: 'ready'; addr: string; pid: number }
  | { type: 'failed'; message: string }
  | { type: 'counts'; fast: number };

/** The server host in a child process, forked with IPC; it stops on `{type:'close'}` or when this process goes away. */
async function echoServerChild(opts: EchoHostOptions): Promise<EchoServer> {
  const { multiaddr } = await import('@multiformats/multiaddr');
  const child = fork(SERVER_SCRIPT, [JSON.stringify(opts)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      if (child.connected) child.send({ type: 'close' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const next = <T extends EchoServerMessage['type']>(type: T) => new Promise<Extract<EchoServerMessage, { type: T }>>((resolve, reject) => {
    const onMessage = (message: EchoServerMessage) => {
      if (message.type === 'failed') reject(new Error(`echo server child failed: ${message.message}`));
      else if (message.type === type) resolve(message as Extract<EchoServerMessage, { type: T }>);
      else return;
      child.off('message', onMessage);
    };
    child.on('message', onMessage);
    void exited.then(() => reject(new Error(`echo server child exited (${child.exitCode ?? child.signalCode})`)));
  });
  try {
    const ready = await next('ready');
    return {
      addr: multiaddr(ready.addr),
      pid: ready.pid,
      fastDecoders: async () => {
        const reply = next('counts');
        child.send({ type: 'counts' });
        return (await reply).fast;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
