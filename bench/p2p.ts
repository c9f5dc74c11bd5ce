/**
 * P2P sharing (issue 4): real GitHubAPICache nodes meshed over libp2p on loopback, against the fake GitHub
 * (support/fake-github/), as test/p2p-fleet.spec.ts starts them.
 * - `peer-latency`: per-call p50/p90/p99 and CPU of a peer hit (the first request on an asker of a key its peer
 *   owns and already holds fresh) beside a memory hit and an origin fetch, in one run; the peer hit twice: with
 *   the owner in this process (one event loop for both) and in a child process (support/fleet-node.ts).
 *   Under them, the floors a peer hit stands on: the protocol's own work (crypto, CBOR) without I/O, and its
 *   two frames echoed over raw TCP and over the same libp2p stack, with the echo's server in this process (timed
 *   beside the in-process peer hit) and in a child process (timed beside the peer hit whose owner is in a child: two
 *   processes waking each other, like for like). Targets: peer hit p50 under 1 ms, and at most 1.5x the libp2p echo's.
 * - `fleet-ratio`: the Zipf workload of `zipf-workload` (3,000 GETs over 300 resources, 50 in flight, 20 ms
 *   upstream) run by one node, by a 3-node fleet with every node running all of it at once, and by three
 *   independent caches, all cold (no node has used the token before the clock starts), plus the fleet warm (every
 *   node used the token and proved its scope first) for comparison. Target: the fleet spends at most 1.1x the
 *   upstream requests of one node, cold and warm (independent caches spend about 3x).
 * Size: two benchmarks sharing the fleet helpers (mesh, scope sharing, the child member) and the measuring helpers.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { SERVICE_NODE_FLAGS } from '../bin/node-flags.js';
import type { CacheEntry } from '../src/cache/entry.js';
import { entryOf } from '../src/cache/http-policy.js';
import { GitHubAPICache } from '../src/github-api-cache.js';
import type { ResponseSource } from '../src/cache/counters.js';
import { DEFAULT_ACCEPT, formatRequestKey, normalizeUrl, parseRequestKey } from '../src/cache/request-key.js';
import { entryKeyOf, scopeIdOf } from '../src/cache/scope.js';
import { entryPayload, openPlainEntry } from '../src/p2p/envelope.js';
import { HeaderTableReader, HeaderTableWriter } from '../src/p2p/header-table.js';
import type { PeerNetworkStats } from '../src/p2p/peer-network.js';
import { rendezvousOwner } from '../src/p2p/rendezvous.js';
import { CHALLENGE_BYTES, getProof, proofKeyOf, verifyGetProof } from '../src/p2p/scope-proof.js';
import { decodeFrame, encodeFrame } from '../src/p2p/wire.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { TempDirs } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { mulberry32, pool, zipfSampler } from '../support/workload.js';
import { AS_THE_FLEET, libp2pEchoPair } from './libp2p-echo.js';
import { expectSource, fmt, machineLine, percentile, table, timeEach, writeSection } from './report.js';
import { loadLine, mean, repoBody, schedstat } from './workload.js';

/** A made-up token the fake accepts; never printed. */
export const TOKEN = 'test_benchmarkP2PTokenNotARealOne00000000';
export const SECRET = 'bench-p2p-shared-secret-0123456789abcdef';
export const OWNER = 'bench';
const ROUTE = 'GET /repos/{owner}/{repo}';
/** The member script of the specs (dist/support/fleet-node.js): one cache with P2P on, driven over IPC. */
const MEMBER_SCRIPT = fileURLToPath(new URL('../support/fleet-node.js', import.meta.url));
const TEMP_PREFIX = 'gh-p2p-cache-bench-p2p-';

// ---------------------------------------------------------------- peer hit latency

const LATENCY_KEYS = 2_000;
/** Rows that only set the scene (origin fetches, fleet misses) take fewer samples: each costs milliseconds. */
const SCENE_KEYS = 1_000;
/** Untimed calls through each path first. */
const WARM_UP_KEYS = 300;
/** Resources on the fake: enough that the owner of two nodes owns LATENCY_KEYS + SCENE_KEYS + WARM_UP_KEYS of them (it owns about half). */
const LATENCY_POOL = 4 * LATENCY_KEYS;
const ORIGIN_LATENCY_MS = 2;
/** Room for every key of the run (the default, 1,000, would evict the owner's keys before they are asked for). */
const LATENCY_MAX_ENTRIES = 4 * LATENCY_KEYS;

/** Per-call wall times (ns) and the CPU the run cost, per call (µs, every process involved). */
interface Measured {
  ns: number[];
  cpuUs: number | undefined;
}

