/**
 * `compare` (issue 5): this library against what users would pick instead, on one workload, in one run.
 *
 * The workload of `zipf-workload` (bench/github-cache.ts): 3,000 GETs of `/repos/{owner}/{repo}`, Zipf over 300
 * resources, 50 in flight, one token, 20 ms latency at the loopback fake GitHub (support/fake-github/,
 * in this process, a fresh one per client). Every client runs in processes of its own (member.ts): no cache
 * (Node's fetch), undici 7 (cache `type: 'private'` + deduplicate), make-fetch-happen 15 (cacache on disk),
 * this library through `cache.request`, through the Octokit plugin and through the proxy; then the fleet form,
 * three processes running the whole workload at once: no cache, three private undici caches, and this library
 * as a three-node P2P fleet.
 *
 * Per client: upstream requests and rate-limit units (the fake's counters), p50/p99 latency, throughput,
 * memory; a pure hit-latency loop (one warm key repeated); an idle revisit (the clock 10 minutes on, every
 * resource touched requested once more: charged 200s against free 304s); and a scan of everything it wrote
 * to disk for the token. Results go to docs/benchmarks.md (section `compare`) and docs/charts/compare-*.svg.
 */
import { OffsetClock } from '../../support/clock.js';
import { FakeGitHub, type FakeGitHubStats } from '../../support/fake-github/index.js';
import { scanForToken, type LeakReport } from '../../support/leak-scan.js';
import { makeTempDir } from '../../support/temp-dir.js';
import { waitFor } from '../../support/wait.js';
import { mulberry32, zipfSampler } from '../../support/workload.js';
import {
  OWNER, TOKEN, WORKLOAD_IN_FLIGHT, WORKLOAD_LATENCY_MS, WORKLOAD_REQUESTS, WORKLOAD_RESOURCES, ZIPF_S,
} from '../github-cache.js';
import { fmt, machineLine, percentile, table, writeSection } from '../report.js';
import { loadLine, repoBody } from '../workload.js';
import { barChart, dotPlot, stackedBarChart, writeChart } from './charts.js';
import { MemberProcess } from './member-process.js';
import type { ClientConfig, MemoryReport, RunResult } from './protocol.js';

/** The seed of `zipf-workload`: both benchmarks replay the same request list. */
const WORKLOAD_SEED = 20_240_601;
const FLEET_SIZE = 3;
const SECRET = 'bench-compare-shared-secret-0123456789';
/** How far the clock moves before the revisit: well past GitHub's max-age=60 and undici's ~2x max-age. */
const IDLE_MS = 10 * 60 * 1000;
const HIT_ITERATIONS = 2_000;
const HIT_WARMUP = 200;
/** The hottest resource, cached by every client after the workload. */
const HIT_REPO = 'repo-0';
/** "Near one node's count" for the fleet, as the P2P bench (fleet-ratio) has it. */
const FLEET_NEAR = 1.1;
/** Hit latency target: this library's `cache.request` within this factor of undici's in-memory cache. */
const HIT_FACTOR = 1.2;
const MIB = 1024 * 1024;

type Form = 'one process' | 'three processes';

/** What a row's processes are for. */
interface Started {
  /** Processes running the workload. */
  workers: MemberProcess[];
  /** Processes holding the cache (memory is theirs); the workers except behind the proxy. */
  holders: MemberProcess[];
}

interface RowSpec {
  name: string;
  /** Label in charts. */
  short: string;
  form: Form;
  /** Whether this library is the one under test (the goals apply). */
  ours: boolean;
  /** Starts the row's processes; `dir` makes a temp directory (each is scanned for the token afterwards). */
  start(baseUrl: string, dir: () => string, registry: Set<MemberProcess>): Promise<Started>;
  /** Before the counters are reset: a fleet's mesh (members connected; no request made). */
  warmUp?(workers: MemberProcess[]): Promise<void>;
  /** Hit-latency loops on the first worker: label and client API variant. */
  hits?: Array<{ label: string; short: string; variant?: string }>;
}

interface IdleResult {
  requests: number;
  upstream: number;
  charged200: number;
  free304: number;
  charged: number;
  sources: Record<string, number>;
}

