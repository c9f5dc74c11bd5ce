/**
 * Peer hits under concurrency, beside the same bodies over plain HTTP keep-alive, in one run.
 *
 *   npm run bench -- peer-throughput      (or: node dist/bench/peer-throughput.js [--keys 2000] [--rounds 5] [--rounds-at-1 9])
 *
 * The owner is a fleet member in a child process (support/fleet-node.ts) holding every key fresh, started with the
 * service's Node flags (bin/node-flags.ts), as is the reference server below; the asker is a
 * cache in this process meshed with it over libp2p (TCP, noise, yamux; `--membership pnet`: pnet too) on 127.0.0.1. A peer hit is the
 * first `cache.request` on the asker of a key the owner holds (checked: `source: 'peer'`, no upstream request).
 * At 1, 100 and 500 calls in flight: hits per second, and CPU per hit of both processes (`process.cpuUsage`
 * here, /proc/<pid>/stat for the child).
 *
 * The fake GitHub that fills the owner runs in a child process of its own, as GitHub is not in an asker's process:
 * its resources (tens of thousands of parsed repository bodies) would otherwise sit in this process's heap, and
 * every major GC of the asker (and of the HTTP contender, which runs here too) would mark them.
 *
 * The reference ("plain HTTP"): a node:http server in a child process answering each key with bytes of the size of
 * the peer's `entry` frame from a Map, fetched by undici (a keep-alive Pool of up to 16 connections) with the
 * same number of calls in flight. It is the floor of moving those bytes between two processes over HTTP/1.1;
 * it does no crypto, no proof and no cache work. Within each row the two contenders alternate in blocks of calls
 * (blockCalls), so that both meet the same moment of a noisy host; each round's ratio pairs them over the same blocks,
 * and the row reports the median of the rounds' ratios. Before the rows,
 * WARM_UP_PER_LEVEL untimed calls of each contender at each level bring both to steady state: a peer hit runs far
 * more code (libp2p's layers, the protocol) than an HTTP call, and after a shorter warm-up V8 was still optimizing
 * it, on the other CPU, during the first timed row.
 *
 * `--cpu-prof DIR` writes CPU profiles over each timed block only (not the fill or the warm-up), through node:inspector:
 * DIR/asker-peer-<in flight>-round-<n>-block-<b>.cpuprofile (the asker, this process), owner-peer-….cpuprofile (the
 * owner, the child), client-http-….cpuprofile (undici) and, at 1 in flight, client-echo-….cpuprofile (the echo's client).
 *
 * The fake GitHub sends the headers api.github.com puts on every answer (FakeGitHubOptions.recordedHeaders: CORS,
 * security policy, the token's OAuth scopes, 25 headers in all), so that what the owner stores and sends per key
 * is as large as what GitHub's answers make it; the `entry` frame's size, which the reference server and the echo
 * answer with, is measured from an answer before the rows. `--headers minimal` runs with the fake's own smaller set
 * (the rows recorded before 2026-12-03), printed without recording.
 *
 * `--persistence auto`: the asker and the owner keep SQLite, as the library does by default (a key's first request
 * looks in SQLite before it asks the fleet, and the answer is written there too); the recorded rows run memory only
 * (`off`, the default here). A run with SQLite, like one with other levels, prints its tables without recording them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { missingNodeFlags, SERVICE_NODE_FLAGS } from '../bin/node-flags.js';
import { entryOf } from '../src/cache/http-policy.js';
import { DEFAULTS } from '../src/options.js';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { entryPayload } from '../src/p2p/envelope.js';
import { HeaderTableWriter } from '../src/p2p/header-table.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { encodeFrame } from '../src/p2p/wire.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { TempDirs } from '../support/temp-dir.js';
import { pool } from '../support/workload.js';
import { AS_THE_FLEET, libp2pEchoPair, type EchoPair } from './libp2p-echo.js';
import { askerOfMember, keyOf, mainThreadWaitUs, OWNER, p2pOf, processCpuUs, SECRET, startMember, TOKEN } from './p2p.js';
import { argValue, fmt, machineLine, median, table, writeSection } from './report.js';
import { cpuIdleLine, loadLine, repoBody } from './workload.js';

const SELF = fileURLToPath(import.meta.url);
const ROUTE = 'GET /repos/{owner}/{repo}';
/** Calls in flight per row: `--levels 1,100,500` (the default). */
const LEVELS: readonly number[] = (argValue('levels') ?? '1,100,500').split(',').map(Number);
/**
 * Rounds at 1 in flight when neither `--rounds-at-1` nor `--rounds` is given (the other levels run 5; a given `--rounds`
 * applies to every level, so the commands docs/benchmarks.md quotes run as they ran then). A round at 1 in
 * flight was sized to take about a second (blockCalls); on a host as fast as 2026-12-04's, its 2,000 calls of each
 * contender take a quarter of that, and single rounds of one run spread from about 0.45x to 1.2x. In 44 runs that day,
 * the median of a run's first five rounds moved from run to run with a standard deviation of 0.055, the median of all
 * nine with 0.033 (docs/benchmarks.md, "At 1 in flight, nine rounds"): the row is less a draw of the rounds' noise, for
 * some 3 s more.
 */