export async function benchPeerLatency(): Promise<string> {
  const load = loadLine();
  const temp = new TempDirs(TEMP_PREFIX);
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } }, latencyMs: ORIGIN_LATENCY_MS });
  fake.setResource('/rate_limit', { resources: {} });
  const names = Array.from({ length: LATENCY_POOL }, (_, i) => `repo-${i}`);
  for (const [i, name] of names.entries()) fake.setResource(`/repos/${OWNER}/${name}`, repoBody(OWNER, name, i));
  const bodyBytes = Buffer.byteLength(JSON.stringify(repoBody(OWNER, names[0]!, 0)));
  const get = (cache: GitHubAPICache, repo: string) => cache.request(ROUTE, { owner: OWNER, repo }, { token: TOKEN });
  const rows = new Map<string, Measured>();
  const upstreamDuringPeerHits: number[] = [];
  const open: GitHubAPICache[] = [];
  const floors: Floor[] = [];
  let frameBytes = { request: 0, reply: 0 };

  try {
    // The floors a peer hit stands on, timed in alternation with the peer hits (so all see the same machine).
    const protocol = await protocolWork(fake.url, names.slice(0, LATENCY_KEYS));
    floors.push(protocol);
    frameBytes = protocol.frames;
    const tcpFloor = await tcpEcho(frameBytes.request, frameBytes.reply);
    floors.push(tcpFloor);
    const libp2pFloor = await libp2pEcho(frameBytes.request, frameBytes.reply, false);
    floors.push(libp2pFloor);
    const batchedFloor = await libp2pEcho(frameBytes.request, frameBytes.reply, true);
    floors.push(batchedFloor);
    const indices = Array.from({ length: LATENCY_KEYS }, (_, i) => i);
    for (const floor of floors) for (const i of indices.slice(0, WARM_UP_KEYS)) await floor.roundTrip(i);

    // 1. Asker and owner in this process, meshed, sharing the token's scope.
    const [asker, owner] = await mesh(fake.url, 2, temp, LATENCY_MAX_ENTRIES);
    open.push(asker!, owner!);
    await shareScope([asker!, owner!]);
    const ids = [(await p2pOf(asker!)).peerId, (await p2pOf(owner!)).peerId];
    const ownedBy = (id: string, among: string[]) => names.filter((repo) => rendezvousOwner(keyOf(fake.url, repo), among) === id);
    const owned = ownedBy(ids[1]!, ids);
    if (owned.length < LATENCY_KEYS + SCENE_KEYS + WARM_UP_KEYS) throw new Error(`only ${owned.length} of ${LATENCY_POOL} keys are owned by the owner`);
    const held = owned.slice(0, LATENCY_KEYS);
    const notHeld = owned.slice(LATENCY_KEYS, LATENCY_KEYS + SCENE_KEYS);
    const warmUp = owned.slice(LATENCY_KEYS + SCENE_KEYS, LATENCY_KEYS + SCENE_KEYS + WARM_UP_KEYS);
    const plain = await GitHubAPICache.create({ persistence: 'off', cacheDir: temp.make(), githubApiUrl: fake.url, maxEntries: LATENCY_MAX_ENTRIES });
    open.push(plain);

    // Warm up every path timed below (origin with P2P on and off, peer hits), so no row pays for the JIT.
    for (const repo of warmUp) {
      expectSource(await get(owner!, repo), 'origin');
      expectSource(await get(asker!, repo), 'peer');
      expectSource(await get(plain, repo), 'origin');
    }

    // The owner fetches its keys (origin on a P2P node that owns the key itself: rendezvous says 'self'), in
    // alternating blocks with a cache with P2P off fetching keys it never saw, so both see the same machine.
    const [originOwner, originPlain] = await measureAlternating([
      { items: held, fn: async (repo) => expectSource(await get(owner!, repo), 'origin') },
      { items: notHeld, fn: async (repo) => expectSource(await get(plain, repo), 'origin') },
    ]);
    rows.set('originOwner', originOwner!);
    rows.set('originPlain', originPlain!);
    let before = fake.stats.requests;
    const [peerSameLoop, protocolRow, tcpRow, libp2pRow, batchedRow] = await measureAlternating<string | number>([
      { items: held, fn: async (repo) => expectSource(await get(asker!, repo as string), 'peer') },
      { items: indices, fn: (i) => protocol.roundTrip(i as number) },
      { items: indices, fn: (i) => tcpFloor.roundTrip(i as number) },
      { items: indices, fn: (i) => libp2pFloor.roundTrip(i as number) },
      { items: indices, fn: (i) => batchedFloor.roundTrip(i as number) },
    ]);
    rows.set('peerSameLoop', peerSameLoop!);
    rows.set('protocol', protocolRow!);
    rows.set('tcpEcho', tcpRow!);
    rows.set('libp2pEcho', libp2pRow!);
    rows.set('libp2pEchoBatched', batchedRow!);
    upstreamDuringPeerHits.push(fake.stats.requests - before);
    expectNoUpstream(upstreamDuringPeerHits);
    rows.set('memory', await measure(held, async (repo) => expectSource(await get(asker!, repo), 'memory')));
    // A key the owner does not hold yet: the owner makes the upstream request and answers (a fleet miss).
    rows.set('peerMiss', await measure(notHeld, async (repo) => expectSource(await get(asker!, repo), 'peer')));

    await Promise.all(open.splice(0).map((c) => c.close()));

    // 2. The owner in a child process: the asker's event loop does only the asker's work.
    const member = startMember({
      CACHE_DIR: temp.make(), GITHUB_API_URL: fake.url, CACHE_LISTEN_PORT: '0', CACHE_P2P_SHARED_SECRET: SECRET, CACHE_BOOTSTRAP_PEERS: '',
      CACHE_MAX_ENTRIES: String(LATENCY_MAX_ENTRIES),
    });
    try {
      const ready = await member.ready;
      const remoteAsker = await askerOfMember(fake.url, temp, member, LATENCY_MAX_ENTRIES);
      open.push(remoteAsker);
      const childIds = [(await p2pOf(remoteAsker)).peerId, ready.p2p.peerId];
      const childOwned = ownedBy(childIds[1]!, childIds);
      const childHeld = childOwned.slice(0, LATENCY_KEYS);
      const childWarmUp = childOwned.slice(LATENCY_KEYS, LATENCY_KEYS + WARM_UP_KEYS);
      await pool([...childHeld, ...childWarmUp], 20, async (repo) => {
        const reply = await member.request(`GET /repos/${OWNER}/${repo}`, TOKEN);
        if (reply.source !== 'origin') throw new Error(`child fill: expected origin for ${repo}, got ${String(reply.source ?? reply.message)}`);
      });
      for (const repo of childWarmUp) expectSource(await get(remoteAsker, repo), 'peer'); // the child's serving path, cold until now
      // The libp2p echo with its server in a child process too, as shipped and as the fleet runs it, timed in
      // alternating blocks with these peer hits: both sides of each row wake another process, as a peer hit does.
      const childFloor = await libp2pEcho(frameBytes.request, frameBytes.reply, false, true);
      floors.push(childFloor);
      const childBatchedFloor = await libp2pEcho(frameBytes.request, frameBytes.reply, true, true);
      floors.push(childBatchedFloor);
      for (const floor of [childFloor, childBatchedFloor]) for (const i of indices.slice(0, WARM_UP_KEYS)) await floor.roundTrip(i);
      before = fake.stats.requests;
      const [peerChild, childEchoRow, childBatchedRow] = await measureAlternating<string | number>([
        { items: childHeld, fn: async (repo) => expectSource(await get(remoteAsker, repo as string), 'peer'), pid: member.pid },
        { items: indices, fn: (i) => childFloor.roundTrip(i as number), pid: childFloor.serverPid },
        { items: indices, fn: (i) => childBatchedFloor.roundTrip(i as number), pid: childBatchedFloor.serverPid },
      ]);
      rows.set('peerChild', peerChild!);
      rows.set('libp2pEchoChild', childEchoRow!);
      rows.set('libp2pEchoChildBatched', childBatchedRow!);
      upstreamDuringPeerHits.push(fake.stats.requests - before);
      expectNoUpstream(upstreamDuringPeerHits);
    } finally {
      await Promise.all(open.splice(0).map((c) => c.close()));
      await member.stop();
    }

  } finally {
    await Promise.all([...open.map((c) => c.close()), ...floors.map((f) => f.close())]);
    await fake.close();
    temp.removeAll();
  }

  const us = (ns: number) => fmt(ns / 1000, 0);
  const row = (what: string, name: string, target?: number) => {
    const { ns, cpuUs } = rows.get(name)!;
    const p50 = percentile(ns, 50) / 1e6;
    return [
      what, ns.length, us(percentile(ns, 50)), us(percentile(ns, 90)), us(percentile(ns, 99)), us(mean(ns)),
      cpuUs === undefined ? 'n/a' : fmt(cpuUs, 0),
      target === undefined ? '—' : `p50 < ${target} ms: ${p50 < target ? 'met' : '**missed**'}`,
    ];
  };
  const sameLoopP50 = percentile(rows.get('peerSameLoop')!.ns, 50) / 1e6;
  const childP50 = percentile(rows.get('peerChild')!.ns, 50) / 1e6;
  const cpuOf = (name: string) => rows.get(name)!.cpuUs ?? Number.NaN;
  const over = (p50: number, floor: string) => p50 * 1e6 / percentile(rows.get(floor)!.ns, 50);
  const verdict = (ratio: number) => `target ≤ 1.5x: ${ratio <= 1.5 ? 'met' : '**missed**'}`;
  /** What the code around the echo and the protocol work costs; a difference within the rows' noise can come out below 0. */
  const around = (us: number): string => us >= 0
    ? `the other ${fmt(us, 0)} µs are the framing, request table, serving and cache code around them`
    : `the peer hit took ${fmt(-us, 0)} µs less than the two together, within what these rows move between runs`;
  const md = [
    '## Peer hit latency on loopback',
    '',
    `\`npm run bench -- peer-latency\` · ${machineLine()} · one call at a time, each timed with \`process.hrtime.bigint()\``,
    'around an awaited `cache.request`, on distinct keys. A peer hit is the first request on the asker of a key whose rendezvous',
    'owner is the other node and which the owner already holds fresh (each one checked to answer `source: \'peer\'`; upstream',
    `requests during the two peer-hit rows: ${upstreamDuringPeerHits.join(' and ')}). A memory hit repeats those keys on the asker. Origin rows go to the`,
    `fake GitHub (in this process) with ${ORIGIN_LATENCY_MS} ms injected latency, the two in alternating blocks of 100 calls. Every path is`,
    `warmed up first (${WARM_UP_KEYS} untimed calls each). Bodies: a repository-shaped JSON of ${fmt(bodyBytes / 1024, 1)} KiB, with the headers api.github.com sends (the fake's`,
    'default, as @octokit/fixtures recorded them; the floors below carry entries made of those answers as an owner makes them); both nodes hold the token\'s scope and',
    'proved it to each other, so the owner sends the entry unsealed in its frame (`plain`) and the asker verifies it. Two nodes meshed over libp2p (TCP, noise with the shared secret\'s prologue, yamux: the default `p2p.membership`) on 127.0.0.1. CPU per call is the CPU time of a row over its calls, in',
    'every process involved (`process.cpuUsage`, and `/proc/<pid>/stat` for a child); unlike the latencies, it does not grow',
    `when other work on the machine makes the calls wait. ${load}`,
    '',
    table(['path', 'samples', 'p50 µs', 'p90 µs', 'p99 µs', 'mean µs', 'CPU µs per call', 'target'], [
      row('memory hit (asker, repeat)', 'memory'),
      row('**peer hit**, owner in this process (one event loop for both)', 'peerSameLoop', 1),
      row('**peer hit**, owner in a child process', 'peerChild', 1),
      row('peer miss: the owner fetches from origin, then answers', 'peerMiss'),
      row(`origin, cache with P2P off (${ORIGIN_LATENCY_MS} ms injected)`, 'originPlain'),
      row(`origin, P2P node that owns the key itself (${ORIGIN_LATENCY_MS} ms injected)`, 'originOwner'),
    ]),
    '',
    `What a peer hit stands on: its two frames (a ${frameBytes.request} B \`get\`, a ${frameBytes.reply} B \`entry\`) echoed over one long-lived stream, and the`,
    'protocol\'s own work on them without any I/O (owner: decode the get, check its proof, encode the entry; asker: pick the',
    'owner, prove the scope, encode, decode and verify the entry). The first four rows, both echo ends in this process, are timed',
    'in alternating blocks of 100 calls with the peer hits whose owner is in this process; the last two, the echo\'s server host in a',
    'child process (bench/libp2p-echo-server.ts, built with the same options), with the peer hits whose owner is in a child process,',
    'so that each floor sees the same machine, and the same number of processes waking each other, as the peer hit beside it. CPU per',
    'call of those two counts both processes.',
    '',
    table(['floor', 'samples', 'p50 µs', 'p90 µs', 'p99 µs', 'mean µs', 'CPU µs per call'], [
      row('protocol work alone (crypto, CBOR; no I/O)', 'protocol').slice(0, -1),
      row('echo over raw TCP (`net`, no delay)', 'tcpEcho').slice(0, -1),
      row('echo over libp2p (TCP + pnet + noise + yamux as shipped, `lpStream`)', 'libp2pEcho').slice(0, -1),
      row('as the fleet runs it: no pnet, the shared secret\'s prologue in noise\'s handshake (fleet-keys.ts), window updates batched (frame-channel.ts), noise via fleetNoise (noise-decoder.ts) with libsodium\'s ChaCha20-Poly1305 (noise-crypto.ts)', 'libp2pEchoBatched').slice(0, -1),
      row('echo over libp2p, server in a child process (as shipped)', 'libp2pEchoChild').slice(0, -1),
      row('echo over libp2p, server in a child process, as the fleet runs it (no pnet, the prologue, window updates batched, fleetNoise, libsodium ChaCha20-Poly1305)', 'libp2pEchoChildBatched').slice(0, -1),
    ]),
    '',
    `Peer hit p50 (owner in a child process) over the libp2p echo's with its server in a child process: ${fmt(over(childP50, 'libp2pEchoChild'), 2)}x (${verdict(over(childP50, 'libp2pEchoChild'))});`,
    `over that echo as the fleet runs it: ${fmt(over(childP50, 'libp2pEchoChildBatched'), 2)}x.`,
    `Peer hit p50 (owner in this process) over the libp2p echo's in this process: ${fmt(over(sameLoopP50, 'libp2pEcho'), 2)}x (${verdict(over(sameLoopP50, 'libp2pEcho'))});`,
    `over that echo as the fleet runs it: ${fmt(over(sameLoopP50, 'libp2pEchoBatched'), 2)}x.`,
    '',
    `Of a peer hit's ${fmt(cpuOf('peerSameLoop'), 0)} µs of CPU, the libp2p echo of its frames as the fleet runs it accounts for ${fmt(cpuOf('libp2pEchoBatched'), 0)} µs`,
    `(as shipped: ${fmt(cpuOf('libp2pEcho'), 0)} µs) and the protocol work for ${fmt(cpuOf('protocol'), 0)} µs; ${around(cpuOf('peerSameLoop') - cpuOf('libp2pEchoBatched') - cpuOf('protocol'))}.`,
    `With the owner in a child process, of the ${fmt(cpuOf('peerChild'), 0)} µs (both processes), the echo with its server in a child, as the fleet runs it,`,
    `accounts for ${fmt(cpuOf('libp2pEchoChildBatched'), 0)} µs (as shipped: ${fmt(cpuOf('libp2pEchoChild'), 0)} µs) and the protocol work for ${fmt(cpuOf('protocol'), 0)} µs;`,
    `${around(cpuOf('peerChild') - cpuOf('libp2pEchoChildBatched') - cpuOf('protocol'))}.`,
    `This run: peer hit p50 ${fmt(sameLoopP50 * 1000, 0)} µs with the owner in this process (${sameLoopP50 < 1 ? 'met' : '**missed**'}),`,
    `${fmt(childP50 * 1000, 0)} µs with the owner in a child process (${childP50 < 1 ? 'met' : '**missed**'}).`,
  ].join('\n');
  writeSection('peer-latency', md);
  return md;
}

