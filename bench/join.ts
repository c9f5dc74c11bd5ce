/**
 * A member joining a warm fleet (hand-off, src/p2p/asking.ts): three GitHubAPICache nodes meshed over libp2p on
 * loopback, warm (the first read every key, so each key's owner holds it), then a fourth joins and reads every
 * key, then all four do. Rounds alternate `p2p.handoff` off (the behaviour before) and on, each on a fresh fleet
 * and fake GitHub. Also the price of hand-off where it cannot help: the joiner's reads of keys it owns that no
 * member holds (each pays one hand-off round trip before its upstream request).
 */
import { GitHubAPICache } from '../src/github-api-cache.js';
import { DEFAULT_ACCEPT, formatRequestKey, normalizeUrl } from '../src/cache/request-key.js';
import { scopeIdOf } from '../src/cache/scope.js';
import type { PeerNetworkStats } from '../src/p2p/peer-network.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { TempDirs } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { fmt, machineLine, median, percentile, table, writeSection } from './report.js';
import { loadLine, repoBody } from './workload.js';

/** A made-up token the fake accepts; never printed. */
const TOKEN = 'test_benchmarkJoinTokenNotARealOne0000000';
const SECRET = 'bench-join-shared-secret-0123456789abcdef';
const OWNER = 'bench';
const KEYS = 200;
/** Resources nobody reads before the joiner: the cold keys of the price row. */
const COLD_POOL = 200;
const LATENCY_MS = 20;
const IN_FLIGHT = 10;
const ROUNDS = 3;

interface RoundResult {
  handoff: boolean;
  joinerOwns: number;
  /** Upstream requests of the joiner's pass over every key, and of the pass of all four after it. */
  joinerUpstream: number;
  allUpstream: number;
  /** From the joiner's first read to its first answer from a peer, and of the joiner's whole pass. */
  firstPeerMs: number;
  passMs: number;
  /** Latency of the joiner's reads of keys it owns (warm: held by their previous owner). */
  ownedMs: number[];
  /** Latency of the joiner's reads of cold keys it owns (no member holds them). */
  coldOwnedMs: number[];
  handoffsSent: number;
  handoffEntries: number;
}

export async function benchJoin(): Promise<string> {
  const load = loadLine();
  const results: RoundResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const handoff of [false, true]) results.push(await runRound(handoff));
  }
  const rows = [false, true].map((handoff) => {
    const rs = results.filter((r) => r.handoff === handoff);
    const all = (pick: (r: RoundResult) => number[]) => rs.flatMap(pick);
    return [
      handoff ? 'hand-off on (after)' : 'hand-off off (before)',
      fmt(median(rs.map((r) => r.joinerOwns)), 0),
      rs.map((r) => r.joinerUpstream).join(' / '),
      rs.map((r) => r.allUpstream).join(' / '),
      fmt(median(rs.map((r) => r.firstPeerMs)), 1),
      fmt(percentile(all((r) => r.ownedMs), 50), 2),
      fmt(percentile(all((r) => r.ownedMs), 99), 2),
      fmt(median(rs.map((r) => r.passMs)), 0),
      fmt(percentile(all((r) => r.coldOwnedMs), 50), 2),
      rs.map((r) => `${r.handoffEntries}/${r.handoffsSent}`).join(' / '),
    ];
  });
  const md = [
    '## A member joining a warm fleet',
    '',
    `\`npm run bench -- join\` · ${machineLine()} · three caches meshed over libp2p on 127.0.0.1, one token, ${LATENCY_MS} ms latency injected by`,
    `the fake GitHub; the first node reads ${KEYS} keys (so each key's owner holds it fresh), then a fourth node joins (bootstrapped to`,
    `the first) and, once it speaks the protocol with all three and they proved the scope, reads every key (${IN_FLIGHT} in flight);`,
    `then all four read every key at once. Then the joiner reads ${COLD_POOL} keys no member holds, one at a time: those it owns show`,
    `what a hand-off ask costs where it cannot help. ${ROUNDS} rounds per row, alternating, each on a fresh fleet and fake. ${load}`,
    '',
    table([
      'run', 'keys the joiner owns (median)', 'upstream: joiner\'s pass (per round)', 'upstream: all four after (per round)',
      'joiner\'s first read to first peer answer, ms (median)', 'joiner\'s owned warm keys p50 ms', 'p99 ms', 'joiner\'s pass ms (median)',
      'owned cold keys p50 ms', 'hand-off entries / asks (per round)',
    ], rows),
    '',
    'Before, every key the joiner comes to own is fetched from GitHub again (about a quarter of them); with hand-off the joiner',
    'asks each such key\'s previous owner first and the fleet spends no upstream request on keys it holds fresh. The price is one',
    'extra round trip on loopback per owned key nobody holds, paid only within `p2p.maxEntryTtl` after the node started or a',
    'member left (the only times keys move to a node); past that window no previous holder can hold a fresh entry.',
  ].join('\n');
  writeSection('join', md);
  return md;
}