const ROUNDS_AT_1 = 9;
/** Untimed calls of each contender at each level before the rows. */
const WARM_UP_PER_LEVEL = 1000;
/** Bytes of the asker's `get` frame (the peer-latency benchmark: 180 B). */
const GET_FRAME_BYTES = 180;
/** `--cpu-prof DIR`: profile the asker, the owner, the HTTP client and the echo's client over each timed block. */
const CPU_PROF_DIR = argValue('cpu-prof');
/** `--headers recorded|minimal`: the fake GitHub's answer headers, as api.github.com's (default) or its own smaller set. */
const HEADERS = ((): 'recorded' | 'minimal' => {
  const value = argValue('headers') ?? 'recorded';
  if (value !== 'recorded' && value !== 'minimal') throw new Error(`--headers must be recorded or minimal, got ${JSON.stringify(value)}`);
  return value;
})();
/** `--persistence auto|off`: the asker's and the owner's `persistence` (default off). */
const PERSISTENCE = ((): 'auto' | 'off' => {
  const value = argValue('persistence') ?? 'off';
  if (value !== 'auto' && value !== 'off') throw new Error(`--persistence must be auto or off, got ${JSON.stringify(value)}`);
  return value;
})();

/**
 * `--membership handshake|pnet`: the members' `p2p.membership` (default: the library's, 'handshake'), set through
 * CACHE_P2P_MEMBERSHIP so that the owner child reads it too; the echo is built to match. 'pnet' runs the fleet as
 * it ran before 2026-12 (printed, not recorded).
 */
const MEMBERSHIP = ((): 'handshake' | 'pnet' => {
  const value = argValue('membership') ?? DEFAULTS.membership;
  if (value !== 'handshake' && value !== 'pnet') throw new Error(`--membership must be handshake or pnet, got ${JSON.stringify(value)}`);
  process.env.CACHE_P2P_MEMBERSHIP = value;
  return value;
})();

/** The connection's layers, as the benchmark's text names them. */
const TRANSPORT = MEMBERSHIP === 'pnet' ? 'TCP, pnet, noise, yamux: `p2p.membership` `pnet`' : 'TCP, noise with the shared secret\'s prologue, yamux: `p2p.membership` `handshake`, the default';
const TRANSPORT_IN_LIBSODIUM = MEMBERSHIP === 'pnet' ? 'TCP, pnet and noise through libsodium' : 'TCP, noise with the prologue through libsodium';

function arg(name: string, fallback: number): number {
  const value = argValue(name);
  return value !== undefined ? Number(value) : fallback;
}

interface Run {
  perSecond: number;
  cpuPerHitUs: number;
  /** Of cpuPerHitUs: this process's (the asker's, or the HTTP client's) part. */
  ownCpuPerHitUs: number;
  /** µs per call this process's event loop, then the other's, spent runnable but waiting for a CPU (NaN without schedstat). */
  ownWaitPerCallUs: number;
  otherWaitPerCallUs: number;
}

