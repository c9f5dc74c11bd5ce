/**
 * Large entries beside small ones (src/p2p/serving.ts, transfers.ts): two PeerNetworks on loopback, the owner
 * holding small entries and 2 MiB ones. The asker's small peer hits (one at a time) are timed alone and while
 * two loops fetch 2 MiB entries from the same owner on the same stream. Two settings alternate, each on a fresh
 * pair: `largeEntryBytes` at 4 MiB (every entry in one `entry` frame: the behaviour before) and at its default
 * (256 KiB pieces). Also how fast the 2 MiB entries came.
 */
import { randomBytes } from 'node:crypto';
import { sha256Hex, type CacheEntry } from '../src/cache/entry.js';
import type { FleetHost } from '../src/cache/ports.js';
import { formatRequestKey } from '../src/cache/request-key.js';
import { ANONYMOUS_SCOPE } from '../src/cache/scope.js';
import { DEFAULTS } from '../src/options.js';
import { PeerNetwork, type PeerNetworkLimits } from '../src/p2p/peer-network.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { TempDirs } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { fmt, machineLine, percentile, table, writeSection } from './report.js';
import { loadLine } from './workload.js';

const SECRET = 'bench-large-shared-secret-0123456789abcdef';
const SMALL_KEYS = 200;
const BIG_KEYS = 8;
const BIG_BYTES = 2 * 1024 * 1024;
const SMALL_HITS = 150;
const BIG_LOOPS = 2;
const ROUNDS = 3;
const MiB = 1024 * 1024;

/** A cache in miniature for the owner: fresh entries by key, nothing upstream. */
function backend(store: Map<string, CacheEntry>): FleetHost {
  return {
    heldEntry: (key) => store.get(key),
    serveAsOwner: async (key) => store.get(key),
    invalidateFromPeer: () => 0,
    scopes: { entryKey: () => undefined, heldScopes: () => [ANONYMOUS_SCOPE], onScopeAdded: () => () => {} },
  };
}

function entryOf(body: Uint8Array): CacheEntry {
  const now = Date.now();
  return { body: Buffer.from(body), digest: sha256Hex(body), storedAt: now, expiresAt: now + 600_000, status: 200, headers: { 'content-type': 'application/json' } };
}

interface Round {
  pieces: boolean;
  aloneMs: number[];
  loadedMs: number[];
  bigMiBps: number;
  bigFetched: number;
}

export async function benchLargeEntries(): Promise<string> {
  const load = loadLine();
  const rounds: Round[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const pieces of [false, true]) rounds.push(await runRound(pieces));
  }
  const rows = [false, true].map((pieces) => {
    const rs = rounds.filter((r) => r.pieces === pieces);
    const alone = rs.flatMap((r) => r.aloneMs);
    const loaded = rs.flatMap((r) => r.loadedMs);
    return [
      pieces ? 'in 256 KiB pieces between other answers (after)' : 'one frame per entry (before)',
      fmt(percentile(alone, 50), 2), fmt(percentile(alone, 99), 2),
      fmt(percentile(loaded, 50), 2), fmt(percentile(loaded, 99), 2),
      fmt(percentile(loaded, 99) / percentile(alone, 99), 1) + 'x',
      fmt(rs.reduce((sum, r) => sum + r.bigMiBps, 0) / rs.length, 0),
    ];
  });
  const md = [
    '## Large entries beside small ones',
    '',
    `\`npm run bench -- large-entries\` · ${machineLine()} · two PeerNetworks in this process on 127.0.0.1; the owner holds ${SMALL_KEYS}`,
    `small entries and ${BIG_KEYS} of ${BIG_BYTES / MiB} MiB. The asker makes ${SMALL_HITS} small peer hits one at a time, alone and while ${BIG_LOOPS} loops fetch`,
    `${BIG_BYTES / MiB} MiB entries from the same owner (the same stream). ${ROUNDS} rounds per row, alternating, each on a fresh pair. ${load}`,
    '',
    table(['large answers sent', 'small hit alone p50 ms', 'p99 ms', 'beside 2 MiB transfers p50 ms', 'p99 ms', 'p99 beside / alone', '2 MiB transfers MiB/s'], rows),
    '',
    'Before, a small answer queued behind a 2 MiB `entry` waited for all of it; now it waits for one 256 KiB piece at most.',
  ].join('\n');
  writeSection('large-entries', md);
  return md;
}