interface Row {
  spec: RowSpec;
  processes: number;
  requests: number;
  upstream: number;
  charged: number;
  maxUpstreamInFlight: number;
  latenciesNs: number[];
  wallNs: number;
  errors: number;
  firstError?: string | undefined;
  sources: Record<string, number>;
  memory: Array<{ before: MemoryReport; after: MemoryReport }>;
  /** Hit loops; `upstream`: requests the loop's warm-up sent (a first miss of a variant). */
  hits: Array<{ label: string; short: string; samplesNs: number[]; upstream: number }>;
  idle: IdleResult;
  leak: LeakReport;
}

export async function benchCompare(): Promise<string> {
  const load = loadLine();
  const zipf = zipfSampler(WORKLOAD_RESOURCES, ZIPF_S, mulberry32(WORKLOAD_SEED));
  const requests = Array.from({ length: WORKLOAD_REQUESTS }, () => `repo-${zipf()}`);
  const touched = [...new Set(requests)];
  const distinct = touched.length;

  const rows: Row[] = [];
  const started = Date.now();
  // BENCH_COMPARE_ONLY=undici,fleet runs the rows whose chart label holds one of the words (while developing).
  const only = (process.env['BENCH_COMPARE_ONLY'] ?? '').split(',').map((w) => w.trim()).filter((w) => w !== '');
  const specs = rowSpecs().filter((s) => only.length === 0 || only.some((w) => s.short.includes(w)));
  for (const spec of specs) {
    process.stderr.write(`  compare: ${spec.name} (${spec.form})...`);
    const rowStarted = Date.now();
    rows.push(await runRow(spec, requests, touched));
    process.stderr.write(` ${fmt((Date.now() - rowStarted) / 1000, 1)} s\n`);
  }
  const probes = only.length > 0 ? [] : await runAgeProbe(touched);
  const floor = only.length > 0 ? undefined : await runHttpFloor();
  const totalSeconds = (Date.now() - started) / 1000;
  if (only.length > 0) {
    // A partial run neither writes the docs nor draws charts.
    return rows.map((r) => `${r.spec.name}: upstream ${r.upstream}, p50 ${fmt(percentile(r.latenciesNs, 50) / 1e6)} ms, `
      + `p99 ${fmt(percentile(r.latenciesNs, 99) / 1e6)} ms, errors ${r.errors}${r.firstError !== undefined ? ` (${r.firstError})` : ''}, `
      + `idle: ${r.idle.charged200} charged / ${r.idle.free304} free, hits p50 µs: `
      + `${r.hits.map((h) => fmt(percentile(h.samplesNs, 50) / 1000)).join(' / ') || '—'}`).join('\n');
  }

  const md = await report(rows, probes, floor, { distinct, load, totalSeconds });
  writeSection('compare', md);
  return md;
}

// ---------------------------------------------------------------- the clients