/** What a contender spent on some calls: wall time, and CPU of this process and of the other one. */
interface Spent {
  calls: number;
  seconds: number;
  ownUs: number;
  otherUs: number;
  ownWaitUs: number;
  otherWaitUs: number;
}

const NOTHING: Spent = { calls: 0, seconds: 0, ownUs: 0, otherUs: 0, ownWaitUs: 0, otherWaitUs: 0 };

/** Runs `items` with `inFlight` at a time; wall time and CPU of this process and of `pid`. */
async function timed<T>(items: readonly T[], inFlight: number, pid: number, fn: (item: T) => Promise<void>): Promise<Spent> {
  const waited = () => [mainThreadWaitUs('self'), mainThreadWaitUs(pid)] as const;
  const waitedBefore = waited();
  const childBefore = processCpuUs(pid) ?? Number.NaN;
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await pool(items, inFlight, fn);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  const otherUs = (processCpuUs(pid) ?? Number.NaN) - childBefore;
  const waitedAfter = waited();
  return { calls: items.length, seconds, ownUs: used.user + used.system, otherUs, ownWaitUs: waitedAfter[0] - waitedBefore[0], otherWaitUs: waitedAfter[1] - waitedBefore[1] };
}

const add = (a: Spent, b: Spent): Spent =>
  ({ calls: a.calls + b.calls, seconds: a.seconds + b.seconds, ownUs: a.ownUs + b.ownUs, otherUs: a.otherUs + b.otherUs,
    ownWaitUs: a.ownWaitUs + b.ownWaitUs, otherWaitUs: a.otherWaitUs + b.otherWaitUs });

const runOf = (spent: Spent): Run => ({
  perSecond: spent.calls / spent.seconds,
  cpuPerHitUs: (spent.ownUs + spent.otherUs) / spent.calls,
  ownCpuPerHitUs: spent.ownUs / spent.calls,
  ownWaitPerCallUs: spent.ownWaitUs / spent.calls,
  otherWaitPerCallUs: spent.otherWaitUs / spent.calls,
});

/**
 * Calls per block when the two contenders alternate within a row: at 1 in flight a row of 2,000 calls takes about a
 * second, and the host's noise on these machines (other guests' load, vCPU wake-ups) drifts over seconds, so blocks
 * of ~0.1 s give both contenders the same conditions. With more in flight, a block holds ten rounds of the pool so
 * that its ramp-up and drain stay small; at 500 in flight that is the whole row.
 */
const blockCalls = (inFlight: number): number => Math.max(200, inFlight * 10);

/** Each round's rate of contender `a` over contender `b`'s, both timed over the same blocks of that round. */
function pairedRatios(results: ReadonlyMap<string, readonly Run[]>, a: string, b: string): number[] {
  const of = results.get(b)!;
  return results.get(a)!.map((run, round) => run.perSecond / of[round]!.perSecond);
}

/** The least and greatest of `ratios`, as a table cell. */
const spread = (ratios: readonly number[]): string => `${fmt(Math.min(...ratios), 2)}–${fmt(Math.max(...ratios), 2)}x`;

/**
 * At 1 in flight, the peer hit and plain HTTP beside the libp2p echo of the same two frames, each pair's ratio the
 * median of the rounds' own (all three alternate block by block).
 */
