/**
 * `startup`: start to first answer, each sample a fresh process (bench/startup-member.ts) making one GET
 * against the loopback fake GitHub: this library with P2P off, with P2P on (the default: the host starts in the
 * background), with P2P on and `p2p.startWaitMs` (the first GET waits for the host), and undici's cache.
 * A fourth row awaits `p2pReady()` before its GET: the start-up `create()` had when it waited for the host.
 * Rounds interleave the variants (the order rotates each round), so load on the machine hits all of them alike.
 * Target: P2P on at most 1.2x P2P off (median).
 *
 * Under it, a fleet started together: three processes on fixed ports, each bootstrapped to the other two, each
 * running the same 60 GETs right after create() (10 in flight, 20 ms upstream), once with the default (a member
 * with bootstrap peers waits up to 5 s for its sessions with them) and once with `p2p.startWaitMs: 0`: upstream
 * requests over the 60 distinct resources, and time to each member's first answer.
 */
import { execFile, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FakeGitHub } from '../support/fake-github/index.js';
import { freePort } from '../support/ports.js';
import { TempDirs } from '../support/temp-dir.js';
import { fmt, machineLine, median, table, writeSection } from './report.js';
import { loadLine } from './workload.js';

const TOKEN = 'test_benchmarkStartupTokenNotARealOne000';
const MEMBER = fileURLToPath(new URL('./startup-member.js', import.meta.url));
const ROUNDS = 9;
const START_WAIT_MS = 3_000;
const FLEET_REPOS = 60;

interface Sample { loadedMs: number; createdMs: number; firstMs: number; readyMs?: number; source: string }
interface Variant { label: string; kind: string; extra: object }

const VARIANTS: Variant[] = [
  { label: 'this library, P2P off', kind: 'off', extra: {} },
  { label: 'this library, P2P on (default: the host starts in the background)', kind: 'on', extra: {} },
  { label: `this library, P2P on, \`p2p.startWaitMs: ${START_WAIT_MS}\` (the first GET waits for the host)`, kind: 'on', extra: { startWaitMs: START_WAIT_MS } },
  { label: 'this library, P2P on, `await cache.p2pReady()` before the first GET (what `create()` did before)', kind: 'on-await', extra: {} },
  { label: 'undici 7 cache (`private`, memory) + deduplicate', kind: 'undici', extra: {} },
];

function sample(variant: Variant, baseUrl: string, dir: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [MEMBER, variant.kind, baseUrl, dir, JSON.stringify(variant.extra)], { env: { ...process.env, BENCH_TOKEN: TOKEN } }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${variant.label}: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as Sample);
    });
  });
}

