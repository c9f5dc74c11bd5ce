/**
 * Peer hits with one harness for two builds of the library: this checkout and an earlier build. Only the library
 * differs between the two contenders, never the workload or the timing code.
 *
 *   node dist/bench/peer-ab.js --baseline <dir> [--label <commit>] [--rounds 6]
 *
 * `<dir>`: the `dist/` of an earlier commit (see the header of bench/hit-ab.ts for building one).
 *
 * Each round is a fresh process holding both builds (their modules loaded from their own dist; libp2p is the one
 * copy in node_modules). For each build: two caches with P2P on (TCP, pnet, noise, yamux on 127.0.0.1, both in
 * that process, so CPU per hit is the asker's and the owner's), sharing the token's scope; the owner holds its
 * keys fresh; 300 untimed peer hits. Then 2,000 timed peer hits per build (each a distinct key, checked to answer
 * `source: 'peer'`) with 1 request in flight, then 2,000 with 100 in flight, in blocks (100, 500) that alternate
 * between the builds, so both see the same machine. Medians of the rounds go to docs/benchmarks.md (section
 * `peer-ab`). The fake GitHub runs in the parent process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { GitHubAPICache as Cache } from '../index.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { waitFor } from '../support/wait.js';
import { pool } from '../support/workload.js';
import { argValue as arg, childReport, fmt, machineLine, median, table, writeSection } from './report.js';
import { loadLine, repoBody } from './workload.js';

const SELF = fileURLToPath(import.meta.url);
const THIS_DIST = path.resolve(path.dirname(SELF), '..');
const TOKEN = `bench_${'p'.repeat(34)}`;
const SECRET = 'bench-peer-ab-shared-secret-0123456789abcdef';
const WARMUP = 300;
const HITS = 2_000;
const IN_FLIGHT = [1, 100] as const;
/** Hits per block (five waves at 100 in flight); the two builds' blocks alternate. */
const blockOf = (inFlight: number): number => Math.max(100, 5 * inFlight);
/** Resources on the fake: the owner (about half of them) must own WARMUP + HITS per in-flight setting. */
const POOL = 3 * (WARMUP + HITS * IN_FLIGHT.length) + 600;

type Sample = Record<string, { hitsPerS: number; cpuUs: number }>;

/** One build's asker and owner, meshed and warm, with the owner's keys not yet asked for. */
async function pairOf(dist: string, url: string, dirs: string[]): Promise<{ hit(): Promise<void>; close(): Promise<void> }> {
  const lib = (file: string) => import(pathToFileURL(path.join(dist, file)).href);
  const { GitHubAPICache } = await lib('index.js') as typeof import('../index.js');
  const { rendezvousOwner } = await lib('src/p2p/rendezvous.js') as typeof import('../src/p2p/rendezvous.js');
  const { DEFAULT_ACCEPT, formatRequestKey, normalizeUrl } = await lib('src/cache/request-key.js') as typeof import('../src/cache/request-key.js');
  const { scopeIdOf } = await lib('src/cache/scope.js') as typeof import('../src/cache/scope.js');
  const make = async (bootstrapPeers: string[]) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-p2p-cache-bench-peer-ab-'));
    dirs.push(dir);
    const cache = await GitHubAPICache.create({
      persistence: 'off', cacheDir: dir, githubApiUrl: url, maxEntries: 2 * POOL,
      p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers },
    });
    await cache.p2pReady();
    return cache;
  };
  const p2p = async (cache: Cache) => (await cache.getStats()).p2p!;
  const owner = await make([]);
  const asker = await make([(await p2p(owner)).listenAddrs.find((a) => a.includes('/127.0.0.1/'))!]);
  const both = [asker, owner];
  await waitFor(async () => (await Promise.all(both.map(p2p))).every((s) => s.peers.length >= 1), 'the two connected', 20_000, 20);
  await Promise.all(both.map((c) => c.request('GET /rate_limit', {}, { token: TOKEN })));
  await waitFor(async () => (await Promise.all(both.map(p2p))).every((s) => s.peers.length >= 1 && s.peers.every((p) => p.scopes >= 2)), 'scope claims', 20_000, 20);
  const ids = [(await p2p(asker)).peerId, (await p2p(owner)).peerId];
  const keyOf = (repo: string) => formatRequestKey({ url: normalizeUrl(`${url}/repos/o/${repo}`), method: 'GET', scopeId: scopeIdOf(TOKEN), accept: DEFAULT_ACCEPT });
  const owned = Array.from({ length: POOL }, (_, i) => `repo-${i}`).filter((repo) => rendezvousOwner(keyOf(repo), ids) === ids[1]);
  if (owned.length < WARMUP + HITS * IN_FLIGHT.length) throw new Error(`the owner owns only ${owned.length} keys`);
  const get = async (cache: Cache, repo: string, want: string) => {
    const answer = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo }, { token: TOKEN });
    if (answer.source !== want) throw new Error(`expected ${want} for ${repo}, got ${answer.source}`);
  };
  await pool(owned, 20, (repo) => get(owner, repo, 'origin'));
  let next = 0;
  for (const repo of owned.slice(0, WARMUP)) await get(asker, repo, 'peer');
  next = WARMUP;
  return {
    hit: () => get(asker, owned[next++]!, 'peer'),
    close: async () => {
      await Promise.all(both.map((c) => c.close()));
    },
  };
}