function rowSpecs(): RowSpec[] {
  type Make = (baseUrl: string, dir: () => string) => ClientConfig;
  const single = (make: Make): RowSpec['start'] => async (baseUrl, dir, registry) => {
    const member = await MemberProcess.start('client', make(baseUrl, dir), TOKEN, OWNER, registry);
    return { workers: [member], holders: [member] };
  };
  const fleet = (make: Make): RowSpec['start'] => async (baseUrl, dir, registry) => {
    const configs = Array.from({ length: FLEET_SIZE }, () => make(baseUrl, dir));
    const members = await Promise.all(configs.map((c, i) => MemberProcess.start(`member ${i + 1}`, c, TOKEN, OWNER, registry)));
    return { workers: members, holders: members };
  };

  return [
    { name: 'no cache (Node fetch)', short: 'no cache', form: 'one process', ours: false, start: single((baseUrl) => ({ kind: 'fetch', baseUrl })) },
    {
      name: 'undici 7 cache (`private`, memory) + deduplicate', short: 'undici cache + dedupe', form: 'one process', ours: false,
      start: single((baseUrl) => ({ kind: 'undici', baseUrl })),
      hits: [
        { label: 'undici 7 `request`, cache hit', short: 'undici request' },
        { label: 'undici 7 `fetch`, cache hit', short: 'undici fetch', variant: 'fetch' },
      ],
    },
    {
      name: 'make-fetch-happen 15 (cacache on disk)', short: 'make-fetch-happen', form: 'one process', ours: false,
      start: single((baseUrl, dir) => ({ kind: 'make-fetch-happen', baseUrl, cacheDir: dir() })),
      hits: [{ label: 'make-fetch-happen, cache hit', short: 'make-fetch-happen' }],
    },
    {
      name: 'this library: `cache.request`', short: 'ours: cache.request', form: 'one process', ours: true,
      start: single((baseUrl, dir) => ({ kind: 'cache-request', baseUrl, cacheDir: dir() })),
      hits: [{ label: 'ours: `cache.request`, memory hit', short: 'ours: cache.request' }],
    },
    {
      name: 'this library: Octokit plugin', short: 'ours: Octokit plugin', form: 'one process', ours: true,
      start: single((baseUrl, dir) => ({ kind: 'octokit', baseUrl, cacheDir: dir() })),
      hits: [{ label: 'ours: Octokit plugin, memory hit', short: 'ours: Octokit plugin' }],
    },
    {
      name: 'this library: proxy (fetch → `startProxy`, another process)', short: 'ours: proxy', form: 'one process', ours: true,
      start: async (baseUrl, dir, reg) => {
        const cacheDir = dir();
        const host = await MemberProcess.start('proxy', { kind: 'proxy-host', baseUrl, cacheDir }, TOKEN, OWNER, reg);
        const url = (await host.ready).url!;
        const client = await MemberProcess.start('proxy client', { kind: 'fetch', baseUrl: url }, TOKEN, OWNER, reg);
        return { workers: [client], holders: [host] };
      },
      hits: [{ label: 'ours: proxy (Node fetch → proxy), memory hit', short: 'ours: proxy + Node fetch' }],
    },
    { name: 'no cache × 3 processes', short: 'no cache × 3', form: 'three processes', ours: false, start: fleet((baseUrl) => ({ kind: 'fetch', baseUrl })) },
    {
      name: 'undici 7 cache + deduplicate × 3 (three private caches)', short: 'undici × 3', form: 'three processes', ours: false,
      start: fleet((baseUrl) => ({ kind: 'undici', baseUrl })),
    },
    {
      name: 'this library: three-node P2P fleet (`cache.request`)', short: 'ours: P2P fleet of 3', form: 'three processes', ours: true,
      start: async (baseUrl, dir, reg) => {
        const config = (bootstrapPeers: string[]): ClientConfig => ({ kind: 'cache-request', baseUrl, cacheDir: dir(), p2p: { sharedSecret: SECRET, bootstrapPeers } });
        const first = await MemberProcess.start('member 1', config([]), TOKEN, OWNER, reg);
        const addrs = (await first.ready).listenAddrs ?? [];
        const configs = [config(addrs), config(addrs)];
        const rest = await Promise.all(configs.map((c, i) => MemberProcess.start(`member ${i + 2}`, c, TOKEN, OWNER, reg)));
        const members = [first, ...rest];
        return { workers: members, holders: members };
      },
      warmUp: meshOnly,
    },
  ];
}

type P2PView = { p2p?: { connectedPeers: number; peers: Array<{ scopes: number }> } };

/**
 * Waits for a full mesh and nothing more: the token is new to every member when the workload starts (a fleet
 * that starts together, as CI runners on one workflow do), so the row measures the cold start users meet.
 */
async function meshOnly(members: MemberProcess[]): Promise<void> {
  const stats = () => Promise.all(members.map((m) => m.call<P2PView>({ type: 'stats' })));
  await waitUntil(async () => (await stats()).every((s) => (s.p2p?.connectedPeers ?? 0) >= members.length - 1), 'a full mesh');
}

/** Members answer over IPC: poll every 50 ms, for up to 20 s. */
function waitUntil(condition: () => Promise<boolean>, what: string): Promise<number> {
  return waitFor(condition, what, 20_000, 50);
}

// ---------------------------------------------------------------- one row

