/**
 * `fleet-size`: fleets of 2, 3, 5 and 8 members, each member a child process (support/fleet-node.ts) on
 * loopback, against one fake GitHub in this process with realistic latency, beside one node alone (the same
 * child, no peers) on the same workload. Per size, on the same members, in this order:
 * - cold: a token no member has seen, every member issues the whole Zipf list at once, no warm-up;
 * - warm: the same token (its scope proved by now), new keys;
 * - cold and warm again with every member's CPU contended: one busy sibling process per member spinning at the
 *   same priority (`node -e 'for(;;){}'`), new token, new keys;
 * - idle: CPU per member over a quiet window after the runs (/proc/<pid>/stat), and TCP connections per member
 *   between members (/proc/<pid>/fd matched against /proc/<pid>/net/tcp).
 * Reported: upstream requests over one node's (targets ≤1.05x, contended ≤1.1x), member p50/p99 latency beside
 * one node's (target: fleet p99 within 2x), peer timeouts, idle CPU and connections per member (target N-1).
 * Results go to docs/benchmarks.md (section `fleet-size`) and docs/charts/fleet-size-upstream.svg.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { FakeGitHub } from '../support/fake-github/index.js';
import { FleetProcess, type FleetRunResult } from '../support/fleet-process.js';
import { processCpuMs, tcpConnectionsOf } from '../support/tcp-connections.js';
import { TempDirs } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { zipfIndices } from '../support/workload.js';
import { lineChart, writeChart } from './compare/charts.js';
import { fmt, machineLine, percentile, table, writeSection } from './report.js';
import { loadLine, repoBody } from './workload.js';

/** `--sizes=5,8` runs those fleet sizes only (default: all). */
const SIZES = ((): number[] => {
  const given = process.argv.find((a) => a.startsWith('--sizes='));
  return given !== undefined ? given.slice('--sizes='.length).split(',').map(Number) : [2, 3, 5, 8];
})();
/** Requests each member issues per run (the whole list, all members at once). */
const REQUESTS = 400;
/** Resources the Zipf list draws from; each run has its own set (new keys). */
const RESOURCES = 150;
const IN_FLIGHT = 20;
const ZIPF_S = 1.0;
const SEED = 20_261_202;
/** Latency the fake GitHub adds to every answer, ms (GitHub's own is 50–300 ms). */
const LATENCY_MS = 50;
/** The quiet window over which idle CPU is measured, ms. */
const IDLE_MS = 5_000;
const SECRET = 'bench-fleet-size-shared-secret-0123456789';
const OWNER = 'fleet';
const TEMP_PREFIX = 'gh-p2p-cache-bench-fleet-';
const TARGET_UPSTREAM = 1.05;
const TARGET_UPSTREAM_CONTENDED = 1.1;
const TARGET_P99 = 2;

type Kind = 'cold' | 'warm' | 'cold, contended' | 'warm, contended';
const KINDS: Kind[] = ['cold', 'warm', 'cold, contended', 'warm, contended'];

interface Run {
  upstream: number;
  /** Per member: p50 and p99 of its requests, ms. */
  p50s: number[];
  p99s: number[];
  /** All requests of all members, ms. */
  all: number[];
  timeouts: number;
  errors: number;
  peerAnswers: number;
  wallMs: number;
}

interface SizeResult {
  size: number;
  runs: Map<Kind, Run>;
  connections: number[];
  idleCpu: number[];
  meshMs: number;
}

/** A made-up token per label, built at run time; the fake accepts it, nothing prints it. */
const tokenOf = (label: string): string => `test_fleetBench_${label}_`.padEnd(40, '0');