/** Both builds in this one process, their blocks of hits interleaved, so both see the same machine. */
async function child(): Promise<void> {
  const url = process.env.BENCH_GITHUB_URL!;
  const dirs: string[] = [];
  const pairs = [await pairOf(process.env.BENCH_BASELINE_DIST!, url, dirs), await pairOf(THIS_DIST, url, dirs)];
  const samples: [Sample, Sample] = [{}, {}];
  try {
    for (const inFlight of IN_FLIGHT) {
      const totals = pairs.map(() => ({ wallNs: 0, cpuUs: 0, hits: 0 }));
      const block = blockOf(inFlight);
      for (let done = 0; done < HITS; done += block) {
        for (const [i, pair] of pairs.entries()) {
          let remaining = block;
          const cpu = process.cpuUsage();
          const started = process.hrtime.bigint();
          await Promise.all(Array.from({ length: inFlight }, async () => {
            while (remaining > 0) {
              remaining--;
              await pair.hit();
            }
          }));
          totals[i]!.wallNs += Number(process.hrtime.bigint() - started);
          const used = process.cpuUsage(cpu);
          totals[i]!.cpuUs += used.user + used.system;
          totals[i]!.hits += block;
        }
      }
      for (const [i, t] of totals.entries()) samples[i]![String(inFlight)] = { hitsPerS: t.hits / (t.wallNs / 1e9), cpuUs: t.cpuUs / t.hits };
    }
  } finally {
    await Promise.all(pairs.map((p) => p.close()));
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
  process.send!(samples);
}

export async function benchPeerAb(): Promise<string> {
  const baseline = arg('baseline');
  if (baseline === undefined) throw new Error('peer-ab needs --baseline <dist dir of an earlier build> (see the header of bench/peer-ab.ts)');
  const rounds = Number(arg('rounds') ?? 6);
  const load = loadLine();
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } } });
  try {
    fake.setResource('/rate_limit', { resources: {} });
    for (let i = 0; i < POOL; i++) fake.setResource(`/repos/o/repo-${i}`, repoBody('o', `repo-${i}`, i));
    const before: Sample[] = [];
    const now: Sample[] = [];
    for (let round = 0; round < rounds; round++) {
      const [b, n] = await childReport<[Sample, Sample]>(SELF, { BENCH_BASELINE_DIST: path.resolve(baseline), BENCH_GITHUB_URL: fake.url });
      before.push(b);
      now.push(n);
    }
    const med = (samples: Sample[], inFlight: number, pick: 'hitsPerS' | 'cpuUs') => median(samples.map((s) => s[String(inFlight)]![pick]));
    const list = (samples: Sample[], inFlight: number, pick: 'hitsPerS' | 'cpuUs') => samples.map((s) => fmt(s[String(inFlight)]![pick], 0)).join(' / ');
    const rows = IN_FLIGHT.flatMap((n) => [
      [String(n), `baseline (${arg('label') ?? path.resolve(baseline)})`, list(before, n, 'hitsPerS'), fmt(med(before, n, 'hitsPerS'), 0), list(before, n, 'cpuUs'), fmt(med(before, n, 'cpuUs'), 0), '—'],
      [String(n), 'this checkout', list(now, n, 'hitsPerS'), fmt(med(now, n, 'hitsPerS'), 0), list(now, n, 'cpuUs'), fmt(med(now, n, 'cpuUs'), 0),
        `${fmt(med(now, n, 'hitsPerS') / med(before, n, 'hitsPerS'), 2)}x hits/s, ${fmt(med(now, n, 'cpuUs') / med(before, n, 'cpuUs'), 2)}x CPU`],
    ]);
    const md = [
      '## Peer hits, one harness for two builds',
      '',
      `\`node dist/bench/peer-ab.js --baseline <dist>\` · ${machineLine()} · ${rounds} rounds, each a fresh process holding both builds.`,
      'For each build: an asker and an owner (two caches with P2P on, TCP + pnet + noise + yamux on 127.0.0.1, both in that',
      `process: CPU per hit is both sides'), the owner holding its keys fresh; ${WARMUP} untimed peer hits, then ${HITS.toLocaleString('en-US')} timed ones (distinct`,
      `keys, each checked to answer \`source: 'peer'\`) at 1 and at 100 in flight, in blocks of ${blockOf(1)} and ${blockOf(100)} alternating between the builds. The harness`,
      'is this checkout\'s; only the library build differs (libp2p is the same copy for both).',
      load,
      '',
      table(['in flight', 'build', 'hits/s per round', 'hits/s (median)', 'CPU µs per hit, per round', 'CPU µs per hit (median)', 'this checkout / baseline'], rows),
    ].join('\n');
    writeSection('peer-ab', md);
    return md;
  } finally {
    await fake.close();
  }
}

if (process.argv.includes('--child')) {
  await child();
} else if (process.argv[1] === SELF) {
  console.log(await benchPeerAb());
}
