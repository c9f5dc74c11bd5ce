/**
 * Fleet-wide invalidation (src/p2p/invalidation.ts): real GitHubAPICache nodes meshed over libp2p on loopback,
 * against the fake GitHub (support/fake-github/), as test/p2p-invalidation.spec.ts starts them.
 * - the write's own latency through a member of a 3-node fleet (which fans a notice out to 2 peers) beside the
 *   same write through a cache with P2P off and one with P2P on but no peer, in alternating blocks: the fan-out
 *   must not slow the write;
 * - how long after the write resolved both other members have applied its notice, beside a peer hit (one
 *   round trip to a key's owner on the same fleet): the target is "about one round trip".
 */
import { DEFAULT_ACCEPT, formatRequestKey, normalizeUrl } from '../src/cache/request-key.js';
import { scopeIdOf } from '../src/cache/scope.js';
import { GitHubAPICache } from '../src/github-api-cache.js';
import type { FleetStats } from '../src/cache/ports.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { TempDirs } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { expectSource, fmt, machineLine, percentile, table, writeSection } from './report.js';
import { loadLine } from './workload.js';

/** A made-up token the fake accepts; never printed. */
const TOKEN = 'test_benchmarkInvalidationTokenNotReal0000';
const SECRET = 'bench-invalidation-shared-secret-0123456789';
/** Below a peer's notice burst (256, then 8 a second), so no notice of the run is dropped for its rate. */
const WRITES = 200;
const WARM_UP = 20;
const BLOCK = 25;
const ISSUES = '/repos/bench/r/issues';

async function p2pOf(cache: GitHubAPICache): Promise<FleetStats> {
  return (await cache.getStats()).p2p!;
}

async function node(url: string, temp: TempDirs, bootstrap: string[]): Promise<GitHubAPICache> {
  const cache = await GitHubAPICache.create({
    persistence: 'off', cacheDir: temp.make(), githubApiUrl: url, maxEntries: 10_000,
    p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers: bootstrap },
  });
  await cache.p2pReady(); // without bootstrap peers create() resolves before the P2P host listens
  return cache;
}

