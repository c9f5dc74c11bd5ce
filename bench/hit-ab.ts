/**
 * One warm key repeated, as the compare benchmark's `cache.request` member measures it, with one harness for two
 * builds of the library: this checkout and an earlier commit's build. Only the library differs between the two
 * contenders, never the workload or the timing code.
 *
 *   node dist/bench/hit-ab.js --baseline <dir> [--label <commit>] [--rounds 4]
 *
 * `<dir>`: the `dist/` of an earlier commit, built in a worktree, e.g.
 *   git worktree add /tmp/before <commit> && ln -s <repo>/node_modules /tmp/before/ && (cd /tmp/before && npx tsc -p tsconfig.json)
 *   node dist/bench/hit-ab.js --baseline /tmp/before/dist
 *
 * Each round runs each contender in a fresh process (alternating): a cache with SQLite persistence and an injected
 * clock against the fake GitHub (20 ms latency, as in the compare benchmark), the compare workload first (3,000 Zipf GETs over 300 repositories,
 * 50 in flight), then 200 untimed and 2,000 timed `cache.request` calls on the hottest key, each awaited. Medians
 * of the rounds' p50 and p99 go to docs/benchmarks.md (section `hit-ab`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FakeGitHub } from '../support/fake-github/index.js';
import { zipfIndices } from '../support/workload.js';
import { argValue as arg, childReport, fmt, machineLine, median, percentile, table, writeSection } from './report.js';
import { loadLine, repoBody } from './workload.js';

const SELF = fileURLToPath(import.meta.url);
const THIS_DIST = path.resolve(path.dirname(SELF), '..');
const TOKEN = `bench_${'h'.repeat(34)}`;
const REPOS = 300;
const WORKLOAD = 3000;
const IN_FLIGHT = 50;
const WARMUP = 200;
const ITERATIONS = 2000;

interface Sample { p50Us: number; p99Us: number }

async function child(): Promise<void> {
  const dist = process.env.BENCH_LIBRARY_DIST!;
  const { GitHubAPICache } = await import(pathToFileURL(path.join(dist, 'index.js')).href) as typeof import('../index.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-p2p-cache-bench-hit-ab-'));
  const clock = { offsetMs: 0 };
  const now = () => Date.now() + clock.offsetMs;
  const cache = await GitHubAPICache.create({ cacheDir: dir, githubApiUrl: process.env.BENCH_GITHUB_URL!, now, p2p: { enabled: false } });
  const get = async (repo: string) => {
    const answer = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo }, { token: TOKEN });
    return { status: answer.status, source: answer.source };
  };
  const order = zipfIndices(REPOS, 1.0, WORKLOAD, 42);
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < order.length) await get(`repo-${order[next++]!}`);
  }));
  for (let i = 0; i < WARMUP; i++) await get('repo-0');
  const ns: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const started = process.hrtime.bigint();
    const answer = await get('repo-0');
    ns.push(Number(process.hrtime.bigint() - started));
    if (answer.source !== 'memory') throw new Error(`expected a memory hit, got ${answer.source}`);
  }
  await cache.close();
  fs.rmSync(dir, { recursive: true, force: true });
  process.send!({ p50Us: percentile(ns, 50) / 1000, p99Us: percentile(ns, 99) / 1000 } satisfies Sample);
}

function runChild(libraryDist: string, githubUrl: string): Promise<Sample> {
  return childReport(SELF, { BENCH_LIBRARY_DIST: libraryDist, BENCH_GITHUB_URL: githubUrl });
}

export async function benchHitAb(): Promise<string> {
  const baseline = arg('baseline');
  if (baseline === undefined) throw new Error('hit-ab needs --baseline <dist dir of an earlier build> (see the header of bench/hit-ab.ts)');
  const rounds = Number(arg('rounds') ?? 4);
  const load = loadLine();
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } }, latencyMs: 20 });
  try {
    for (let i = 0; i < REPOS; i++) fake.setResource(`/repos/o/repo-${i}`, repoBody('o', `repo-${i}`, i));
    const before: Sample[] = [];
    const now: Sample[] = [];
    for (let round = 0; round < rounds; round++) {
      before.push(await runChild(path.resolve(baseline), fake.url));
      now.push(await runChild(THIS_DIST, fake.url));
    }
    const med = (samples: Sample[], pick: (s: Sample) => number) => median(samples.map(pick));
    const list = (samples: Sample[], pick: (s: Sample) => number) => samples.map((s) => fmt(pick(s))).join(' / ');
    const md = [
      '## Hit path: one warm key repeated, one harness for two builds',
      '',
      `\`node dist/bench/hit-ab.js --baseline <dist>\` · ${machineLine()} · ${rounds} rounds, each build in a fresh process, alternating.`,
      `Each process: SQLite persistence, an injected clock, the compare workload first (${WORKLOAD.toLocaleString('en-US')} Zipf GETs over ${REPOS}`,
      `repositories, ${IN_FLIGHT} in flight, 2 ms upstream), then ${WARMUP} untimed and ${ITERATIONS.toLocaleString('en-US')} timed awaited \`cache.request\` calls on the`,
      'hottest key. The harness is this checkout\'s; only the library build differs.',
      load,
      '',
      table(['build', 'p50 µs per round', 'p50 µs (median)', 'p99 µs per round', 'p99 µs (median)'], [
        [`baseline (${arg('label') ?? path.resolve(baseline)})`, list(before, (s) => s.p50Us), fmt(med(before, (s) => s.p50Us)), list(before, (s) => s.p99Us), fmt(med(before, (s) => s.p99Us))],
        ['this checkout', list(now, (s) => s.p50Us), fmt(med(now, (s) => s.p50Us)), list(now, (s) => s.p99Us), fmt(med(now, (s) => s.p99Us))],
      ]),
      '',
      `This checkout over the baseline: p50 ${fmt(med(now, (s) => s.p50Us) / med(before, (s) => s.p50Us), 2)}x, p99 ${fmt(med(now, (s) => s.p99Us) / med(before, (s) => s.p99Us), 2)}x.`,
    ].join('\n');
    writeSection('hit-ab', md);
    return md;
  } finally {
    await fake.close();
  }
}

if (process.argv.includes('--child')) {
  await child();
} else if (process.argv[1] === SELF) {
  console.log(await benchHitAb());
}