/** Times `fn` once per item; CPU per call covers this process and, when given, the child `pid`. */
async function measure<T>(items: readonly T[], fn: (item: T) => unknown, pid?: number): Promise<Measured> {
  const ns: number[] = [];
  const childBefore = pid === undefined ? 0 : processCpuUs(pid);
  const cpu = process.cpuUsage();
  await timeEach(items, ns, fn);
  const used = process.cpuUsage(cpu);
  const child = pid === undefined ? 0 : (processCpuUs(pid) ?? Number.NaN) - (childBefore ?? Number.NaN);
  const cpuUs = (used.user + used.system + child) / items.length;
  return { ns, cpuUs: Number.isFinite(cpuUs) ? cpuUs : undefined };
}

/**
 * Like `measure` for several rows at once, in alternating blocks of `block` calls until every row is done; a row's
 * CPU covers this process and, when given, its child `pid` during that row's blocks only.
 */
async function measureAlternating<T>(runs: Array<{ items: readonly T[]; fn: (item: T) => unknown; pid?: number | undefined }>, block = 100): Promise<Measured[]> {
  const out = runs.map(() => ({ ns: [] as number[], cpu: 0 }));
  for (let from = 0; runs.some((r) => from < r.items.length); from += block) {
    for (const [i, run] of runs.entries()) {
      const items = run.items.slice(from, from + block);
      if (items.length === 0) continue;
      const childBefore = run.pid === undefined ? 0 : processCpuUs(run.pid) ?? Number.NaN;
      const cpu = process.cpuUsage();
      await timeEach(items, out[i]!.ns, run.fn);
      const used = process.cpuUsage(cpu);
      const child = run.pid === undefined ? 0 : (processCpuUs(run.pid) ?? Number.NaN) - childBefore;
      out[i]!.cpu += used.user + used.system + child;
    }
  }
  return out.map(({ ns, cpu }) => ({ ns, cpuUs: Number.isFinite(cpu) ? cpu / ns.length : undefined }));
}

