/**
 * Reproduction of pnet's xsalsa20 memory failure (docs/p2p-protocol.md, "Known upstream issues"), side by side
 * with the fleet's guard (src/p2p/private-network.ts). Not a speed benchmark: it prints what happened, and writes
 * nothing into docs/benchmarks.md.
 *
 *   node dist/bench/pnet-stress.js [--seconds 20] [--rounds 1]
 *
 * Each row runs in a fresh child process: two libp2p nodes on 127.0.0.1 (TCP + pnet + noise + yamux, yamux's
 * stream window at 4 MiB), with plain `preSharedKey` or the fleet's `fleetPrivateNetwork`. Bulk phase: 4 streams
 * each way echo 1-3.5 MiB messages for `--seconds` (an
 * inbound stream's read buffer holds 4 MiB: an echo of a larger message resets its stream); then 3,000 small round trips on one stream (each switches the
 * connection's ciphers). The child counts `WebAssembly.Memory.grow` calls and the memory's pages; a process that
 * dies shows its exit code and the error it died of.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { table } from './report.js';

const SELF = fileURLToPath(import.meta.url);
const PROTOCOL = '/github-cache-bench/pnet-stress/1.0.0';
const SECRET = 'bench-pnet-stress-secret-0123456789abcdef';
const MiB = 1024 * 1024;
const SMALL_ROUND_TRIPS = 3000;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

interface ChildResult { bulkMiB: number; bulkError?: string; roundTrips: number; smallError?: string; grows: number; pages: number; rssMiB: number }

async function child(variant: string, seconds: number): Promise<void> {
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: { prototype: { grow(delta: number): number } } } }).WebAssembly;
  const proto = wasm.Memory.prototype;
  const original = proto.grow;
  let grows = 0;
  let pages = 0;
  proto.grow = function (this: { buffer: ArrayBuffer }, delta: number): number {
    grows++;
    const result = original.call(this, delta);
    pages = this.buffer.byteLength / 65536;
    return result;
  };
  await import('../src/polyfills.js');
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }, { preSharedKey }, { lpStream }, { swarmKeyOf }, { fleetPrivateNetwork }] = await Promise.all([
    import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux'), import('@libp2p/pnet'),
    import('@libp2p/utils'), import('../src/p2p/fleet-keys.js'), import('../src/p2p/private-network.js'),
  ]);
  const psk = swarmKeyOf(SECRET);
  const host = () => createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ enableKeepAlive: false, streamOptions: { initialStreamWindowSize: 4 * MiB, maxStreamWindowSize: 4 * MiB } })],
    connectionProtector: variant === 'fleet' ? fleetPrivateNetwork(psk) : preSharedKey({ psk }),
    connectionMonitor: { enabled: false },
  });
  const [a, b] = await Promise.all([host(), host()]);
  const lpOptions = { maxDataLength: 17 * MiB };
  for (const n of [a, b]) {
    await n.handle(PROTOCOL, (stream) => {
      const lp = lpStream(stream, lpOptions);
      void (async () => {
        try {
          for (;;) await lp.write(await lp.read());
        } catch {
          // the stream closed
        }
      })();
    }, { maxInboundStreams: 64 });
  }
  const result: ChildResult = { bulkMiB: 0, roundTrips: 0, grows: 0, pages: 0, rssMiB: 0 };
  const body = new Uint8Array(randomBytes(4 * MiB));
  const deadline = Date.now() + seconds * 1000;
  const lanes = [];
  for (const [from, to] of [[a, b], [b, a]] as const) {
    for (let s = 0; s < 4; s++) lanes.push(from.dialProtocol(to.getMultiaddrs()[0]!, PROTOCOL).then((stream) => lpStream(stream, lpOptions)));
  }
  try {
    await Promise.all((await Promise.all(lanes)).map(async (lp) => {
      while (Date.now() < deadline) {
        const bytes = MiB + Math.floor(Math.random() * 2.5 * MiB);
        await lp.write(body.subarray(0, bytes));
        await lp.read();
        result.bulkMiB += bytes / MiB;
      }
    }));
  } catch (err) {
    result.bulkError = err instanceof Error ? err.message : String(err);
  }
  try {
    const lp = lpStream(await a.dialProtocol(b.getMultiaddrs()[0]!, PROTOCOL), lpOptions);
    for (; result.roundTrips < SMALL_ROUND_TRIPS; result.roundTrips++) {
      await lp.write(body.subarray(0, 32));
      await lp.read();
    }
  } catch (err) {
    result.smallError = err instanceof Error ? err.message : String(err);
  }
  Object.assign(result, { grows, pages, rssMiB: Math.round(process.memoryUsage().rss / MiB) });
  console.log(`RESULT ${JSON.stringify(result)}`);
  await Promise.all([a.stop(), b.stop()]);
}

function runChild(variant: string, seconds: number): Promise<{ code: number | null; result?: ChildResult; died?: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [SELF, '--child', variant, '--seconds', String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    proc.stderr.on('data', (chunk: Buffer) => { err += chunk.toString(); });
    proc.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      const died = err.split('\n').find((l) => /^\w*Error/.test(l));
      resolve({ code, ...(line ? { result: JSON.parse(line.slice(7)) as ChildResult } : {}), ...(died ? { died } : {}) });
    });
  });
}

export async function benchPnetStress(): Promise<string> {
  const seconds = arg('seconds', 20);
  const rounds = arg('rounds', 1);
  const rows: string[][] = [];
  for (let round = 0; round < rounds; round++) {
    for (const variant of ['plain', 'fleet']) {
      const { code, result, died } = await runChild(variant, seconds);
      rows.push([
        variant === 'fleet' ? 'fleetPrivateNetwork (guarded)' : 'preSharedKey (pnet as shipped)',
        result ? result.bulkMiB.toFixed(0) : '-',
        result ? `${result.roundTrips}/${SMALL_ROUND_TRIPS}` : '-',
        result ? String(result.grows) : '-',
        result ? (result.grows === 0 ? '10 (initial)' : String(result.pages)) : '-',
        result ? String(result.rssMiB) : '-',
        String(code),
        (died ?? result?.bulkError ?? result?.smallError ?? '').slice(0, 80),
      ]);
    }
  }
  return [
    `pnet stress: ${seconds} s of 1-3.5 MiB echoes (4 streams each way, yamux window 4 MiB), then ${SMALL_ROUND_TRIPS} small round trips; a fresh process per row.`,
    '',
    table(['protector', 'bulk MiB echoed', 'small round trips', 'Memory.grow calls', 'wasm pages', 'RSS MiB', 'exit', 'error'], rows),
  ].join('\n');
}

if (process.argv.includes('--child')) {
  await child(process.argv[process.argv.indexOf('--child') + 1]!, arg('seconds', 20));
} else if (process.argv[1] === SELF) {
  console.log(await benchPnetStress());
}