function transportFloor(results: Map<string, Run[]>, med: (name: string, pick: (r: Run) => number) => number, echoFrameBytes: number): string[] {
  const pairedOf = (a: string, b: string) => {
    const ratios = pairedRatios(results, a, b);
    return `${fmt(median(ratios), 2)}x (${spread(ratios)})`;
  };
  const row = (label: string, name: string, overEcho: string) => [label, fmt(med(name, (r) => r.perSecond), 0),
    name === 'http-1' ? '1.00x' : pairedOf(name, 'http-1'), overEcho, fmt(med(name, (r) => r.cpuPerHitUs), 0),
    `${fmt(med(name, (r) => r.ownCpuPerHitUs), 0)} / ${fmt(med(name, (r) => r.cpuPerHitUs - r.ownCpuPerHitUs), 0)}`,
    `${fmt(med(name, (r) => r.ownWaitPerCallUs), 0)} / ${fmt(med(name, (r) => r.otherWaitPerCallUs), 0)}`];
  return [
    '',
    'At 1 in flight a third contender alternates with the two, block by block: the peer hit\'s two frames',
    `(${GET_FRAME_BYTES} B out, ${echoFrameBytes.toLocaleString('en-US')} B back, the entry as the stream carries it) echoed over libp2p as the fleet runs it (${TRANSPORT_IN_LIBSODIUM}, yamux with`,
    'window updates batched; bench/libp2p-echo.ts), its server in a child process as the owner is: what the transport alone',
    'allows, with no cache and no protocol work. CPU is each process\'s on-CPU time (the other\'s from Linux\'s schedstat, in',
    'ns, every thread); the last column is the time each event loop was runnable but waited for a CPU (schedstat): what a',
    'busy host adds to the cycle, beside the work itself.',
    '',
    table(['at 1 in flight', 'calls/s', 'over plain HTTP (rounds\' median, spread)', 'over the libp2p echo', 'CPU µs per call', 'this process / the other, CPU µs',
      'waiting for a CPU, µs per call (this / the other)'], [
      row('plain HTTP (undici ↔ node:http)', 'http-1', '—'),
      row('libp2p echo of the two frames, as the fleet runs it', 'echo-1', '1.00x'),
      row('peer hit', 'peer-1', pairedOf('peer-1', 'echo-1')),
    ]),
    '',
    `Each round's peer / HTTP at 1 in flight, in the order they ran: ${pairedRatios(results, 'peer-1', 'http-1').map((r) => `${fmt(r, 2)}x`).join(', ')}.`,
  ];
}

/**
 * This benchmark in a child process started with the service's Node flags this one lacks (the same arguments);
 * its table. Without `--heap-growing-percent=100` the asker's process (which holds every entry it gets) ran a
 * full GC every half second or so through the timed rows, as the owner did before it had the flag.
 */
function withServiceFlags(missing: readonly string[]): Promise<string> {
  const child = fork(SELF, [WITH_FLAGS, ...process.argv.slice(2)], { execArgv: [...process.execArgv, ...missing], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let md: string | undefined;
    child.on('message', (message: { md?: unknown }) => {
      if (typeof message.md === 'string') md = message.md;
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0 && md !== undefined) resolve(md);
      else reject(new Error(`peer-throughput, run again with ${missing.join(' ')}, ended with ${signal ?? `exit code ${code}`}`));
    });
  });
}

/** Marks the run of withServiceFlags's child. */
const WITH_FLAGS = '--with-service-flags';

/** Splits `items` into blocks of `size` (the last may be shorter). */
function blocks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size));
  return out;
}

/** The fake GitHub, in a child process: serves `count` repository bodies; tells its request count when asked. */
async function fakeChild(count: number): Promise<void> {
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 100_000_000 } }, recordedHeaders: HEADERS === 'recorded' });
  fake.setResource('/rate_limit', { resources: {} });
  for (let i = 0; i < count; i++) fake.setResource(`/repos/${OWNER}/${repoName(i)}`, repoBody(OWNER, repoName(i), i));
  process.send!({ url: fake.url });
  process.on('message', (message: string) => {
    if (message === 'requests') process.send!({ requests: fake.stats.requests });
    else void fake.close().then(() => process.exit(0));
  });
}

/**
 * Bytes of the `entry` frame the owner sends for one key: one peer hit, its answer turned back into the entry
 * it was made from by the cache's own `entryOf` (its bytes, status and stored headers: not the scope's
 * x-ratelimit-* the answer carries) and encoded as the owner encodes an unsealed one. `answer`: with its headers as
 * a map (the whole answer, headers and body: what the HTTP reference moves); `onStream`: as the owner sends it once
 * an answer before defined its repeated header pairs on the stream (header-table.ts: what the echo moves).
 */