/**
 * CPU time of another process in µs, or undefined where /proc is missing: its threads' on-CPU nanoseconds from
 * /proc/<pid>/task/<tid>/schedstat (a block of 200 calls at 1 in flight lasts ~60 ms, and /proc/<pid>/stat counts in
 * 10 ms ticks), else /proc/<pid>/stat's ticks where schedstat is missing. Threads that ended between two readings
 * leave their time out: V8's and libuv's workers live as long as the process.
 */
export function processCpuUs(pid: number): number | undefined {
  const scheduled = threadsOnCpuUs(pid);
  if (scheduled !== undefined) return scheduled;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000; // utime, stime (fields 14 and 15 of the line)
  } catch {
    return undefined;
  }
}

/** Every thread's on-CPU time of process `pid` in µs, from Linux's schedstat; undefined where it is missing. */
function threadsOnCpuUs(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += schedstat(`/proc/${pid}/task/${tid}/schedstat`)[0]!;
      } catch {
        // the thread ended
      }
    }
    return Number.isFinite(ns) ? ns / 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How long the main thread (the event loop) of process `pid` (or 'self') has been runnable but waiting for a CPU,
 * in µs, from Linux's schedstat; NaN where it is missing.
 */
export function mainThreadWaitUs(pid: number | 'self'): number {
  try {
    return schedstat(`/proc/${pid}/schedstat`)[1]! / 1000;
  } catch {
    return Number.NaN;
  }
}