export async function benchFleetSize(): Promise<string> {
  const load = loadLine();
  const started = Date.now();
  const fake = await FakeGitHub.start({ latencyMs: LATENCY_MS });
  fake.setResource('/rate_limit', { resources: {} });
  const temp = new TempDirs(TEMP_PREFIX);
  const results: SizeResult[] = [];
  const list = zipfIndices(RESOURCES, ZIPF_S, REQUESTS, SEED);
  const distinct = new Set(list).size;
  let round = 0;
  try {
    for (const size of [1, ...SIZES]) {
      console.error(`fleet-size: ${size} member${size === 1 ? '' : 's'}`);
      results.push(await measureSize(size, fake, temp, list, () => round++));
    }
  } finally {
    await fake.close();
    temp.removeAll();
  }
  const elapsedS = (Date.now() - started) / 1000;
  return report(results, { load, distinct, elapsedS });
}

async function measureSize(size: number, fake: FakeGitHub, temp: TempDirs, list: number[], nextRound: () => number): Promise<SizeResult> {
  const members: FleetProcess[] = [];
  const spinners: ChildProcess[] = [];
  const env = (bootstrap: string[]) => ({
    CACHE_DIR: temp.make(), GITHUB_API_URL: fake.url, CACHE_LISTEN_PORT: '0', CACHE_P2P_SHARED_SECRET: SECRET, CACHE_BOOTSTRAP_PEERS: bootstrap.join(','),
  });
  try {
    // Members join as a fleet usually does: every one but the first has the first as its bootstrap peer, and
    // peer exchange connects the rest.
    const meshStart = Date.now();
    const first = new FleetProcess(env([]));
    members.push(first);
    const firstReady = await first.ready;
    const addr = firstReady.p2p.listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
    for (let i = 1; i < size; i++) members.push(new FleetProcess(env([addr])));
    const ready = await Promise.all(members.map((m) => m.ready));
    const ports = new Set(ready.map((r) => r.p2p.boundPort));
    const peers = size - 1;
    await waitFor(async () => (await Promise.all(members.map((m) => m.stats())))
      .every((s) => s.p2p.connectedPeers === peers && s.p2p.peers.length === peers), `a full mesh of ${size}`, 60_000, 50);
    const meshMs = Date.now() - meshStart;

    const runs = new Map<Kind, Run>();
    let token = '';
    for (const kind of KINDS) {
      const r = nextRound();
      if (kind.startsWith('cold')) {
        token = tokenOf(`r${r}`);
        fake.addToken(token, { rateLimit: 10_000_000 });
      }
      if (kind === 'cold, contended') {
        for (let i = 0; i < size; i++) spinners.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
      }
      const repos = list.map((k) => `r${r}-repo-${k}`);
      for (const repo of new Set(repos)) fake.setResource(`/repos/${OWNER}/${repo}`, repoBody(OWNER, repo, Number(repo.slice(repo.lastIndexOf('-') + 1))));
      runs.set(kind, await runOnce(members, repos.map((repo) => `GET /repos/${OWNER}/${repo}`), token, fake));
    }
    await stopAll(spinners.splice(0));

    // Idle: the caches hold four runs' keys and two proved scopes; nothing asks anything.
    const cpuBefore = members.map((m) => processCpuMs(m.pid) ?? Number.NaN);
    const idleStart = Date.now();
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    const idleS = (Date.now() - idleStart) / 1000;
    const idleCpu = members.map((m, i) => ((processCpuMs(m.pid) ?? Number.NaN) - cpuBefore[i]!) / idleS);
    const connections = members.map((m) => tcpConnectionsOf(m.pid, ports) ?? Number.NaN);
    return { size, runs, connections, idleCpu, meshMs };
  } finally {
    await stopAll(spinners);
    await Promise.all(members.map((m) => m.stop()));
  }
}

