/**
 * `p2p-transport`: what a peer hit's transport costs, beside plain HTTP keep-alive on the same bodies. One
 * request frame out, one body back, over one long-lived connection in this process (both ends on one event
 * loop, so CPU per call is both sides'), rows interleaved in blocks: node:http with a keep-alive agent; libp2p as
 * shipped (TCP + pnet + noise + yamux); the same without pnet (the pre-shared-key XSalsa20 layer); with larger
 * yamux stream windows; with yamux window updates batched as the fleet's streams batch them
 * (src/p2p/frame-channel.ts) and noise as shipped; as the fleet runs it (batched window updates, noise
 * through fleetNoise, src/p2p/noise-decoder.ts: no RangeError per chunk, per connection) with noise's
 * ChaCha20-Poly1305 in libsodium below 16 KiB (src/p2p/noise-crypto.ts) and the shared secret's prologue in noise's
 * handshake instead of pnet (`p2p.membership` 'handshake', the default), beside the same with pnet beneath noise
 * (`p2p.membership` 'pnet': its XSalsa20 in libsodium, src/p2p/private-network.ts), with noise's own
 * ChaCha20-Poly1305, and with pnet's own wasm cipher (the fallback);
 * and, for comparison, the proposed one-line upstream change to @libp2p/utils' LengthPrefixedDecoder (noise reads
 * its messages through it) patched into this process's prototype for its row only (see
 * installProposedDecoderFix; the library never patches it). Bodies: a repository-shaped 3.9 KiB and a 256 KiB
 * one (a log or diff; yamux's initial stream window is 256 KiB, so window updates are on its path).
 */
import http from 'node:http';
import { LengthPrefixedDecoder } from '@libp2p/utils';
import type { PnetCipher } from '../src/p2p/private-network.js';
import { libp2pEchoPair } from './libp2p-echo.js';
import { fmt, machineLine, percentile, table, timeEach, writeSection } from './report.js';
import { loadLine } from './workload.js';

const REQUEST_BYTES = 200;
const BODIES = [{ label: '3.9 KiB', bytes: 3_990, calls: 3_000 }, { label: '256 KiB', bytes: 256 * 1024, calls: 300 }];

interface Transport { roundTrip(): Promise<void>; close(): Promise<void> }
interface Variant { label: string; make(bytes: number): Promise<Transport>; decoderFix?: boolean }

/** Whether the proposed LengthPrefixedDecoder change is in effect (set per row, before each of its blocks). */
let decoderFix = false;

/**
 * The proposed upstream change, for measuring it: @libp2p/utils' LengthPrefixedDecoder.decode loops `while (true)`
 * and, once a chunk's messages are consumed, reads a length prefix from the emptied buffer, which throws a
 * RangeError that it catches: an Error with its stack trace on every chunk noise decrypts. The change loops
 * `while (this.buffer.byteLength > 0)` instead; nothing else differs. In effect only while `decoderFix` is set.
 */
function installProposedDecoderFix(): void {
  type Decoder = { buffer: { byteLength: number }; decode(buf: unknown): Generator<unknown> };
  const proto = LengthPrefixedDecoder.prototype as unknown as Decoder;
  if ((proto as { proposedFix?: boolean }).proposedFix === true) return;
  const original = proto.decode;
  const stopsWhenEmpty = function* (this: Decoder, buf: unknown): Generator<unknown> {
    // The original loop, entered only while bytes are buffered: each pass of `original` is one message.
    const run = original.call(this, buf);
    for (;;) {
      const next = run.next();
      if (next.done === true) return;
      yield next.value;
      if (this.buffer.byteLength === 0) return;
    }
  };
  proto.decode = function (this: Decoder, buf: unknown) {
    return decoderFix ? stopsWhenEmpty.call(this, buf) : original.call(this, buf);
  };
  (proto as { proposedFix?: boolean }).proposedFix = true;
}

async function httpKeepAlive(bytes: number): Promise<Transport> {
  const body = Buffer.alloc(bytes, 7);
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(body));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const request = Buffer.alloc(REQUEST_BYTES, 1);
  return {
    roundTrip: () => new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent, headers: { 'content-length': REQUEST_BYTES } }, (res) => {
        res.on('data', () => undefined);
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(request);
    }),
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export function libp2p(opts: { pnet: boolean; prologue?: boolean; cipher?: PnetCipher; window?: number; batch?: boolean; fleetNoise?: boolean; noiseCrypto?: boolean; oneWrite?: boolean }): (bytes: number) => Promise<Transport> {
  // The connection monitor's pings time out when 1 MiB transfers keep the one event loop busy on a loaded machine,
  // and it then closes the connection mid-transfer: off here, as nothing else would notice a dead peer in this bench.
  return (bytes) => libp2pEchoPair({
    requestBytes: REQUEST_BYTES, replyBytes: bytes, pnet: opts.pnet, window: opts.window, pnetCipher: opts.cipher ?? 'wasm',
    yamuxKeepAlive: false, connectionMonitor: false, maxDataLength: 8 * 1024 * 1024, batchWindowUpdates: opts.batch === true,
    fleetNoise: opts.fleetNoise === true, noiseCrypto: opts.noiseCrypto === true, prologue: opts.prologue === true, oneWritePerSend: opts.oneWrite !== false,
  });
}

