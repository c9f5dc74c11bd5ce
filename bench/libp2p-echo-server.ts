/**
 * The server end of bench/libp2p-echo.ts's pair in a child process (forked with IPC, `serverInChild`): builds the
 * same host with the options given as its one argument (JSON), serves the echo protocol, and says
 * `{type:'ready', addr, pid}`; answers `{type:'counts'}` with `{type:'counts', fast}` (its fleetNoise decoders
 * made fast); stops its host and exits on `{type:'close'}` or when the parent disconnects. On a failed start it
 * says `{type:'failed', message}` and exits 1.
 */
import type { NoiseDecoderCounts } from '../src/p2p/noise-decoder.js';
import { echoHost, serveEcho, type EchoHostOptions, type EchoServerMessage } from './libp2p-echo.js';

const send = (message: EchoServerMessage): void => {
  process.send?.(message);
};

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? '{}') as EchoHostOptions;
  const counts: NoiseDecoderCounts = { fast: 0, leftAlone: 0 };
  const host = await echoHost(opts, counts);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= Promise.resolve(host.stop()).finally(() => process.exit(0));
    return stopping;
  };
  process.on('message', (message: { type: string }) => {
    if (message.type === 'close') void stop();
    else if (message.type === 'counts') send({ type: 'counts', fast: counts.fast });
  });
  process.once('disconnect', () => void stop());
  try {
    await serveEcho(host, opts);
  } catch (err) {
    await host.stop();
    throw err;
  }
  send({ type: 'ready', addr: host.getMultiaddrs()[0]!.toString(), pid: process.pid });
}

main().catch((err: unknown) => {
  send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  process.exitCode = 1;
  process.disconnect?.();
});