async function measureEntryFrame(asker: GitHubAPICache, githubApiUrl: string, repo: string): Promise<{ answer: number; onStream: number }> {
  const answer = await asker.request(ROUTE, { owner: OWNER, repo }, { token: TOKEN });
  if (answer.source !== 'peer') throw new Error(`frame size: expected a peer hit for ${repo}, got ${answer.source}`);
  const entry = entryOf({ status: answer.status, headers: answer.headers, body: answer.bytes }, Date.now(), 60);
  const key = keyOf(githubApiUrl, repo);
  const table = new HeaderTableWriter();
  entryPayload(entry, key, table);
  return {
    answer: encodeFrame({ type: 'entry', id: 1, payload: entryPayload(entry, key) }).byteLength,
    onStream: encodeFrame({ type: 'entry', id: 1, payload: entryPayload(entry, key, table) }).byteLength,
  };
}

const repoName = (i: number): string => `tp-${i}`;

interface FakeProcess {
  url: string;
  requests(): Promise<number>;
  stop(): void;
}

async function startFake(count: number): Promise<FakeProcess> {
  const child = fork(SELF, ['--fake-child', String(count), '--headers', HEADERS], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (m: { url: string }) => resolve(m.url));
    child.once('exit', (code) => reject(new Error(`the fake GitHub exited with ${code}`)));
  });
  return {
    url,
    requests: () => new Promise((resolve) => {
      child.once('message', (m: { requests: number }) => resolve(m.requests));
      child.send('requests');
    }),
    stop: () => child.send('stop'),
  };
}