/** Something timed call by call beside the peer hits: one round trip (or one unit of work) per call. */
interface Floor {
  roundTrip(i: number): Promise<void> | void;
  close(): Promise<void>;
}

/**
 * The protocol's CPU work of one peer hit, without I/O: the asker picks the owner and proves the scope, both
 * sides encode and decode the frames, the owner checks the proof and answers, the asker verifies the entry. Between
 * two members that proved the scope to each other (as here) the get asks for the entry unsealed (`plain`), and its
 * headers go as one stream carries them (header-table.ts): the pairs that recur as indexes once defined, so the
 * reply frame (and the echoes' reply, sized from it) weighs what a peer hit's does on a stream in use.
 */
async function protocolWork(githubApiUrl: string, repos: readonly string[]): Promise<Floor & { frames: { request: number; reply: number } }> {
  const entryKey = entryKeyOf(TOKEN);
  const proofKey = proofKeyOf(entryKey);
  const challenge = new Uint8Array(randomBytes(CHALLENGE_BYTES));
  const peers = ['12D3KooWAskerAskerAskerAskerAskerAskerAskerAskerAsk', '12D3KooWOwnerOwnerOwnerOwnerOwnerOwnerOwnerOwnerOwn'];
  // Each entry as an owner makes it (the cache's own entryOf) of the fake GitHub's answer for the repository, with
  // the headers api.github.com sends (the fake's default), so that the frames weigh what a peer hit's do.
  const entries: Array<{ key: string; entry: CacheEntry }> = [];
  await pool(repos.map((repo, i) => ({ repo, i })), 16, async ({ repo, i }) => {
    const response = await fetch(`${githubApiUrl}/repos/${OWNER}/${repo}`, { headers: { accept: DEFAULT_ACCEPT, authorization: `token ${TOKEN}` } });
    const body = Buffer.from(await response.arrayBuffer());
    if (response.status !== 200) throw new Error(`protocol work: the fake GitHub answered ${response.status} for ${repo}`);
    entries[i] = { key: keyOf(githubApiUrl, repo), entry: entryOf({ status: response.status, headers: Object.fromEntries(response.headers), body }, Date.now(), 60) };
  });
  const parties = { prover: peers[0]!, verifier: peers[1]! };
  // One stream's header tables, as the owner's serving side and the asker's client side keep them: after the first
  // entry the pairs that recur go as indexes, and the asker resolves each entry's headers as cache-protocol.ts does.
  const written = new HeaderTableWriter();
  const read = new HeaderTableReader();
  const roundTrip = (id: number): { request: number; reply: number } => {
    const { key, entry } = entries[id % entries.length]!;
    rendezvousOwner(key, peers);
    parseRequestKey(key);
    const get = encodeFrame({ type: 'get', id, key, plain: 1, proof: getProof(proofKey, challenge, id, key, parties) });
    const asked = decodeFrame(get);
    if (asked.type !== 'get' || !verifyGetProof(proofKey, challenge, asked.id, asked.key, parties, asked.proof)) throw new Error('protocol work: bad proof');
    parseRequestKey(asked.key);
    const reply = encodeFrame({ type: 'entry', id, payload: entryPayload(entry, asked.key, written) });
    const answered = decodeFrame(reply);
    if (answered.type !== 'entry' || !('payload' in answered)) throw new Error('protocol work: not an unsealed entry');
    read.resolvePayload(answered.payload);
    openPlainEntry(answered.payload, key, { maxEntryTtlSeconds: 3_600 });
    return { request: get.byteLength, reply: reply.byteLength };
  };
  // The stream's first entry defines the recurring pairs; the second names them by index, as every later one does:
  // the frames the echoes carry are that second one's size, of the last key (a name and an id as long as most keys').
  roundTrip(entries.length - 2);
  const frames = roundTrip(entries.length - 1);
  return { roundTrip: (id) => void roundTrip(id), frames, close: async () => undefined };
}