async function runRound(handoff: boolean): Promise<RoundResult> {
  const temp = new TempDirs('gh-p2p-cache-bench-join-');
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } } });
  const nodes: GitHubAPICache[] = [];
  try {
    fake.setResource('/rate_limit', { resources: {} });
    for (let i = 0; i < KEYS + COLD_POOL; i++) fake.setResource(`/repos/${OWNER}/repo-${i}`, repoBody(OWNER, `repo-${i}`, i));
    fake.setLatency(LATENCY_MS);
    const make = async (bootstrapPeers: string[]) => {
      const cache = await GitHubAPICache.create({
        persistence: 'off', cacheDir: temp.make(), githubApiUrl: fake.url,
        p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers, handoff },
      });
      await cache.p2pReady();
      return cache;
    };
    const first = await make([]);
    nodes.push(first);
    const addr = (await p2pOf(first)).listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
    nodes.push(...await Promise.all([make([addr]), make([addr])]));
    await shareScope(nodes);
    await readAll(first, range(0, KEYS));
    const joiner = await make([addr]);
    nodes.push(joiner);
    await shareScope(nodes);
    const ids = await Promise.all(nodes.map(async (c) => (await p2pOf(c)).peerId));
    const owned = (i: number) => rendezvousOwner(keyOf(fake.url, i), ids) === ids[3];
    fake.resetStats();

    const ownedMs: number[] = [];
    let firstPeerMs = Infinity;
    const start = performance.now();
    await readAll(joiner, range(0, KEYS), (i, ms, source) => {
      if (source === 'peer') firstPeerMs = Math.min(firstPeerMs, performance.now() - start);
      if (owned(i)) ownedMs.push(ms);
    });
    const passMs = performance.now() - start;
    const joinerUpstream = fake.stats.requests;
    await Promise.all(nodes.map((c) => readAll(c, range(0, KEYS))));
    const allUpstream = fake.stats.requests;

    const coldOwnedMs: number[] = [];
    for (const i of range(KEYS, KEYS + COLD_POOL).filter(owned)) {
      const at = performance.now();
      await read(joiner, i);
      coldOwnedMs.push(performance.now() - at);
    }
    const stats = await p2pOf(joiner);
    return {
      handoff, joinerOwns: range(0, KEYS).filter(owned).length, joinerUpstream, allUpstream, firstPeerMs, passMs, ownedMs, coldOwnedMs,
      handoffsSent: stats.handoffsSent, handoffEntries: stats.handoffEntries,
    };
  } finally {
    await Promise.all(nodes.map((c) => c.close()));
    await fake.close();
    temp.removeAll();
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, n) => from + n);
}

function read(cache: GitHubAPICache, i: number) {
  return cache.request('GET /repos/{owner}/{repo}', { owner: OWNER, repo: `repo-${i}` }, { token: TOKEN });
}

/** Reads `keys` with IN_FLIGHT workers; `each` gets each read's latency (ms) and source. */
async function readAll(cache: GitHubAPICache, keys: number[], each?: (i: number, ms: number, source: string) => void): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < keys.length) {
      const i = keys[next++]!;
      const at = performance.now();
      const response = await read(cache, i);
      each?.(i, performance.now() - at, response.source);
    }
  }));
}

async function p2pOf(cache: GitHubAPICache): Promise<PeerNetworkStats> {
  return (await cache.getStats()).p2p!;
}

/** Each node uses the token (claiming its scope); resolves once every node saw every other prove it. */
async function shareScope(nodes: GitHubAPICache[]): Promise<void> {
  await Promise.all(nodes.map((c) => c.request('GET /rate_limit', {}, { token: TOKEN })));
  await waitFor(async () => (await Promise.all(nodes.map(p2pOf)))
    .every((s) => s.peers.length >= nodes.length - 1 && s.peers.every((p) => p.scopes >= 2)), 'scope claims', 15_000, 20);
}

function keyOf(githubApiUrl: string, i: number): string {
  return formatRequestKey({ url: normalizeUrl(`${githubApiUrl}/repos/${OWNER}/repo-${i}`), method: 'GET', scopeId: scopeIdOf(TOKEN), accept: DEFAULT_ACCEPT });
}