/** Every member runs the whole list at once; upstream counted by the fake, timeouts by the members. */
async function runOnce(members: FleetProcess[], routes: string[], token: string, fake: FakeGitHub): Promise<Run> {
  const timeoutsBefore = await Promise.all(members.map(async (m) => (await m.stats()).p2p.timeouts));
  fake.resetStats();
  const start = Date.now();
  const results: FleetRunResult[] = await Promise.all(members.map((m) => m.run(routes, token, IN_FLIGHT)));
  const wallMs = Date.now() - start;
  const upstream = fake.stats.requests;
  const timeoutsAfter = await Promise.all(members.map(async (m) => (await m.stats()).p2p.timeouts));
  const ms = (r: FleetRunResult) => r.latenciesNs.map((ns) => ns / 1e6);
  return {
    upstream,
    p50s: results.map((r) => percentile(ms(r), 50)),
    p99s: results.map((r) => percentile(ms(r), 99)),
    all: results.flatMap(ms),
    timeouts: timeoutsAfter.reduce((a, t, i) => a + t - timeoutsBefore[i]!, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
    peerAnswers: results.reduce((a, r) => a + (r.sources.peer ?? 0), 0),
    wallMs,
  };
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  })));
}

async function report(results: SizeResult[], { load, distinct, elapsedS }: { load: string; distinct: number; elapsedS: number }): Promise<string> {
  const one = results[0]!;
  const fleets = results.slice(1);
  const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
  const ratio = (r: SizeResult, kind: Kind) => r.runs.get(kind)!.upstream / one.runs.get(kind)!.upstream;
  const targetOf = (kind: Kind) => (kind.includes('contended') ? TARGET_UPSTREAM_CONTENDED : TARGET_UPSTREAM);

  const upstreamRows = results.map((r) => [
    r.size === 1 ? '1 (one node)' : String(r.size),
    ...KINDS.map((kind) => {
      const run = r.runs.get(kind)!;
      return r.size === 1 ? `${run.upstream}` : `${run.upstream} (${fmt(ratio(r, kind), 2)}x, ${verdict(ratio(r, kind) <= targetOf(kind))})`;
    }),
    KINDS.map((kind) => r.runs.get(kind)!.timeouts).join(' / '),
    KINDS.map((kind) => r.runs.get(kind)!.errors).reduce((a, b) => a + b, 0),
  ]);

  const latencyRows: Array<Array<string | number>> = [];
  for (const kind of KINDS) {
    const base = percentile(one.runs.get(kind)!.all, 99);
    for (const r of results) {
      const run = r.runs.get(kind)!;
      const worst = Math.max(...run.p99s);
      const fleetP99 = percentile(run.all, 99);
      latencyRows.push([
        kind, r.size === 1 ? '1 (one node)' : r.size,
        fmt(percentile(run.p50s, 50), 2), fmt(Math.max(...run.p50s), 2), fmt(fleetP99, 1), fmt(worst, 1),
        r.size === 1 ? '—' : `${fmt(fleetP99 / base, 2)}x (${verdict(fleetP99 / base <= TARGET_P99)})`,
        run.peerAnswers, fmt(run.wallMs, 0),
      ]);
    }
  }

  const idleRows = results.map((r) => {
    const min = Math.min(...r.connections);
    const max = Math.max(...r.connections);
    const expected = r.size - 1;
    return [
      r.size === 1 ? '1 (one node)' : r.size, expected, min === max ? String(min) : `${min}–${max}`,
      r.size === 1 ? '—' : verdict(min === expected && max === expected),
      fmt(r.idleCpu.reduce((a, b) => a + b, 0) / r.idleCpu.length, 1), fmt(Math.max(...r.idleCpu), 1), fmt(r.meshMs, 0),
    ];
  });

  const chart = await writeChart('fleet-size-upstream', lineChart({
    title: 'Upstream requests of a fleet over one node\'s, by fleet size',
    xTitle: 'members', yTitle: 'upstream requests / one node\'s',
    points: results.flatMap((r) => KINDS.map((kind) => ({ t: r.size, value: Number(ratio(r, kind).toFixed(3)), series: kind }))),
  }));

  const upstreamMet = fleets.every((r) => KINDS.every((kind) => ratio(r, kind) <= targetOf(kind)));
  const p99Met = fleets.every((r) => KINDS.slice(0, 2).every((kind) => percentile(r.runs.get(kind)!.all, 99) / percentile(one.runs.get(kind)!.all, 99) <= TARGET_P99));
  const connectionsMet = fleets.every((r) => r.connections.every((c) => c === r.size - 1));
  const md = [
    '## Fleet size, cold and warm',
    '',
    `\`npm run bench -- fleet-size\` · ${machineLine()} · fleets of ${SIZES.join(', ')} members and one node alone, each member a child`,
    'process (`support/fleet-node.ts`, the package entry with P2P on) on 127.0.0.1, every one but the first bootstrapped to the first',
    `(peer exchange meshes the rest). The fake GitHub runs in the parent with ${LATENCY_MS} ms latency on every answer. Workload, per member`,
    `and run: ${REQUESTS} GETs of \`/repos/{owner}/{repo}\`, Zipf (s = ${ZIPF_S.toFixed(1)}, seeded) over ${RESOURCES} resources (${distinct} distinct), ${IN_FLIGHT} in flight,`,
    'the same list on every member, all members at once (scaled down from `fleet-ratio`\'s 3,000 over 300 to keep the whole module',
    `near ${Math.ceil(elapsedS / 60)} minutes). Runs on the same members in order: **cold** (a token no member has seen, no warm-up), **warm** (the same`,
    'token, new keys), then both again (new token, new keys) with every member\'s CPU **contended** by a busy sibling process',
    '(`node -e \'for(;;){}\'`, same priority) per member. Upstream requests are the fake\'s count of the run; one node is the same',
    `child alone. This run took ${fmt(elapsedS, 0)} s. ${load} The machine is shared and busy; latencies move with it, upstream counts`,
    'and connections should not. Every member runs on the same cores: a fleet of N does N times one node\'s work there, so the',
    'latency of the larger fleets measures this machine as much as the protocol.',
    '',
    `Upstream requests (and the ratio to one node's on the same run; target ≤${TARGET_UPSTREAM}x, contended ≤${TARGET_UPSTREAM_CONTENDED}x), peer timeouts`,
    '(`getStats().p2p.timeouts`, summed over members, cold / warm / cold contended / warm contended) and failed requests:',
    '',
    table(['members', ...KINDS, 'peer timeouts', 'errors'], upstreamRows),
    '',
    `![upstream requests over one node's by fleet size](${chart})`,
    '',
    `Latency per member, ms (each member's requests timed inside it): the median and the worst of the members' p50s, the p99 of all`,
    `members' requests and the worst member's p99, and the fleet p99 over one node's on the same run (target ≤${TARGET_P99}x; met/missed shown for`,
    'every row, the target is for the uncontended runs):',
    '',
    table(['run', 'members', 'p50 (median member)', 'p50 (worst member)', 'p99 (all requests)', 'p99 (worst member)', 'p99 vs one node', 'peer answers', 'wall ms'], latencyRows),
    '',
    `Idle and connections, after the runs: TCP connections per member to other members (target: one per peer, N−1), and CPU per member`,
    `over ${IDLE_MS / 1000} s with nothing asked (ms of CPU per second; /proc clock ticks of 10 ms, so ±2 ms/s). Mesh: start of the first member`,
    'to every member speaking the protocol with every other.',
    '',
    table(['members', 'peers each', 'connections per member', 'one per peer', 'idle CPU ms/s (mean)', 'idle CPU ms/s (max)', 'mesh ms'], idleRows),
    '',
    `This run: upstream ${verdict(upstreamMet)}, p99 within ${TARGET_P99}x (uncontended) ${verdict(p99Met)}, one connection per peer ${verdict(connectionsMet)}.`,
  ].join('\n');
  writeSection('fleet-size', md);
  return md;
}