async function runRound(pieces: boolean): Promise<Round> {
  const temp = new TempDirs('gh-p2p-cache-bench-large-');
  const limits: Partial<PeerNetworkLimits> = pieces ? {} : { largeEntryBytes: 4 * MiB };
  const p2p = {
    enabled: true, listenPort: 0, listenHost: '127.0.0.1', bootstrapPeers: [] as string[], sharedSecret: SECRET, membership: DEFAULTS.membership, mdns: false, keepAlive: false,
    requestTimeoutMs: DEFAULTS.requestTimeoutMs, dialTimeoutMs: DEFAULTS.dialTimeoutMs, maxFrameBytes: DEFAULTS.maxFrameBytes,
    maxEntryTtl: DEFAULTS.maxEntryTtl, handoff: false, startWaitMs: 0,
  };
  const ownerStore = new Map<string, CacheEntry>();
  const owner = await PeerNetwork.start({ p2p, cacheDir: temp.make(), host: backend(ownerStore), limits });
  const addr = owner.stats().listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
  const asker = await PeerNetwork.start({ p2p: { ...p2p, bootstrapPeers: [addr] }, cacheDir: temp.make(), host: backend(new Map()), limits });
  try {
    await waitFor(() => asker.stats().peers.length === 1 && owner.stats().peers.length === 1, 'the pair to speak the protocol', 10_000, 20);
    const ids = [owner.peerId, asker.peerId];
    const keys = (tag: string, count: number): string[] => {
      const out: string[] = [];
      for (let n = 0; out.length < count; n++) {
        const key = formatRequestKey({ scopeId: ANONYMOUS_SCOPE, method: 'GET', url: `https://api.github.com/repos/bench/${tag}-${n}`, accept: 'application/vnd.github+json' });
        if (rendezvousOwner(key, ids) === owner.peerId) out.push(key);
      }
      return out;
    };
    const small = keys('small', SMALL_KEYS);
    const big = keys('big', BIG_KEYS);
    for (const key of small) ownerStore.set(key, entryOf(Buffer.from(JSON.stringify({ key, pad: 'x'.repeat(900) }))));
    for (const key of big) ownerStore.set(key, entryOf(randomBytes(BIG_BYTES)));

    const hits = async (into: number[]): Promise<void> => {
      for (let i = 0; i < SMALL_HITS; i++) {
        const at = performance.now();
        const answer = await asker.fetch(small[i % small.length]!, ANONYMOUS_SCOPE);
        into.push(performance.now() - at);
        if (answer.kind !== 'entry') throw new Error(`a small hit answered ${answer.kind}`);
      }
    };
    const aloneMs: number[] = [];
    await hits(aloneMs);
    let stop = false;
    let bigFetched = 0;
    const started = performance.now();
    const loops = Array.from({ length: BIG_LOOPS }, async (_, loop) => {
      for (let i = loop; !stop; i++) {
        const answer = await asker.fetch(big[i % big.length]!, ANONYMOUS_SCOPE);
        if (answer.kind !== 'entry') throw new Error(`a 2 MiB fetch answered ${answer.kind}`);
        bigFetched++;
      }
    });
    // Let the transfers get going before timing.
    await waitFor(() => bigFetched >= BIG_LOOPS, 'the first large transfers', 30_000, 1);
    const loadedMs: number[] = [];
    await hits(loadedMs);
    stop = true;
    await Promise.all(loops);
    const seconds = (performance.now() - started) / 1000;
    return { pieces, aloneMs, loadedMs, bigMiBps: (bigFetched * BIG_BYTES) / MiB / seconds, bigFetched };
  } finally {
    await Promise.all([asker.stop(), owner.stop()]);
    temp.removeAll();
  }
}