/** Round trips of `requestBytes` out and `replyBytes` back over one loopback TCP connection (Nagle off). */
async function tcpEcho(requestBytes: number, replyBytes: number): Promise<Floor> {
  const reply = Buffer.alloc(replyBytes, 7);
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let pending = 0;
    socket.on('data', (chunk) => {
      pending += chunk.length;
      while (pending >= requestBytes) {
        pending -= requestBytes;
        socket.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  let received = 0;
  let waiting: (() => void) | undefined;
  socket.on('data', (chunk) => {
    received += chunk.length;
    if (received >= replyBytes && waiting !== undefined) {
      received -= replyBytes;
      const done = waiting;
      waiting = undefined;
      done();
    }
  });
  const request = Buffer.alloc(requestBytes, 1);
  return {
    roundTrip: () => new Promise<void>((resolve) => {
      waiting = resolve;
      socket.write(request);
    }),
    close: async () => {
      socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * The same round trips over two libp2p hosts, one long-lived stream, the server host in this process or
 * (`serverInChild`) in a child process; `asFleet`: built as the fleet's hosts run by default (AS_THE_FLEET: TCP,
 * noise with the shared secret's prologue through fleetNoise and libsodium's ChaCha20-Poly1305, yamux with its
 * window updates batched as FrameChannel batches the fleet's); otherwise libp2p as shipped (TCP, pnet, noise, yamux).
 */
function libp2pEcho(requestBytes: number, replyBytes: number, asFleet: boolean, serverInChild = false): Promise<Floor & { serverPid?: number }> {
  return libp2pEchoPair({ requestBytes, replyBytes, ...(asFleet ? AS_THE_FLEET : {}), serverInChild });
}

// ---------------------------------------------------------------- fleet ratio

const FLEET_REQUESTS = 3_000;
const FLEET_RESOURCES = 300;
const FLEET_IN_FLIGHT = 50;
const FLEET_LATENCY_MS = 20;
const FLEET_NODES = 3;
/** Distinct requests of the cold burst (issue 10's case: 200 on every member at once). */
const BURST_KEYS = 200;
const ZIPF_S = 1.0;
/** The seed of `zipf-workload`: the same 3,000-request list. */
const ZIPF_SEED = 20_240_601;

interface Scenario {
  name: string;
  nodes: number;
  p2p: boolean;
  /** Node i runs the list starting at i/nodes of the way through (the same requests, not in lockstep). */
  rotate: boolean;
  /** Every node uses the token once, and the fleet waits until every node proved its scope, before the clock starts. */
  warm: boolean;
  /** Requests in flight per node (default FLEET_IN_FLIGHT). */
  inFlight?: number;
}

interface ScenarioResult extends Scenario {
  upstream: number;
  charged: number;
  maxUpstreamInFlight: number;
  latenciesNs: number[];
  wallNs: number;
  sources: Partial<Record<ResponseSource, number>>;
  apiCallsMade: number;
  peerHits: number;
  p2pTimeouts: number;
  p2pRequestsSent: number;
  p2pServed: number;
  warmupUpstream: number;
}

export async function benchFleetRatio(): Promise<string> {
  const load = loadLine();
  const zipf = zipfSampler(FLEET_RESOURCES, ZIPF_S, mulberry32(ZIPF_SEED));
  const requests = Array.from({ length: FLEET_REQUESTS }, () => `repo-${zipf()}`);
  const distinct = new Set(requests).size;

  const scenarios: Scenario[] = [
    { name: '(a) one node alone', nodes: 1, p2p: false, rotate: false, warm: false },
    { name: '(b) 3-node fleet, cold, same order on every node', nodes: FLEET_NODES, p2p: true, rotate: false, warm: false },
    { name: '(b′) 3-node fleet, cold, each node starts a third further into the list', nodes: FLEET_NODES, p2p: true, rotate: true, warm: false },
    { name: '(w) 3-node fleet, warm, same order on every node', nodes: FLEET_NODES, p2p: true, rotate: false, warm: true },
    { name: '(w′) 3-node fleet, warm, each node starts a third further into the list', nodes: FLEET_NODES, p2p: true, rotate: true, warm: true },
    { name: '(c) 3 independent caches (P2P off)', nodes: FLEET_NODES, p2p: false, rotate: false, warm: false },
  ];
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) results.push(await runScenario(scenario, requests));
  // The cold burst of issue 10: the same BURST_KEYS distinct requests issued all at once on every node.
  const burst = Array.from({ length: BURST_KEYS }, (_, i) => `repo-${i}`);
  const burstRows: ScenarioResult[] = [];
  for (const scenario of [
    { name: '(a) one node alone', nodes: 1, p2p: false, rotate: false, warm: false, inFlight: BURST_KEYS },
    { name: '(b) 3-node fleet, cold', nodes: FLEET_NODES, p2p: true, rotate: false, warm: false, inFlight: BURST_KEYS },
    { name: '(c) 3 independent caches (P2P off)', nodes: FLEET_NODES, p2p: false, rotate: false, warm: false, inFlight: BURST_KEYS },
  ]) burstRows.push(await runScenario(scenario, burst));

  const base = results[0]!.upstream;
  const ms = (ns: number, digits = 1) => fmt(ns / 1e6, digits);
  const rows = results.map((r) => [
    r.name,
    r.nodes * FLEET_REQUESTS,
    r.upstream,
    `${fmt(r.upstream / base, 2)}x`,
    r.charged,
    r.maxUpstreamInFlight,
    ms(percentile(r.latenciesNs, 50), 3),
    ms(percentile(r.latenciesNs, 99)),
    ms(r.wallNs, 0),
  ]);
  const sourceRows = results.map((r) => [
    r.name,
    ...(['memory', 'peer', 'origin', 'coalesced', 'revalidated', 'stale'] as const).map((s) => r.sources[s] ?? 0),
    r.apiCallsMade,
    r.p2p ? r.p2pRequestsSent : '—',
    r.p2p ? r.p2pServed : '—',
    r.p2p ? r.p2pTimeouts : '—',
  ]);
  const fleet = results.filter((r) => r.p2p);
  const independent = results.find((r) => !r.p2p && r.nodes > 1)!;
  const burstFleet = burstRows.find((r) => r.p2p)!;
  const met = fleet.every((r) => r.upstream / base <= 1.1) && burstFleet.upstream <= BURST_KEYS * 1.1;
  const cold = fleet.filter((r) => !r.warm);
  const warm = fleet.filter((r) => r.warm);
  const md = [
    '## Fleet ratio: upstream requests of a 3-node fleet over one node, cold and warm',
    '',
    `\`npm run bench -- fleet-ratio\` · ${machineLine()} · the \`zipf-workload\` list: ${FLEET_REQUESTS.toLocaleString('en-US')} GETs of \`${ROUTE}\`,`,
    `Zipf (s = ${ZIPF_S.toFixed(1)}, seeded) over ${FLEET_RESOURCES} resources (${distinct} distinct touched), one token, ${FLEET_LATENCY_MS} ms latency injected by the fake`,
    `GitHub (a fresh fake per row). Every node runs the whole list with ${FLEET_IN_FLIGHT} async workers, all nodes at once; fleet nodes`,
    'are meshed over libp2p on 127.0.0.1 (every node speaking the protocol with every other) before the clock starts. All nodes and',
    'the fake share this process (one event loop). Cold rows: no warm-up, no node has used the token, so no node has claimed its',
    'scope: the first request of each node is part of the run. Warm rows (w, w′): each node first makes one request with the token',
    'and the run starts once every node proved the scope to the others; the fake\'s counters are reset after it, so upstream',
    `requests and rate-limit units count the workload only. Latencies are per request over all nodes. ${load}`,
    '',
    table(['run', 'requests', 'upstream requests', 'vs (a)', 'rate-limit units', 'max upstream in flight', 'p50 ms', 'p99 ms', 'wall ms'], rows),
    '',
    'Where the answers came from (`source` of each response, all nodes), and the P2P counters (`getStats().p2p`, summed):',
    '',
    table(['run', 'memory', 'peer', 'origin', 'coalesced', 'revalidated', 'stale', 'apiCallsMade', 'gets sent', 'gets served', 'timeouts'], sourceRows),
    '',
    `Target: the fleet at most 1.1x the upstream requests of one node; independent caches about ${FLEET_NODES}x.`,
    '',
    `### The cold burst: ${BURST_KEYS} distinct requests issued all at once on every node`,
    '',
    `Same setup, no warm-up; each node issues the same ${BURST_KEYS} GETs (one per resource) at once. Target: at most 1.1x the distinct`,
    `resources (${Math.floor(BURST_KEYS * 1.1)} upstream requests).`,
    '',
    table(['run', 'requests', 'upstream requests', 'vs distinct', 'peer answers', 'gets sent', 'timeouts', 'p99 ms', 'wall ms'], burstRows.map((r) => [
      r.name, r.nodes * BURST_KEYS, r.upstream, `${fmt(r.upstream / BURST_KEYS, 2)}x`, r.sources.peer ?? 0,
      r.p2p ? r.p2pRequestsSent : '—', r.p2p ? r.p2pTimeouts : '—', ms(percentile(r.latenciesNs, 99)), ms(r.wallNs, 0),
    ])),
    '',
    `This run: ${met ? 'met' : '**missed**'} (cold ${cold.map((r) => `${fmt(r.upstream / base, 2)}x`).join(', ')}; warm ${warm.map((r) => `${fmt(r.upstream / base, 2)}x`).join(', ')}); independent caches ${fmt(independent.upstream / base, 2)}x; cold burst ${fmt(burstFleet.upstream / BURST_KEYS, 2)}x.`,
  ].join('\n');
  writeSection('fleet-ratio', md);
  return md;
}

async function runScenario(scenario: Scenario, requests: readonly string[]): Promise<ScenarioResult> {
  const temp = new TempDirs(TEMP_PREFIX);
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } } });
  let nodes: GitHubAPICache[] = [];
  try {
    fake.setResource('/rate_limit', { resources: {} });
    for (let i = 0; i < FLEET_RESOURCES; i++) fake.setResource(`/repos/${OWNER}/repo-${i}`, repoBody(OWNER, `repo-${i}`, i));
    nodes = scenario.p2p
      ? await mesh(fake.url, scenario.nodes, temp)
      : await Promise.all(Array.from({ length: scenario.nodes }, () => GitHubAPICache.create({ persistence: 'off', cacheDir: temp.make(), githubApiUrl: fake.url })));
    if (scenario.warm) await shareScope(nodes);
    const warmupUpstream = fake.stats.requests;
    fake.resetStats();
    fake.setLatency(FLEET_LATENCY_MS);

    const latenciesNs: number[] = [];
    const sources: Partial<Record<ResponseSource, number>> = {};
    const start = process.hrtime.bigint();
    await Promise.all(nodes.map((cache, i) => {
      const offset = scenario.rotate ? Math.floor((i * requests.length) / nodes.length) : 0;
      const list = [...requests.slice(offset), ...requests.slice(0, offset)];
      return pool(list, scenario.inFlight ?? FLEET_IN_FLIGHT, async (repo) => {
        const t = process.hrtime.bigint();
        const response = await cache.request(ROUTE, { owner: OWNER, repo }, { token: TOKEN });
        latenciesNs.push(Number(process.hrtime.bigint() - t));
        sources[response.source] = (sources[response.source] ?? 0) + 1;
      });
    }));
    const wallNs = Number(process.hrtime.bigint() - start);
    const upstream = fake.stats;
    const stats = await Promise.all(nodes.map((c) => c.getStats()));
    const sum = (f: (p: PeerNetworkStats) => number) => stats.reduce((acc, s) => acc + (s.p2p === undefined ? 0 : f(s.p2p)), 0);
    return {
      ...scenario,
      upstream: upstream.requests,
      charged: upstream.charged,
      maxUpstreamInFlight: upstream.maxConcurrent,
      latenciesNs,
      wallNs,
      sources,
      // A warm row's warm-up request is counted in apiCallsMade; the workload's share is what the fake saw.
      apiCallsMade: stats.reduce((acc, s) => acc + s.apiCallsMade, 0) - warmupUpstream,
      peerHits: stats.reduce((acc, s) => acc + s.peerHits, 0),
      p2pTimeouts: sum((p) => p.timeouts),
      p2pRequestsSent: sum((p) => p.requestsSent),
      p2pServed: sum((p) => p.requestsServed),
      warmupUpstream,
    };
  } finally {
    await Promise.all(nodes.map((c) => c.close()));
    await fake.close();
    temp.removeAll();
  }
}

// ---------------------------------------------------------------- fleet helpers

export async function node(githubApiUrl: string, temp: TempDirs, bootstrapPeers: string[] = [], maxEntries?: number,
  persistence: 'auto' | 'off' = 'off'): Promise<GitHubAPICache> {
  const cache = await GitHubAPICache.create({
    persistence,
    ...(maxEntries !== undefined ? { maxEntries } : {}),
    cacheDir: temp.make(),
    githubApiUrl,
    p2p: { enabled: true, sharedSecret: SECRET, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers },
  });
  await cache.p2pReady(); // create() resolves before the P2P host listens
  return cache;
}

export async function p2pOf(cache: GitHubAPICache): Promise<PeerNetworkStats> {
  return (await cache.getStats()).p2p!;
}

/** n caches with P2P on, the others bootstrapped to the first; resolves once every node speaks the protocol with all the others. */
async function mesh(githubApiUrl: string, n: number, temp: TempDirs, maxEntries?: number): Promise<GitHubAPICache[]> {
  const first = await node(githubApiUrl, temp, [], maxEntries);
  const addr = (await p2pOf(first)).listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
  const nodes = [first, ...(await Promise.all(Array.from({ length: n - 1 }, () => node(githubApiUrl, temp, [addr], maxEntries))))];
  await waitUntil(async () => (await Promise.all(nodes.map(p2pOf))).every((s) => s.connectedPeers >= n - 1 && s.peers.length >= n - 1), 'a full mesh');
  return nodes;
}

/** Each node uses the token once (announcing its scope); resolves once every peer proved it holds it. */
export async function shareScope(nodes: GitHubAPICache[]): Promise<void> {
  await Promise.all(nodes.map((c) => c.request('GET /rate_limit', {}, { token: TOKEN })));
  await waitUntil(async () => (await Promise.all(nodes.map(p2pOf)))
    .every((s) => s.peers.length >= nodes.length - 1 && s.peers.every((p) => p.scopes >= 2)), 'scope claims');
}

/**
 * A cache in this process bootstrapped to a member in a child process (startMember), once both are connected
 * and each has proved the token's scope to the other (both used it once).
 */
export async function askerOfMember(githubApiUrl: string, temp: TempDirs, member: ReturnType<typeof startMember>, maxEntries: number,
  persistence: 'auto' | 'off' = 'off'): Promise<GitHubAPICache> {
  const ready = await member.ready;
  const childAddr = ready.p2p.listenAddrs.find((a) => a.includes('/127.0.0.1/'))!;
  const asker = await node(githubApiUrl, temp, [childAddr], maxEntries, persistence);
  await waitUntil(async () => (await p2pOf(asker)).connectedPeers >= 1 && (await member.stats()).p2p.connectedPeers >= 1, 'the child connected');
  await Promise.all([asker.request('GET /rate_limit', {}, { token: TOKEN }), member.request('GET /rate_limit', TOKEN)]);
  await waitUntil(async () => {
    const [mine, theirs] = [await p2pOf(asker), (await member.stats()).p2p];
    return [mine, theirs].every((s) => s.peers.length >= 1 && s.peers.every((p) => p.scopes >= 2));
  }, 'the child and the asker sharing the scope');
  return asker;
}

/** Peers answer over IPC or libp2p: poll every 20 ms, for up to 10 s. */
export function waitUntil(condition: () => Promise<boolean>, what: string): Promise<number> {
  return waitFor(condition, what, 10_000, 20);
}

/** The cache key the asker computes for `repo` (the same formula the fleet spec uses to find an owner). */
export function keyOf(githubApiUrl: string, repo: string): string {
  return formatRequestKey({ url: normalizeUrl(`${githubApiUrl}/repos/${OWNER}/${repo}`), method: 'GET', scopeId: scopeIdOf(TOKEN), accept: DEFAULT_ACCEPT });
}

interface MemberReply {
  type: string;
  id?: number;
  source?: ResponseSource;
  message?: string;
  stats?: { p2p: PeerNetworkStats };
}

/** A fleet member in a child process (support/fleet-node.ts), driven over IPC. */
export function startMember(env: Record<string, string>) {
  // A deployed member: started with the service's Node flags (bin/node-flags.ts).
  const child = fork(MEMBER_SCRIPT, [], {
    env: { ...process.env, ...env }, execArgv: [...process.execArgv, ...SERVICE_NODE_FLAGS], stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const waiting = new Map<number, (reply: MemberReply) => void>();
  let nextId = 0;
  let onReady: ((reply: MemberReply & { p2p: PeerNetworkStats }) => void) | undefined;
  let onFailed: ((error: Error) => void) | undefined;
  const ready = new Promise<MemberReply & { p2p: PeerNetworkStats }>((resolve, reject) => {
    onReady = resolve;
    onFailed = reject;
  });
  child.on('message', (message: MemberReply & { p2p: PeerNetworkStats }) => {
    if (message.type === 'ready') onReady?.(message);
    else if (message.type === 'failed') onFailed?.(new Error(`fleet member failed: ${message.message}`));
    else if (message.id !== undefined) {
      waiting.get(message.id)?.(message);
      waiting.delete(message.id);
    }
  });
  child.once('exit', (code) => onFailed?.(new Error(`fleet member exited (${code})`)));
  const ask = (message: object): Promise<MemberReply> => {
    const id = ++nextId;
    return new Promise((resolve) => {
      waiting.set(id, resolve);
      child.send({ ...message, id });
    });
  };
  return {
    pid: child.pid!,
    ready,
    request: (route: string, token: string) => ask({ type: 'request', route, token }),
    stats: async () => (await ask({ type: 'stats' })).stats!,
    /** Starts a CPU profile of the member; `stopProfile` writes it to `file`. */
    startProfile: async () => {
      await ask({ type: 'profile' });
    },
    stopProfile: async (file: string) => {
      await ask({ type: 'profile', file });
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.connected) child.send({ type: 'close' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------- helpers

/** A peer hit is answered from the owner's memory: any upstream request means the row measured something else. */
function expectNoUpstream(counts: number[]): void {
  if (counts.some((n) => n !== 0)) throw new Error(`upstream requests during peer hits: ${counts.join(', ')} (the owner no longer held its keys)`);
}