export async function benchInvalidation(): Promise<string> {
  const load = loadLine();
  const temp = new TempDirs('gh-p2p-cache-bench-invalidation-');
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } } });
  const items = Array.from({ length: 2 * (WRITES + WARM_UP) }, (_, i) => ({ number: i + 1, title: 'old' }));
  fake.setCollection(ISSUES, items);
  fake.setResource('/rate_limit', { resources: {} });
  // Resources never written, for the peer hits (a read below a resource this node wrote goes to GitHub).
  for (let i = 0; i < 3 * (WRITES + WARM_UP); i++) fake.setResource(`/repos/bench/p${i}`, { i });
  const open: GitHubAPICache[] = [];
  try {
    const first = await node(fake.url, temp, []);
    open.push(first);
    const addr = (await p2pOf(first)).listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
    const others = await Promise.all([node(fake.url, temp, [addr]), node(fake.url, temp, [addr])]);
    open.push(...others);
    const [writer, b, c] = [first, others[0]!, others[1]!];
    const fleet = [writer, b, c];
    await Promise.all(fleet.map((m) => m.request('GET /rate_limit', {}, { token: TOKEN })));
    await waitFor(async () => (await Promise.all(fleet.map(p2pOf))).every((s) => s.peers.length === 2 && s.peers.every((p) => p.scopes >= 2)), 'scope claims', 20_000, 20);
    const plain = await GitHubAPICache.create({ persistence: 'off', cacheDir: temp.make(), githubApiUrl: fake.url });
    open.push(plain);
    // P2P on, no peer: a write with nothing to fan out to.
    const solo = await node(fake.url, temp, []);
    open.push(solo);

    const write = (cache: GitHubAPICache, n: number) => cache.request(`PATCH ${ISSUES}/${n}`, { title: `t${n}` }, { token: TOKEN });
    const received = async () => (await Promise.all([b, c].map(p2pOf))).map((s) => s.invalidationsReceived);
    const fleetWrite: number[] = [];
    const plainWrite: number[] = [];
    const soloWrite: number[] = [];
    const noticeAfter: number[] = [];
    // Writes to distinct issues: the fleet's on the first half, the plain cache's on the second.
    // Every timed write starts after the same pause, so none pays for the tail of what came before it.
    const settle = () => new Promise((resolve) => setTimeout(resolve, 5));
    const timedFleetWrite = async (n: number, keep: boolean) => {
      const before = await received();
      await settle();
      const start = process.hrtime.bigint();
      await write(writer, n);
      const resolved = process.hrtime.bigint();
      // Polled at once and after each turn: the notice is applied inside the receivers' own turns.
      for (const giveUp = Date.now() + 10_000; ;) {
        const now = await received();
        if (now.every((count, i) => count > before[i]!)) break;
        if (Date.now() > giveUp) throw new Error(`the notice of write ${n} did not reach both peers within 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const applied = process.hrtime.bigint();
      if (keep) {
        fleetWrite.push(Number(resolved - start));
        noticeAfter.push(Number(applied - resolved));
      }
    };
    const timedPlainWrite = async (n: number, keep: boolean) => {
      await settle();
      const start = process.hrtime.bigint();
      await write(plain, n);
      if (keep) plainWrite.push(Number(process.hrtime.bigint() - start));
      await settle();
      const soloStart = process.hrtime.bigint();
      await write(solo, n);
      if (keep) soloWrite.push(Number(process.hrtime.bigint() - soloStart));
    };
    for (let i = 1; i <= WARM_UP; i++) {
      await timedFleetWrite(i, false);
      await timedPlainWrite(WRITES + WARM_UP + i, false);
    }
    for (let from = WARM_UP + 1; from <= WARM_UP + WRITES; from += BLOCK) {
      const block = Array.from({ length: Math.min(BLOCK, WARM_UP + WRITES + 1 - from) }, (_, k) => from + k);
      for (const n of block) await timedFleetWrite(n, true);
      for (const n of block) await timedPlainWrite(WRITES + WARM_UP + n, true);
    }

    // One round trip for reference: peer hits on the same fleet (keys c owns and holds, asked by the writer).
    const ids = await Promise.all(fleet.map(async (m) => (await p2pOf(m)).peerId));
    const keyOf = (n: number) => formatRequestKey({ url: normalizeUrl(`${fake.url}/repos/bench/p${n}`), method: 'GET', scopeId: scopeIdOf(TOKEN), accept: DEFAULT_ACCEPT });
    const owned = Array.from({ length: 3 * (WRITES + WARM_UP) }, (_, i) => i).filter((n) => rendezvousOwner(keyOf(n), ids) === ids[2]).slice(0, WRITES + WARM_UP);
    for (const n of owned) expectSource(await c.request(`GET /repos/bench/p${n}`, {}, { token: TOKEN }), 'origin');
    const peerHit: number[] = [];
    for (const [i, n] of owned.entries()) {
      const start = process.hrtime.bigint();
      expectSource(await writer.request(`GET /repos/bench/p${n}`, {}, { token: TOKEN }), 'peer');
      if (i >= WARM_UP) peerHit.push(Number(process.hrtime.bigint() - start));
    }

    const ms = (ns: number) => fmt(ns / 1e6, 2);
    const row = (name: string, ns: number[]) => [name, ns.length, ms(percentile(ns, 50)), ms(percentile(ns, 90)), ms(percentile(ns, 99))];
    const markdown = [
      '## Fleet-wide invalidation: write latency and notice delay',
      '',
      `bench/invalidation.ts: ${WRITES} PATCHes of distinct issues through one member of a 3-node fleet on loopback (the fake GitHub`,
      'answering at once), each after a 5 ms pause, in alternating blocks of 25 with the same writes through a cache with P2P off and one with P2P on',
      'but no peer (the fake\'s PATCH merges, so the second write of an issue costs the same); after each fleet',
      'write, the time until both other members have applied its notice (their `invalidationsReceived` grew, polled every',
      'millisecond, so the row is at least the polling\'s granularity). All five caches share one process, so every hop',
      'waits for the same event loop. For scale, a peer hit on the same fleet: one `get` to a key\'s owner and its entry',
      'back over the open stream (a notice goes one way over its own open stream: half a round trip).',
      '',
      table(['row', 'n', 'p50 ms', 'p90 ms', 'p99 ms'], [
        row('write, P2P off', plainWrite),
        row('write, P2P on without peers', soloWrite),
        row('write through a fleet member (fan-out to 2 peers)', fleetWrite),
        row('notice applied on both peers, after the write resolved', noticeAfter),
        row('peer hit (one round trip to the owner)', peerHit),
      ]),
      '',
      `Write through the fleet member over P2P on without peers, p50: ${fmt(percentile(fleetWrite, 50) / percentile(soloWrite, 50), 2)}x; over P2P off: ${fmt(percentile(fleetWrite, 50) / percentile(plainWrite, 50), 2)}x. ${machineLine()}. ${load}`,
    ].join('\n');
    writeSection('invalidation', markdown);
    return markdown;
  } finally {
    await Promise.all(open.map((c) => c.close()));
    await fake.close();
    temp.removeAll();
  }
}