/** The reference server: answers GET /k/<n> with `bytes` bytes (the entry frame's size) from a Map. */
async function httpChild(bytes: number): Promise<void> {
  const bodies = new Map<string, Buffer>();
  const server = http.createServer((req, res) => {
    let body = bodies.get(req.url!);
    if (body === undefined) {
      body = Buffer.alloc(bytes, req.url!);
      bodies.set(req.url!, body);
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
  process.on('message', () => server.close(() => process.exit(0)));
}

export async function benchPeerThroughput(): Promise<string> {
  // The asker is a fleet member too: it runs as the service does, like the owner. Started without the service's
  // flags (`npm run bench` runs every benchmark in one plain node), this benchmark runs itself again with them.
  const missing = missingNodeFlags();
  if (missing.length > 0) return withServiceFlags(missing);
  const keysPerLevel = arg('keys', 2000);
  const rounds = arg('rounds', 5);
  const roundsAt1 = arg('rounds-at-1', argValue('rounds') === undefined ? ROUNDS_AT_1 : rounds);
  const roundsOf = (level: number): number => (level === 1 ? roundsAt1 : rounds);
  const maxRounds = Math.max(...LEVELS.map(roundsOf));
  const load = [loadLine(), cpuIdleLine(), PERSISTENCE === 'off' ? '' : `Asker and owner with persistence '${PERSISTENCE}' (SQLite).`]
    .filter((line) => line !== '').join(' ');
  const temp = new TempDirs('gh-p2p-cache-bench-peer-throughput-');
  const needed = LEVELS.reduce((sum, level) => sum + keysPerLevel * roundsOf(level), 0);
  const warmUp = WARM_UP_PER_LEVEL * LEVELS.length;
  // About half the names fall to the child by rendezvous: room for the rows and the warm-up keys, with a margin.
  const names = Array.from({ length: Math.ceil((needed + warmUp) * 2.4) }, (_, i) => repoName(i));
  const fake = await startFake(names.length);
  const maxEntries = names.length + 1000;
  const member = startMember({
    CACHE_DIR: temp.make(), GITHUB_API_URL: fake.url, CACHE_LISTEN_PORT: '0', CACHE_P2P_SHARED_SECRET: SECRET, CACHE_BOOTSTRAP_PEERS: '',
    CACHE_MAX_ENTRIES: String(maxEntries), FLEET_NODE_PERSISTENCE: PERSISTENCE,
  });
  let reference: ChildProcess | undefined;
  let asker: GitHubAPICache | undefined;
  let echo: EchoPair | undefined;
  try {
    const ready = await member.ready;
    asker = await askerOfMember(fake.url, temp, member, maxEntries, PERSISTENCE);
    const me = asker;
    const ids = [(await p2pOf(me)).peerId, ready.p2p.peerId];
    const owned = names.filter((repo) => rendezvousOwner(keyOf(fake.url, repo), ids) === ids[1]);
    if (owned.length < needed + warmUp + 1) throw new Error(`only ${owned.length} keys are owned by the child`);
    await pool(owned.slice(0, needed + warmUp + 1), 50, async (repo) => {
      const reply = await member.request(`GET /repos/${OWNER}/${repo}`, TOKEN);
      if (reply.source !== 'origin') throw new Error(`owner fill: expected origin for ${repo}, got ${String(reply.source ?? reply.message)}`);
    });
    const peerHit = async (repo: string) => {
      const answer = await me.request(ROUTE, { owner: OWNER, repo }, { token: TOKEN });
      if (answer.source !== 'peer') throw new Error(`expected a peer hit for ${repo}, got ${answer.source}`);
    };
    // The whole answer (what the HTTP reference moves) and the frame as the stream carries it (what the echo moves).
    const { answer: entryFrameBytes, onStream: onStreamFrameBytes } = await measureEntryFrame(me, fake.url, owned[needed + warmUp]!);
    // The same Node flags as the owner (the service's: bin/node-flags.ts), so both servers start alike.
    reference = fork(SELF, ['--http-child', String(entryFrameBytes)], { execArgv: [...process.execArgv, ...SERVICE_NODE_FLAGS], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const referencePort = await new Promise<number>((resolve) => reference!.once('message', (m: { port: number }) => resolve(m.port)));
    // At 1 in flight, a third contender: the peer hit's two frames echoed over libp2p as the fleet runs it (noise with
    // the shared secret's prologue, or pnet beneath it with --membership pnet; fleetNoise with libsodium's
    // ChaCha20-Poly1305, window updates batched), its server in a child process as the owner is: what the transport
    // alone allows, beside what the peer hit gets.
    if (LEVELS.includes(1)) {
      echo = await libp2pEchoPair({
        requestBytes: GET_FRAME_BYTES, replyBytes: onStreamFrameBytes, ...AS_THE_FLEET, ...(MEMBERSHIP === 'pnet' ? { pnet: true, prologue: false } : {}), serverInChild: true,
      });
    }
    const http1 = new Pool(`http://127.0.0.1:${referencePort}`, { connections: 16, keepAliveTimeout: 60_000 });
    const plainGet = async (n: number) => {
      const { statusCode, body } = await http1.request({ method: 'GET', path: `/k/${n}` });
      const bytes = await body.arrayBuffer();
      if (statusCode !== 200 || bytes.byteLength !== entryFrameBytes) throw new Error('reference server answered wrong');
    };
    // Warm-up: both paths, untimed, at every level the rows run (JIT steady state: with 300 calls at 20 in flight,
    // V8 was still optimizing some 270 functions during the first timed row at 1 in flight, on the other CPU).
    for (const [i, level] of LEVELS.entries()) {
      const at = needed + i * WARM_UP_PER_LEVEL;
      await pool(owned.slice(at, at + WARM_UP_PER_LEVEL), level, peerHit);
      await pool(Array.from({ length: WARM_UP_PER_LEVEL }, (_, j) => -1 - i * WARM_UP_PER_LEVEL - j), level, plainGet);
      if (level === 1 && echo !== undefined) for (let j = 0; j < WARM_UP_PER_LEVEL; j++) await echo.roundTrip();
    }
    const echoTrip = async (): Promise<void> => echo!.roundTrip();

    const results = new Map<string, Run[]>();
    const push = (name: string, run: Run) => results.set(name, [...(results.get(name) ?? []), run]);
    let next = 0;
    const profiles: [string, object][] = [];
    const before = await fake.requests();
    const profiler = CPU_PROF_DIR === undefined ? undefined : new Session();
    if (profiler !== undefined) {
      profiler.connect();
      await profiler.post('Profiler.enable');
    }
    for (let round = 0; round < maxRounds; round++) {
      for (const level of LEVELS) {
        if (round >= roundsOf(level)) continue;
        const keys = owned.slice(next, next + keysPerLevel);
        next += keysPerLevel;
        const ns = Array.from({ length: keysPerLevel }, (_, i) => round * 1e6 + level * 1e4 + i);
        // The contenders alternate block by block within the row; each block's time and CPU add up to the row's.
        let peer = NOTHING;
        let plain = NOTHING;
        let echoed = NOTHING;
        const size = blockCalls(level);
        const peerBlocks = blocks(keys, size);
        const plainBlocks = blocks(ns, size);
        if (profiler !== undefined) mkdirSync(CPU_PROF_DIR!, { recursive: true });
        for (const [b, block] of peerBlocks.entries()) {
          if (profiler !== undefined) {
            await member.startProfile();
            await profiler.post('Profiler.start');
          }
          peer = add(peer, await timed(block, level, member.pid, peerHit));
          if (profiler !== undefined) {
            profiles.push([`asker-peer-${level}-round-${round + 1}-block-${b + 1}`, (await profiler.post('Profiler.stop')).profile]);
            await member.stopProfile(path.join(CPU_PROF_DIR!, `owner-peer-${level}-round-${round + 1}-block-${b + 1}.cpuprofile`));
          }
          await profiler?.post('Profiler.start');
          plain = add(plain, await timed(plainBlocks[b]!, level, reference.pid!, plainGet));
          if (profiler !== undefined) profiles.push([`client-http-${level}-round-${round + 1}-block-${b + 1}`, (await profiler.post('Profiler.stop')).profile]);
          if (level === 1 && echo !== undefined) {
            await profiler?.post('Profiler.start');
            echoed = add(echoed, await timed(plainBlocks[b]!, 1, echo.serverPid!, echoTrip));
            if (profiler !== undefined) profiles.push([`client-echo-${level}-round-${round + 1}-block-${b + 1}`, (await profiler.post('Profiler.stop')).profile]);
          }
        }
        push(`peer-${level}`, runOf(peer));
        push(`http-${level}`, runOf(plain));
        if (echoed.calls > 0) push('echo-1', runOf(echoed));
      }
    }
    if (profiler !== undefined) {
      mkdirSync(CPU_PROF_DIR!, { recursive: true });
      for (const [name, profile] of profiles) writeFileSync(path.join(CPU_PROF_DIR!, `${name}.cpuprofile`), JSON.stringify(profile));
      profiler.disconnect();
    }
    const upstream = (await fake.requests()) - before;
    if (upstream !== 0) throw new Error(`${upstream} upstream requests during peer hits: the owner did not hold its keys`);
    await http1.close();
    await echo?.close();
    echo = undefined;

    const med = (name: string, pick: (r: Run) => number) => median(results.get(name)!.map(pick));
    const rows = LEVELS.map((level) => {
      const peerRate = med(`peer-${level}`, (r) => r.perSecond);
      const httpRate = med(`http-${level}`, (r) => r.perSecond);
      const peerCpu = med(`peer-${level}`, (r) => r.cpuPerHitUs);
      const httpCpu = med(`http-${level}`, (r) => r.cpuPerHitUs);
      const split = (name: string) => {
        const own = med(name, (r) => r.ownCpuPerHitUs);
        return `${fmt(own, 0)} / ${fmt(med(name, (r) => r.cpuPerHitUs - r.ownCpuPerHitUs), 0)}`;
      };
      // Each round's ratio pairs the two contenders over the same blocks of time; the row gives their median.
      const paired = pairedRatios(results, `peer-${level}`, `http-${level}`);
      const ratio = median(paired);
      return [String(level), fmt(peerRate, 0), fmt(httpRate, 0), `${fmt(ratio, 2)}x`, spread(paired),
        fmt(peerCpu, 0), fmt(httpCpu, 0), `${fmt(peerCpu / httpCpu, 1)}x`,
        split(`peer-${level}`), split(`http-${level}`), `≥ 0.6x: ${ratio >= 0.6 ? 'met' : '**missed**'}`];
    });
    const md = [
      '## Peer hits under concurrency, beside plain HTTP',
      '',
      `\`npm run bench -- peer-throughput\` · ${machineLine()} · ${keysPerLevel.toLocaleString('en-US')} distinct keys per row and round, ${rounds} rounds${LEVELS.includes(1) && roundsAt1 !== rounds ? ` (${roundsAt1} at 1 in flight)` : ''}`,
      `(medians over the rounds), after ${WARM_UP_PER_LEVEL.toLocaleString('en-US')} untimed calls of each contender at each level (so that V8 has compiled`,
      'both paths). Peer hit: the first `cache.request` on the asker (this process) of a key the owner (a',
      `child process, support/fleet-node.ts, started as the service is: \`node ${SERVICE_NODE_FLAGS.join(' ')}\`) holds fresh, over one libp2p connection (${TRANSPORT}) on 127.0.0.1`,
      '(the asker\'s process, which also runs the HTTP client and the echo\'s client, has the same flags: the benchmark starts itself again with them',
      'when they are missing); each answer',
      `checked to be \`source: 'peer'\`, ${upstream} upstream requests during the rows (the fake GitHub runs in a third process${HEADERS === 'recorded'
        ? ' and sends the headers api.github.com puts on every answer, as @octokit/fixtures recorded them, so the `entry` frame, measured from an answer before the rows, is as large as GitHub\'s answers make it'
        : ', with its own smaller set of headers (`--headers minimal`)'}). Plain HTTP: the same number of calls in flight,`,
      `undici (keep-alive Pool, up to 16 connections) fetching ${entryFrameBytes.toLocaleString('en-US')} B (the size of the peer's \`entry\` frame with its headers as a map: the`,
      `whole answer, headers and body; on a stream whose earlier answers defined the repeated header pairs, the owner sends ${onStreamFrameBytes.toLocaleString('en-US')} B) from a`,
      'node:http server in a child process (the same Node flags) that answers from a Map: no crypto, no proofs, no cache. CPU per hit counts both processes;',
      'the split columns give each process\'s part (medians of each, so they need not add up to the total\'s median): whichever side',
      'is busiest bounds the rate, since each process runs its event loop on one core. Within each row the contenders alternate in',
      `blocks of ${LEVELS.map((level) => `${blockCalls(level).toLocaleString('en-US')} calls at ${level}`).join(', ')} in flight (at most the row), so that both meet the same`,
      'moment of a noisy host; "peer / HTTP" is the median of the rounds\' own ratios, each over the same blocks of time (the next',
      'column gives their spread), and the target is read from it.',
      load,
      '',
      table(['in flight', 'peer hits/s', 'plain HTTP/s', 'peer / HTTP', 'rounds\' ratios', 'peer CPU µs per hit', 'HTTP CPU µs per call', 'CPU ratio',
        'asker / owner CPU µs', 'HTTP client / server CPU µs', 'target'], rows),
      ...(results.has('echo-1') ? transportFloor(results, med, onStreamFrameBytes) : []),
    ].join('\n');
    // Other levels than the default are a look, not the documented table (the summary reads its three rows).
    if (argValue('levels') === undefined && PERSISTENCE === 'off' && HEADERS === 'recorded' && MEMBERSHIP === DEFAULTS.membership) writeSection('peer-throughput', md);
    return md;
  } finally {
    await echo?.close();
    await asker?.close();
    await member.stop();
    reference?.send('stop');
    fake.stop();
    temp.removeAll();
  }
}

if (process.argv.includes('--http-child')) {
  await httpChild(Number(process.argv[process.argv.indexOf('--http-child') + 1]));
} else if (process.argv.includes('--fake-child')) {
  await fakeChild(Number(process.argv[process.argv.indexOf('--fake-child') + 1]));
} else if (process.argv.includes(WITH_FLAGS)) {
  const md = await benchPeerThroughput();
  process.send!({ md }, () => process.disconnect());
} else if (process.argv[1] === SELF) {
  console.log(await benchPeerThroughput());
}