async function runRow(spec: RowSpec, requests: string[], touched: string[]): Promise<Row> {
  const clock = new OffsetClock();
  const fake = await FakeGitHub.start({
    tokens: { [TOKEN]: { rateLimit: 10_000_000 } },
    latencyMs: WORKLOAD_LATENCY_MS,
    now: clock.now,
  });
  const registry = new Set<MemberProcess>();
  const temps: Array<() => void> = [];
  const dirsMade: string[] = [];
  const dir = () => {
    const { dir: made, cleanup } = makeTempDir('gh-p2p-cache-compare-');
    temps.push(cleanup);
    dirsMade.push(made);
    return made;
  };
  try {
    fake.setResource('/rate_limit', { resources: {} });
    for (let i = 0; i < WORKLOAD_RESOURCES; i++) fake.setResource(`/repos/${OWNER}/repo-${i}`, repoBody(OWNER, `repo-${i}`, i));

    const { workers, holders } = await spec.start(fake.url, dir, registry);
    await spec.warmUp?.(workers);
    fake.resetStats();

    // The workload, every worker at once.
    const before = await Promise.all(holders.map((h) => h.memory()));
    const runs = await Promise.all(workers.map((w) => w.run(requests, WORKLOAD_IN_FLIGHT)));
    const stats = fake.stats;
    const after = await Promise.all(holders.map((h) => h.memory()));
    const merged = mergeRuns(runs);

    // Pure hit latency: the hottest key, warm in every cache, repeated on the first worker.
    // A variant whose requests differ in a header the response varies on (undici's fetch adds accept-encoding,
    // GitHub varies on it) misses once in its warm-up; the timed calls must all be hits.
    const hits: Row['hits'] = [];
    for (const hit of spec.hits ?? []) {
      const upstreamBefore = fake.stats.requests;
      const samplesNs = await workers[0]!.call<number[]>({
        type: 'hit', repo: HIT_REPO, iterations: HIT_ITERATIONS, warmup: HIT_WARMUP, ...(hit.variant !== undefined ? { variant: hit.variant } : {}),
      });
      const upstream = fake.stats.requests - upstreamBefore;
      if (upstream > 1) throw new Error(`compare: ${hit.label}: ${upstream} upstream requests in the hit loop; expected hits`);
      hits.push({ label: hit.label, short: hit.short, samplesNs, upstream });
    }

    // Idle revisit: every clock (the fake's and each process's) moves on; each touched resource once more.
    clock.offsetMs = IDLE_MS;
    await Promise.all([...registry].map((m) => m.setClock(clock.offsetMs)));
    fake.resetStats();
    const revisits = await Promise.all(workers.map((w) => w.run(touched, WORKLOAD_IN_FLIGHT)));
    const idleStats = fake.stats;
    const idleRun = mergeRuns(revisits);

    await Promise.all([...registry].map((m) => m.stop()));
    const leak = scanForToken(dirsMade, TOKEN);
    const errors = merged.errors + idleRun.errors;
    if (errors > 0) process.stderr.write(`\n  compare: ${spec.name}: ${errors} failed request(s), first: ${merged.firstError ?? idleRun.firstError}\n`);

    return {
      spec,
      processes: workers.length,
      requests: requests.length * workers.length,
      upstream: stats.requests,
      charged: stats.charged,
      maxUpstreamInFlight: stats.maxConcurrent,
      latenciesNs: merged.latenciesNs,
      wallNs: merged.wallNs,
      errors,
      firstError: merged.firstError ?? idleRun.firstError,
      sources: merged.sources,
      memory: holders.map((_, i) => ({ before: before[i]!, after: after[i]! })),
      hits,
      idle: idleOf(idleStats, touched.length * workers.length, idleRun.sources),
      leak,
    };
  } finally {
    await Promise.all([...registry].map((m) => m.stop()));
    await fake.close();
    for (const cleanup of temps) cleanup();
  }
}

function mergeRuns(runs: RunResult[]): RunResult {
  const sum = (records: Array<Record<string, number>>) => {
    const out: Record<string, number> = {};
    for (const r of records) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const firstError = runs.find((r) => r.firstError !== undefined)?.firstError;
  return {
    latenciesNs: runs.flatMap((r) => r.latenciesNs),
    wallNs: Math.max(...runs.map((r) => r.wallNs)),
    statuses: sum(runs.map((r) => r.statuses)),
    sources: sum(runs.map((r) => r.sources)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    ...(firstError !== undefined ? { firstError } : {}),
  };
}

function idleOf(stats: FakeGitHubStats, requests: number, sources: Record<string, number>): IdleResult {
  return {
    requests,
    upstream: stats.requests,
    charged200: stats.byStatus[200] ?? 0,
    free304: stats.byStatus[304] ?? 0,
    charged: stats.charged,
    sources,
  };
}

// ---------------------------------------------------------------- the HTTP floor

/**
 * What any answer over loopback HTTP costs with Node's fetch: the same body from a bare node:http server, so
 * the proxy's hit latency can be read as this floor plus what the proxy adds.
 */
async function runHttpFloor(): Promise<Row['hits'][number]> {
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } } });
  const registry = new Set<MemberProcess>();
  try {
    fake.setResource(`/repos/${OWNER}/${HIT_REPO}`, repoBody(OWNER, HIT_REPO, 0));
    const host = await MemberProcess.start('static server', { kind: 'static-host', baseUrl: fake.url, path: `/repos/${OWNER}/${HIT_REPO}` }, TOKEN, OWNER, registry);
    const client = await MemberProcess.start('floor client', { kind: 'fetch', baseUrl: (await host.ready).url! }, TOKEN, OWNER, registry);
    const samplesNs = await client.call<number[]>({ type: 'hit', repo: HIT_REPO, iterations: HIT_ITERATIONS, warmup: HIT_WARMUP });
    return { label: 'floor: Node fetch → bare node:http server, same body', short: 'floor: fetch → bare server', samplesNs, upstream: 0 };
  } finally {
    await Promise.all([...registry].map((m) => m.stop()));
    await fake.close();
  }
}

