/**
 * Two libp2p hosts on 127.0.0.1 built like the fleet's (TCP, noise, yamux, and pnet unless asked not to; noise as
 * shipped unless `fleetNoise`, and yamux's window updates per frame unless `batchWindowUpdates`), the
 * server echoing a fixed reply to each length-prefixed request on one long-lived stream: the transport floor a
 * peer hit stands on, for the benchmarks that time it. `close()` stops both hosts; a failed set-up stops them too.
 */
import type { Stream } from '@libp2p/interface';
import { batchWindowUpdates } from '../src/p2p/frame-channel.js';
import { swarmKeyOf } from '../src/p2p/fleet-keys.js';
import { fleetNoise, type NoiseDecoderCounts } from '../src/p2p/noise-decoder.js';

const ECHO_PROTOCOL = '/github-cache-bench/echo/1.0.0';
const SECRET = 'bench-echo-shared-secret-0123456789abcdef';

export interface EchoPair {
  roundTrip(): Promise<void>;
  close(): Promise<void>;
}

export async function libp2pEchoPair(opts: {
  requestBytes: number;
  replyBytes: number;
  pnet?: boolean;
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
}): Promise<EchoPair> {
  const batch = (stream: Stream): void => {
    if (opts.batchWindowUpdates === true && batchWindowUpdates(stream) === undefined) throw new Error('not a yamux stream of the known shape');
  };
  await import('../src/polyfills.js'); // libp2p 3 needs Promise.withResolvers
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }, { fleetPrivateNetwork }, { lpStream }] = await Promise.all([
    import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux'), import('../src/p2p/private-network.js'), import('@libp2p/utils'),
  ]);
  const noiseCounts: NoiseDecoderCounts = { fast: 0, leftAlone: 0 };
  const streamOptions = opts.window === undefined ? {} : { streamOptions: { initialStreamWindowSize: opts.window, maxStreamWindowSize: Math.max(opts.window, 16 * 1024 * 1024) } };
  const host = () => createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [opts.fleetNoise === true ? fleetNoise({ counts: noiseCounts }) : noise()],
    streamMuxers: [yamux({ ...(opts.yamuxKeepAlive === false ? { enableKeepAlive: false } : {}), ...streamOptions })],
    ...(opts.pnet !== false ? { connectionProtector: fleetPrivateNetwork(swarmKeyOf(SECRET)) } : {}),
    ...(opts.connectionMonitor === false ? { connectionMonitor: { enabled: false } } : {}),
  });
  const [server, client] = await Promise.all([host(), host()]);
  const stopBoth = async () => {
    await Promise.all([client.stop(), server.stop()]);
  };
  try {
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
    const stream = await client.dialProtocol(server.getMultiaddrs()[0]!, ECHO_PROTOCOL);
    if (opts.fleetNoise === true && noiseCounts.fast !== 2) throw new Error('the connection\'s noise decoders were not both made fast');
    batch(stream);
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
    };
  } catch (err) {
    await stopBoth();
    throw err;
  }
}