export async function benchStartup(): Promise<string> {
  const load = loadLine();
  const temp = new TempDirs('startup-bench');
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } }, latencyMs: 20 });
  fake.setResource('/repos/octo/hello', { name: 'hello' });
  for (let i = 0; i < FLEET_REPOS; i++) fake.setResource(`/repos/octo/r${i}`, { i });
  try {
    const samples = new Map<Variant, Sample[]>(VARIANTS.map((v) => [v, []]));
    await sample(VARIANTS[0]!, fake.url, temp.make()); // untimed: warms the file-system cache for every variant
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < VARIANTS.length; k++) {
        const variant = VARIANTS[(round + k) % VARIANTS.length]!;
        samples.get(variant)!.push(await sample(variant, fake.url, temp.make()));
      }
      process.stderr.write('.');
    }
    process.stderr.write('\n');
    const offMedian = median(samples.get(VARIANTS[0]!)!.map((s) => s.firstMs));
    const rows = VARIANTS.map((v) => {
      const got = samples.get(v)!;
      const first = got.map((s) => s.firstMs);
      const ready = got.map((s) => s.readyMs).filter((x): x is number => x !== undefined);
      return [
        v.label, got.length, fmt(median(got.map((s) => s.loadedMs)), 0), fmt(median(got.map((s) => s.createdMs)), 0),
        fmt(median(first), 0), fmt(Math.min(...first), 0), fmt(Math.max(...first), 0), `${fmt(median(first) / offMedian, 2)}x`,
        ready.length > 0 ? fmt(median(ready), 0) : '—', [...new Set(got.map((s) => s.source))].join(', '),
      ];
    });
    const onRatio = median(samples.get(VARIANTS[1]!)!.map((s) => s.firstMs)) / offMedian;

    const fleetRows: Array<Array<string | number>> = [];
    for (const startWaitMs of [undefined, 0] as const) {
      fake.resetStats();
      const ports = await Promise.all([0, 1, 2].map(() => freePort()));
      const members = ports.map((port) => fork(MEMBER, ['fleet', fake.url, temp.make(), JSON.stringify({
        startWaitMs, listenPort: port, repos: FLEET_REPOS, inFlight: 10,
        bootstrapPeers: ports.filter((p) => p !== port).map((p) => `/ip4/127.0.0.1/tcp/${p}`),
      })], { env: { ...process.env, BENCH_TOKEN: TOKEN }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
      const results = await Promise.all(members.map((m) => new Promise<{ firstMs: number; readyMs?: number; sources: Record<string, number> }>((resolve, reject) => {
        m.once('message', (msg) => resolve(msg as never));
        m.once('exit', (code) => reject(new Error(`fleet member exited with ${code}`)));
      })));
      const upstream = fake.stats.requests;
      for (const m of members) m.send('close');
      await Promise.all(members.map((m) => new Promise((resolve) => m.once('exit', resolve))));
      const sources: Record<string, number> = {};
      for (const r of results) for (const [s, n] of Object.entries(r.sources)) sources[s] = (sources[s] ?? 0) + n;
      fleetRows.push([
        startWaitMs === undefined ? 'default (`p2p.startWaitMs` 5000 with bootstrap peers: reads wait for the sessions)' : '`p2p.startWaitMs: 0` (reads go upstream until the host is up)',
        3 * FLEET_REPOS, upstream, `${fmt(upstream / FLEET_REPOS, 2)}x`,
        results.map((r) => fmt(r.firstMs, 0)).join(' / '), results.map((r) => (r.readyMs === undefined ? '—' : fmt(r.readyMs, 0))).join(' / '),
        Object.entries(sources).sort().map(([s, n]) => `${s} ${n}`).join(', '),
      ]);
    }

    const markdown = [
      '## Start to first answer',
      '',
      `\`npm run bench -- startup\` · ${machineLine()} · ${load}`,
      '',
      'Each sample is a fresh Node process (bench/startup-member.ts) that loads its client, creates it and makes one',
      'GET against the loopback fake GitHub (20 ms latency): times are ms since the process started',
      '(`performance.now()`), so Node\'s own start-up is in every row. This library runs with `persistence: \'off\'`;',
      `P2P on listens on 127.0.0.1 with no peers. ${ROUNDS} rounds, the variants interleaved (the order rotates each`,
      'round). "host listening": when `p2pReady()` resolved.',
      '',
      table(['client', 'samples', 'client loaded ms (p50)', 'created ms (p50)', 'first answer ms (p50)', 'min', 'max', 'vs P2P off', 'host listening ms (p50)', 'source'], rows),
      '',
      `Target: first answer with P2P on at most 1.2x P2P off (p50). This run: ${fmt(onRatio, 2)}x, ${onRatio <= 1.2 ? 'met' : 'not met'}.`,
      'A node that answers while its host starts (alone, or with `p2p.startWaitMs: 0`) loads libp2p one package per turn of the',
      'event loop (src/fleet-start.ts): on Node 22 one import of its graph (about 640 modules) held the loop for 250-300 ms,',
      'and the first answer with it (1.71-1.87x P2P off before; the longest hold is now about 60 ms). A fleet member whose reads',
      'wait for its sessions (below, the default) loads it in one go: its reads wait for the host anyway. With',
      '`p2p.startWaitMs: 0` reads are no longer held up behind the load, so more of them go upstream before the host is up.',
      '',
      '### A fleet started together',
      '',
      `Three processes on fixed loopback ports, each bootstrapped to the other two, started at once; each runs the same`,
      `${FLEET_REPOS} GETs (distinct resources, 10 in flight, 20 ms upstream) right after \`create()\`, without waiting for`,
      'the mesh. "x ideal": upstream requests over the distinct resources. First answer and host listening per member.',
      '',
      table(['read path while the host starts', 'requests', 'upstream requests', 'x ideal', 'first answer ms', 'host listening ms', 'sources'], fleetRows),
    ].join('\n');
    writeSection('startup', markdown);
    return markdown;
  } finally {
    await fake.close();
    temp.removeAll();
  }
}