// ---------------------------------------------------------------- why undici refetches

/** Seconds since the last validation at each revisit of the age probe: inside and past 2 × max-age. */
const PROBE_AGES_S = [90, 130];

interface AgeProbe {
  name: string;
  steps: Array<{ ageS: number; charged200: number; free304: number }>;
}

/**
 * undici's store deletes an entry at staleAt + its freshness lifetime (2 × max-age; lib/handler/cache-handler.js
 * `determineDeleteAt`), after which it has no ETag to send. This probe shows the edge: each touched resource
 * once, then revisits at 90 s and then 130 s after the previous validation, for undici and for this library.
 */
async function runAgeProbe(touched: string[]): Promise<AgeProbe[]> {
  const probes: AgeProbe[] = [];
  for (const [name, make] of [
    ['undici 7 cache + deduplicate', (baseUrl: string): ClientConfig => ({ kind: 'undici', baseUrl })],
    ['this library: `cache.request`', (baseUrl: string, cacheDir: string): ClientConfig => ({ kind: 'cache-request', baseUrl, cacheDir })],
  ] as const) {
    const clock = new OffsetClock();
    const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } }, latencyMs: WORKLOAD_LATENCY_MS, now: clock.now });
    const { dir, cleanup } = makeTempDir('gh-p2p-cache-compare-');
    const registry = new Set<MemberProcess>();
    try {
      for (let i = 0; i < WORKLOAD_RESOURCES; i++) fake.setResource(`/repos/${OWNER}/repo-${i}`, repoBody(OWNER, `repo-${i}`, i));
      const member = await MemberProcess.start('probe', make(fake.url, dir), TOKEN, OWNER, registry);
      await member.run(touched, WORKLOAD_IN_FLIGHT);
      const steps: AgeProbe['steps'] = [];
      for (const ageS of PROBE_AGES_S) {
        clock.advance(ageS * 1000);
        await member.setClock(clock.offsetMs);
        fake.resetStats();
        const run = await member.run(touched, WORKLOAD_IN_FLIGHT);
        if (run.errors > 0) throw new Error(`compare: age probe ${name}: ${run.errors} failed, first: ${run.firstError}`);
        const stats = fake.stats;
        steps.push({ ageS, charged200: stats.byStatus[200] ?? 0, free304: stats.byStatus[304] ?? 0 });
      }
      probes.push({ name, steps });
    } finally {
      await Promise.all([...registry].map((m) => m.stop()));
      await fake.close();
      cleanup();
    }
  }
  return probes;
}

// ---------------------------------------------------------------- the report