const VARIANTS: Variant[] = [
  { label: 'HTTP/1.1 keep-alive (node:http, one socket)', make: httpKeepAlive },
  { label: 'libp2p as shipped: TCP + pnet + noise + yamux (a window update per frame)', make: libp2p({ pnet: true }) },
  { label: 'libp2p without pnet: TCP + noise + yamux', make: libp2p({ pnet: false }) },
  { label: 'libp2p with pnet, yamux initial stream window 4 MiB', make: libp2p({ pnet: true, window: 4 * 1024 * 1024 }) },
  { label: 'pnet, window updates batched (frame-channel.ts), noise as shipped (a RangeError per chunk)', make: libp2p({ pnet: true, batch: true }) },
  { label: 'pnet (its wasm cipher, the fallback), window updates batched, noise through fleetNoise (noise-decoder.ts)', make: libp2p({ pnet: true, batch: true, fleetNoise: true }) },
  { label: 'the same with pnet\'s XSalsa20 in libsodium (private-network.ts, `sodium-native`), noise\'s own ChaCha20-Poly1305', make: libp2p({ pnet: true, cipher: 'native', batch: true, fleetNoise: true }) },
  { label: 'the same with noise\'s ChaCha20-Poly1305 in libsodium below 16 KiB (noise-crypto.ts): the fleet with `p2p.membership` `pnet`', make: libp2p({ pnet: true, cipher: 'native', batch: true, fleetNoise: true, noiseCrypto: true }) },
  { label: 'the same without pnet, the shared secret\'s prologue in noise\'s handshake (`p2p.membership` `handshake`), each noise message in two socket writes as @libp2p/tcp makes them', make: libp2p({ pnet: false, prologue: true, batch: true, fleetNoise: true, noiseCrypto: true, oneWrite: false }) },
  { label: '**as the fleet runs it** (`p2p.membership` `handshake`, the default): the same with one socket write per send (tcp-writes.ts)', make: libp2p({ pnet: false, prologue: true, batch: true, fleetNoise: true, noiseCrypto: true }) },
  { label: 'batched, noise as shipped, with the proposed upstream decoder loop (prototype patched here, this row only)', make: libp2p({ pnet: true, batch: true }), decoderFix: true },
];

export async function benchP2pTransport(): Promise<string> {
  const load = loadLine();
  installProposedDecoderFix();
  const sections: string[] = [];
  for (const body of BODIES) {
    const transports = await Promise.all(VARIANTS.map((v) => v.make(body.bytes)));
    try {
      for (const [i, t] of transports.entries()) {
        decoderFix = VARIANTS[i]!.decoderFix === true;
        for (let j = 0; j < Math.min(200, body.calls / 4); j++) await t.roundTrip(); // warm-up
      }
      const out = VARIANTS.map(() => ({ ns: [] as number[], cpuUs: 0, wallNs: 0 }));
      const block = Math.max(10, Math.floor(body.calls / 20));
      const items = Array.from({ length: block }, (_, i) => i);
      for (let done = 0; done < body.calls; done += block) {
        for (const [i, t] of transports.entries()) {
          decoderFix = VARIANTS[i]!.decoderFix === true;
          const cpu = process.cpuUsage();
          const started = process.hrtime.bigint();
          await timeEach(items, out[i]!.ns, () => t.roundTrip());
          out[i]!.wallNs += Number(process.hrtime.bigint() - started);
          const used = process.cpuUsage(cpu);
          out[i]!.cpuUs += used.user + used.system;
        }
      }
      const base = out[0]!;
      const baseCpu = base.cpuUs / base.ns.length;
      const rows = VARIANTS.map((v, i) => {
        const o = out[i]!;
        const cpu = o.cpuUs / o.ns.length;
        return [v.label, o.ns.length, fmt(percentile(o.ns, 50) / 1000, 0), fmt(percentile(o.ns, 99) / 1000, 0), fmt(cpu, 0),
          `${fmt(cpu / baseCpu, 2)}x`, fmt(o.ns.length / (o.wallNs / 1e9), 0), `${fmt((o.ns.length * body.bytes) / (o.wallNs / 1e9) / 2 ** 20, 0)}`];
      });
      sections.push(`### Body ${body.label}`, '', table(['transport', 'calls', 'p50 µs', 'p99 µs', 'CPU µs per call', 'CPU vs HTTP', 'calls/s', 'MiB/s'], rows), '');
    } finally {
      decoderFix = false;
      await Promise.all(transports.map((t) => t.close()));
    }
  }
  const markdown = [
    '## Peer-hit transport: pnet, yamux windows, HTTP keep-alive',
    '',
    `\`npm run bench -- p2p-transport\` · ${machineLine()} · ${load}`,
    '',
    `One ${REQUEST_BYTES} B request out and one body back per call, sequentially, over one long-lived connection (one`,
    'libp2p stream, or one keep-alive socket) on 127.0.0.1, both ends in this process: CPU per call is both ends\'. The',
    'rows run interleaved in blocks of calls, after a warm-up each. No cache protocol work here (sealing, proofs, CBOR):',
    'that is `peer-latency` above; this is the transport under it. noise reads its messages with @libp2p/utils\'',
    '`LengthPrefixedDecoder`, which reads a length prefix from the emptied buffer at the end of every chunk and catches',
    'the RangeError noise\'s length decoder constructs for it (docs/p2p-protocol.md, "Transport cost", item 2). The',
    'fleet\'s hosts stop each connection\'s decoder loop at an emptied buffer instead, and throw one preallocated',
    'RangeError when a chunk ends inside a length prefix (`fleetNoise`, src/p2p/noise-decoder.ts, per connection). The',
    'last row is the proposed upstream change (the same loop), patched into this process\'s prototype for that row only.',
    '',
    ...sections,
  ].join('\n');
  writeSection('p2p-transport', markdown);
  return markdown;
}