async function report(rows: Row[], probes: AgeProbe[], floor: Row['hits'][number] | undefined,
  ctx: { distinct: number; load: string; totalSeconds: number }): Promise<string> {
  const { distinct } = ctx;
  const ms = (ns: number) => fmt(ns / 1e6, 1);
  const mib = (bytes: number) => fmt(bytes / MIB, 1);
  const maxOf = (values: number[]) => Math.max(...values);
  const single = rows.filter((r) => r.spec.form === 'one process');
  const fleets = rows.filter((r) => r.spec.form === 'three processes');
  const find = (short: string) => rows.find((r) => r.spec.short === short)!;

  const mainTable = (list: Row[]) => table(
    ['client', 'requests', 'upstream requests', 'rate-limit units', 'x ideal', 'max upstream in flight', 'p50 ms', 'p99 ms', 'req/s',
      'RSS MiB', 'heap Δ MiB', 'errors'],
    list.map((r) => [
      r.spec.name,
      r.requests.toLocaleString('en-US'),
      r.upstream,
      r.charged,
      `${fmt(r.upstream / distinct, 2)}x`,
      r.maxUpstreamInFlight,
      ms(percentile(r.latenciesNs, 50)),
      ms(percentile(r.latenciesNs, 99)),
      fmt(r.requests / (r.wallNs / 1e9), 0),
      mib(maxOf(r.memory.map((m) => m.after.rss))),
      mib(maxOf(r.memory.map((m) => m.after.heapUsed - m.before.heapUsed))),
      r.errors,
    ]),
  );

  const sourceNames = [...new Set(rows.flatMap((r) => Object.keys(r.sources)))];
  const sourceTable = table(['client', ...sourceNames], rows.filter((r) => Object.keys(r.sources).length > 0)
    .map((r) => [r.spec.name, ...sourceNames.map((s) => r.sources[s] ?? 0)]));

  const idleTable = table(
    ['client', 'revisits', 'upstream requests', 'charged 200s', 'free 304s', 'rate-limit units', 'answers by source'],
    rows.map((r) => [
      r.spec.name, r.idle.requests, r.idle.upstream, r.idle.charged200, r.idle.free304, r.idle.charged,
      Object.entries(r.idle.sources).map(([s, n]) => `${s} ${n}`).join(', ') || '—',
    ]),
  );

  const leakTable = table(
    ['client', 'files written', 'bytes on disk', 'token on disk?', 'where'],
    rows.map((r) => [
      r.spec.name, r.leak.files, r.leak.bytes.toLocaleString('en-US'),
      r.leak.files === 0 ? 'no (nothing on disk)' : r.leak.found.length > 0 ? '**yes**' : 'no',
      r.leak.found.length > 0 ? summarizeLeak(r.leak) : '—',
    ]),
  );

  const hitRows = [...rows.flatMap((r) => r.hits), ...(floor !== undefined ? [floor] : [])];
  const undiciHit = hitRows.find((h) => h.label.startsWith('undici 7 `request`'));
  const undiciP50 = undiciHit === undefined ? Number.NaN : percentile(undiciHit.samplesNs, 50);
  const hitTable = table(
    ['client API, one warm key repeated', 'samples', 'p50 µs', 'p90 µs', 'p99 µs', 'p50 vs undici `request`', 'upstream in warm-up'],
    hitRows.map((h) => {
      const p50 = percentile(h.samplesNs, 50);
      return [h.label, h.samplesNs.length, fmt(p50 / 1000), fmt(percentile(h.samplesNs, 90) / 1000), fmt(percentile(h.samplesNs, 99) / 1000),
        `${fmt(p50 / undiciP50, 2)}x`, h.upstream];
    }),
  );

  // Goals.
  const ours = rows.filter((r) => r.spec.ours);
  const oursSingle = single.filter((r) => r.spec.ours);
  const minOthersSingle = Math.min(...single.filter((r) => !r.spec.ours).map((r) => r.upstream));
  const fleet = find('ours: P2P fleet of 3');
  const undiciFleet = find('undici × 3');
  const oneNode = find('ours: cache.request');
  const fewestSingle = oursSingle.every((r) => r.upstream <= minOthersSingle);
  const fewestFleet = fleet.upstream <= Math.min(...fleets.filter((r) => !r.spec.ours).map((r) => r.upstream));
  const nearOneNode = fleet.upstream <= FLEET_NEAR * oneNode.upstream;
  const zeroCharged = ours.every((r) => r.idle.charged === 0);
  const oursHit = hitRows.find((h) => h.label.startsWith('ours: `cache.request`'));
  const hitRatio = oursHit === undefined ? Number.NaN : percentile(oursHit.samplesNs, 50) / undiciP50;
  const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');

  // Charts.
  const upstreamChart = await writeChart('compare-upstream', barChart({
    title: `Upstream requests for the workload (${WORKLOAD_REQUESTS.toLocaleString('en-US')} GETs per process)`,
    xTitle: 'requests that reached GitHub (fewer is better)',
    rows: rows.map((r) => ({ label: r.spec.short, value: r.upstream, group: r.spec.form })),
    rules: [{ value: distinct, label: `ideal: ${distinct}` }, { value: FLEET_SIZE * distinct, label: `3 × ideal` }],
  }));
  const idleChart = await writeChart('compare-idle-revisit', stackedBarChart({
    title: 'After 10 minutes idle: every resource once more',
    xTitle: 'upstream answers (charged 200s spend the rate limit; 304s are free)',
    rows: rows.flatMap((r) => [
      { label: r.spec.short, part: 'charged 200', value: r.idle.charged200 },
      { label: r.spec.short, part: 'free 304', value: r.idle.free304 },
    ]),
    parts: [{ name: 'charged 200', color: '#e15759' }, { name: 'free 304', color: '#59a14f' }],
  }));
  const latencyChart = await writeChart('compare-latency', dotPlot({
    title: 'Per-request latency during the workload (20 ms upstream)',
    xTitle: 'ms (log scale)',
    rows: rows.flatMap((r) => [
      { label: r.spec.short, series: 'p50', value: percentile(r.latenciesNs, 50) / 1e6 },
      { label: r.spec.short, series: 'p99', value: percentile(r.latenciesNs, 99) / 1e6 },
    ]),
    series: [{ name: 'p50', color: '#4e79a7' }, { name: 'p99', color: '#f28e2b' }],
  }));
  const hitChart = await writeChart('compare-hit-latency', dotPlot({
    title: 'Hit latency: one warm key repeated',
    xTitle: 'µs per call (log scale)',
    rows: hitRows.flatMap((h) => [
      { label: h.short, series: 'p50', value: percentile(h.samplesNs, 50) / 1000 },
      { label: h.short, series: 'p99', value: percentile(h.samplesNs, 99) / 1000 },
    ]),
    series: [{ name: 'p50', color: '#4e79a7' }, { name: 'p99', color: '#f28e2b' }],
    rules: Number.isFinite(undiciP50) ? [{ value: (HIT_FACTOR * undiciP50) / 1000, label: `${HIT_FACTOR} × undici p50` }] : [],
  }));

  return [
    '## This library against the alternatives',
    '',
    `\`npm run bench -- compare\` · ${machineLine()} · ${ctx.load} Whole run: ${fmt(ctx.totalSeconds, 0)} s.`,
    '',
    `The workload of \`zipf-workload\`: ${WORKLOAD_REQUESTS.toLocaleString('en-US')} GETs of \`/repos/{owner}/{repo}\`, Zipf (s = ${ZIPF_S.toFixed(1)}, same seed) over`,
    `${WORKLOAD_RESOURCES} resources (${distinct} distinct ones drawn), ${WORKLOAD_IN_FLIGHT} in flight per process, one token, against the loopback fake GitHub`,
    `(a fresh one per client, in the parent process) answering after ${WORKLOAD_LATENCY_MS} ms with \`cache-control: private, max-age=60\` and an ETag per`,
    'token. Every client runs in a process of its own, forked with `--expose-gc` (bench/compare/member.ts), each with',
    'its library defaults; the proxy row is Node\'s `fetch` in one process against `startProxy` in another. The fleet',
    'rows run three such processes at once, each the whole workload; this library\'s fleet meshes over libp2p on',
    'loopback; the counters start once the members are connected, before any of them has used the token: the',
    'fleet starts cold, with no warm-up request.',
    '',
    '"x ideal": upstream requests over the distinct resources (one request each is the least any cache can do,',
    'for one process and for a fleet sharing one cache). RSS and heap are those of the process holding the cache',
    '(the proxy for the proxy row; the largest of the three for fleets), after the workload and a full GC; heap Δ',
    'is against the same process just before the workload.',
    '',
    '### One process',
    '',
    mainTable(single),
    '',
    '### Three processes running the workload at once',
    '',
    mainTable(fleets),
    '',
    ...failureNotes(rows),
    `![Upstream requests per client](${upstreamChart})`,
    '',
    `![Latency p50 and p99 per client](${latencyChart})`,
    '',
    'What each client said about its answers (this library: `source`; make-fetch-happen: `x-local-cache-status`;',
    'undici says nothing):',
    '',
    sourceTable,
    '',
    '### Idle revisit: 10 minutes later, each resource once more',
    '',
    `The clock moves ${IDLE_MS / 60_000} minutes on, in the fake GitHub and in every client process (this library takes a \`now\``,
    'option; undici and make-fetch-happen read `Date.now`, replaced in their processes), then each process requests each',
    `of the ${distinct} resources it touched once, ${WORKLOAD_IN_FLIGHT} in flight. A 304 to an authorized conditional request is free.`,
    '',
    idleTable,
    '',
    `![Charged 200s against free 304s after idle](${idleChart})`,
    '',
    'Why undici pays again: its store deletes an entry at its stale time plus its freshness lifetime (2 × max-age,',
    '120 s after the response for GitHub\'s max-age=60: `determineDeleteAt` in lib/handler/cache-handler.js), and',
    'without the entry it has no ETag to send. The same resources, revisited at increasing ages since their last',
    'validation (one process each):',
    '',
    table(['client', ...PROBE_AGES_S.map((a) => `${a} s after last validation: charged 200s / free 304s`)],
      probes.map((p) => [p.name, ...p.steps.map((s) => `${s.charged200} / ${s.free304}`)])),
    '',
    '### Hit latency: one warm key repeated',
    '',
    `After the workload, the hottest resource (${HIT_REPO}), fresh in every cache, requested ${HIT_ITERATIONS.toLocaleString('en-US')} times one after`,
    `the other (after ${HIT_WARMUP} untimed), each call awaited and its body parsed (this library hands out parsed, frozen data).`,
    '',
    hitTable,
    '',
    ...(hitRows.some((h) => h.upstream > 0)
      ? ['"upstream in warm-up": the variant missed once before its timed calls. undici\'s `fetch` sends `accept-encoding`,',
        '`request` does not, and GitHub answers `vary: Accept, Authorization, Accept-Encoding`: the two APIs of one undici',
        'cache do not share entries.', '']
      : []),
    'Through the proxy a hit costs an HTTP round trip: the floor row is Node\'s `fetch` against a bare node:http server',
    'answering the same body, so the proxy\'s own share is the difference (its capacity under load: `proxy-load` below).',
    'The Octokit plugin answers Octokit\'s fetch with a `Response` built from the cached body, which Octokit then parses',
    'again, so its hit costs about what Octokit\'s own pipeline costs.',
    '',
    `![Hit latency per client API](${hitChart})`,
    '',
    '### Does the token end up on disk?',
    '',
    'After each client closed, every file under the directories it was given (cache dirs: SQLite with -wal/-shm,',
    'cacache index and content, the P2P identity) is searched for the token\'s bytes, as is, base64 and hex.',
    '',
    leakTable,
    '',
    '### Goals',
    '',
    table(['goal', 'this run', 'verdict'], [
      ['fewest upstream requests, one process', `ours ${oursSingle.map((r) => r.upstream).join(' / ')}; best alternative ${minOthersSingle}; ideal ${distinct}`, verdict(fewestSingle)],
      ['fewest upstream requests, three processes', `ours ${fleet.upstream}; undici × 3 ${undiciFleet.upstream}`, verdict(fewestFleet)],
      [`fleet near one node's count (≤ ${FLEET_NEAR}x)`, `${fleet.upstream} vs ${oneNode.upstream} (${fmt(fleet.upstream / oneNode.upstream, 2)}x)`, verdict(nearOneNode)],
      ['zero charged refetches after idle', ours.map((r) => `${r.spec.short} ${r.idle.charged}`).join('; '), verdict(zeroCharged)],
      [`hit latency within ${HIT_FACTOR}x of undici's in-memory cache (p50)`, `${fmt(hitRatio, 2)}x`, verdict(hitRatio <= HIT_FACTOR)],
      ['no failed requests through this library', `${ours.reduce((n, r) => n + r.errors, 0)} failed`, verdict(ours.every((r) => r.errors === 0))],
    ]),
  ].join('\n');
}

function summarizeLeak(leak: LeakReport): string {
  const byForm = new Map<string, string[]>();
  for (const { file, form } of leak.found) byForm.set(form, [...(byForm.get(form) ?? []), file]);
  return [...byForm].map(([form, files]) => {
    const shown = files.slice(0, 2).map((f) => `\`${f.replace(/\|/g, '\\|')}\``).join(', ');
    return `${form} in ${files.length} file(s): ${shown}${files.length > 2 ? ', …' : ''}`;
  }).join('; ');
}

/** A line per row with failed requests: how many, in which phase, and the first error. */
function failureNotes(rows: Row[]): string[] {
  const failed = rows.filter((r) => r.errors > 0);
  if (failed.length === 0) return ['No request failed in any row.', ''];
  return [
    'Failed requests (counted in "errors", workload and revisit together; GitHub\'s stand-in is a Node http server',
    'with the default 5 s keep-alive, so a client that reuses a socket the server just closed sees it fail):',
    '',
    ...failed.map((r) => `- ${r.spec.name}: ${r.errors}, first: \`${r.firstError ?? '?'}\``),
    '',
  ];
}
