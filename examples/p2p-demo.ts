/**
 * `npm run demo`: the whole story, offline.
 *
 * A fake GitHub on loopback (examples/demo-github.ts: 20 ms latency, 300 repositories, one token), three
 * cache nodes as separate processes (examples/demo-node.ts) sharing over libp2p, and 50 concurrent clients in
 * each node: 1,000 requests per node, Zipf-distributed over the repositories, half through getGlobalCache()
 * and half through an Inversify container. All three nodes are given the same fixed port P: exactly one binds
 * it, the others fall back to ephemeral ports and dial it. Then an idle revisit: every clock moves 10 minutes
 * on, the entries expire, and the most popular repositories are asked for again: GitHub answers 304s, which
 * cost nothing.
 *
 * At the end a table per process (instances created, P2P hosts, port bind, requests served, upstream
 * requests caused, rate-limit units saved, where answers came from) and totals (upstream requests against
 * requests served and distinct resources; rate-limit units spent against an uncached client). It exits 1 if
 * an invariant breaks:
 *   - one cache instance and one P2P host per process, however many first callers raced for it;
 *   - exactly one process bound P; the others fell back and joined it;
 *   - every request answered, with the right data;
 *   - fleet upstream requests <= 1.1 x distinct resources touched, from a cold start (no node has used the
 *     token before the main phase: no warm-up); 304s only after idle;
 *   - the nodes' own upstream counts agree with what the fake GitHub received;
 *   - the token and the shared secret appear in no output and no file the nodes wrote;
 *   - every node closed cleanly.
 *
 *   node dist/examples/p2p-demo.js [--requests 1000] [--concurrency 50] [--resources 300] [--latency 20]
 *     [--revisit 100] [--idle-minutes 10] [--port P] [--peer-timeout 2000] [--json] [--timeout 120]
 *
 * The nodes use the library's owner timeout (p2p.requestTimeoutMs, 2 s). An owner that is busy (GitHub's
 * latency, its per-scope cap) sends `working` frames, so askers keep waiting for it instead of fetching the
 * same key themselves; the "peer timeouts" column shows any owner that went silent.
 *
 * Progress goes to stderr; the report (or with --json one JSON line) to stdout. The token and the shared
 * secret are generated per run (or taken from DEMO_GITHUB_TOKEN / DEMO_SHARED_SECRET) and reach the nodes
 * through their environment, never their command line.
 *
 * This file is the orchestration and the human report; the pieces live beside it: demo-options.ts (command
 * line), demo-member.ts (a node process over IPC), demo-summary.ts (rows, totals, invariants), and in
 * support/ the seeded workload, the leak scan, text tables, freePort and waitFor.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEFAULTS } from '../index.js';
import { filesContaining } from '../support/leak-scan.js';
import { freePort } from '../support/ports.js';
import { textTable } from '../support/text-table.js';
import { waitFor } from '../support/wait.js';
import { mulberry32, shuffled, zipfIndices } from '../support/workload.js';
import { DemoGitHub } from './demo-github.js';
import { DemoMember, type Reply } from './demo-member.js';
import { parseOptions, USAGE, type DemoOptions } from './demo-options.js';
import { SOURCES, type NodeMessage, type PhaseResult, type PhaseWork } from './demo-protocol.js';
import { summarize, sumSources, type DemoSummary } from './demo-summary.js';

// ---------------------------------------------------------------- output (recorded, so it can be checked for secrets)

const recorded: string[] = [];
/** The run's token and shared secret: no output may contain them. */
let runSecrets: string[] = [];
function out(text: string): void {
  recorded.push(text);
  process.stdout.write(`${text}\n`);
}
function err(text: string): void {
  recorded.push(text);
  process.stderr.write(`${text}\n`);
}

/** Synchronous last-resort cleanup, run on process exit whatever the reason. */
const onExit: Array<() => void> = [];
process.once('exit', () => {
  for (const step of onExit.splice(0)) {
    try {
      step();
    } catch {
      // nothing more can be done at exit
    }
  }
});
// A closed pipe (`node p2p-demo.js | head`) must not kill the demo before it cleans up.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------- workload

const OWNER = 'demo-org';
const REPO_PREFIX = 'repo-';

function repoBody(i: number): Record<string, unknown> {
  const name = `${REPO_PREFIX}${i}`;
  return {
    id: i,
    node_id: `R_demo${i.toString(36)}`,
    name,
    full_name: `${OWNER}/${name}`,
    private: false,
    owner: { login: OWNER, id: 1, type: 'Organization', url: `https://api.github.com/users/${OWNER}` },
    html_url: `https://github.com/${OWNER}/${name}`,
    description: `Repository ${i} of the offline demo. `.repeat(4),
    fork: false,
    url: `https://api.github.com/repos/${OWNER}/${name}`,
    default_branch: 'main',
    stargazers_count: (i * 7919) % 5000,
    forks_count: (i * 104_729) % 300,
    open_issues_count: i % 40,
    topics: ['cache', 'p2p', 'demo'],
    visibility: 'public',
    pushed_at: '2025-01-01T00:00:00Z',
    created_at: '2020-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
  };
}

/** The nodes answer stats over IPC; polling them faster only adds load. */
const POLL_MS = 50;
/** How long each start-up step (a node ready, the mesh, protocol sessions) may take: generous, since a busy machine
 * (a CI runner at load 10–20) can take ten times the ~1 s a quiet one needs. Each step prints its own time. */
const START_LIMIT_MS = 60_000;

// ---------------------------------------------------------------- the report

function humanReport(summary: DemoSummary): string {
  const { totals: t, options: o } = summary;
  const lines: string[] = [];
  lines.push('');
  lines.push(`github-p2p-cache offline demo: ${o.nodes} node processes, fixed P2P port ${o.port}, fake GitHub with ${o.resources} repositories and ${o.latencyMs} ms latency`);
  lines.push(`workload: ${o.requests} requests per node, ${o.concurrency} in flight, Zipf s=${o.zipfExponent}; half through getGlobalCache(), half through container.getAsync()`);
  lines.push(`owner timeout (p2p.requestTimeoutMs): ${o.peerTimeoutMs} ms${o.peerTimeoutMs === DEFAULTS.requestTimeoutMs ? ' (the library default)' : ` (library default ${DEFAULTS.requestTimeoutMs} ms; see --help)`}`);
  lines.push('');
  lines.push('Processes');
  lines.push(textTable(
    ['node', 'pid', 'first callers', 'instances created', 'factory calls', 'P2P hosts', 'port bind', 'peers', 'asked/received', 'served as owner', 'peer timeouts', 'ready in'],
    summary.nodes.map((n) => [
      n.name, String(n.pid), String(n.firstCallers), String(n.instancesCreated), String(n.factoryCalls), String(n.p2pHosts),
      n.port.fellBack ? `fell back to ${n.port.bound}, dialled ${n.port.fixed}` : n.port.bound === n.port.fixed ? `bound ${n.port.fixed}` : `bound ${n.port.bound}?`,
      String(n.connectedPeers), `${n.p2pTraffic.asked}/${n.p2pTraffic.received}`, String(n.p2pTraffic.servedAsOwner), String(n.p2pTraffic.timeouts),
      seconds(n.startedMs),
    ]),
  ));
  lines.push('');
  lines.push('Requests (main phase + idle revisit; upstream = requests this node sent to GitHub, also as owner for its peers)');
  const sourceHeaders = [...SOURCES];
  const totalSources = sumSources(summary.nodes.map((n) => n.sources));
  const rows = summary.nodes.map((n) => [
    n.name, String(n.served), String(n.upstream), String(n.notModified), String(n.charged), String(n.unitsSaved),
    ...sourceHeaders.map((s) => String(n.sources[s])), `${n.mainP50Ms.toFixed(1)}/${n.mainP99Ms.toFixed(1)}`,
  ]);
  const sum = (f: (n: DemoSummary['nodes'][number]) => number) => String(summary.nodes.reduce((a, n) => a + f(n), 0));
  rows.push(['total', sum((n) => n.served), sum((n) => n.upstream), sum((n) => n.notModified), sum((n) => n.charged), sum((n) => n.unitsSaved),
    ...sourceHeaders.map((s) => String(totalSources[s])), '']);
  lines.push(textTable(['node', 'served', 'upstream', '304s', 'units spent', 'units saved', ...sourceHeaders, 'main p50/p99 ms'], rows));
  lines.push('  units spent = upstream requests GitHub charged (every one but a 304); units saved = served - spent.');
  lines.push('  disk: every entry is also in SQLite (a temp dir per node); with all entries in memory, disk answers appear after a restart.');
  lines.push('');
  lines.push('Totals');
  const pct = (a: number, b: number) => (b === 0 ? '0' : ((100 * a) / b).toFixed(1));
  lines.push(`  main phase: ${t.mainRequests} requests served over ${t.distinctResources} distinct repositories -> ${t.upstream.main} upstream requests at the fake GitHub` +
    ` (+${t.warmupRequests} before the main phase; cold start, no warm-up); ${o.nodes} unshared caches would need at least ${t.unsharedMinimum}`);
  if (t.revisitRequests > 0) {
    lines.push(`  idle revisit (+${o.idleMinutes} min, every entry expired): ${t.revisitRequests} requests over ${t.distinctRevisited} repositories -> ` +
      `${t.upstream.revisit} upstream requests, ${t.upstream.notModified} answered 304 (free), ${t.rateLimitUnits.revisitCharged} charged`);
  }
  lines.push(`  rate-limit units: ${t.rateLimitUnits.spent} spent vs ${t.rateLimitUnits.uncachedBaseline} for an uncached client (one per request served): ` +
    `${t.rateLimitUnits.saved} saved (${pct(t.rateLimitUnits.saved, t.rateLimitUnits.uncachedBaseline)}%)`);
  lines.push(`  timings: ${Object.entries(summary.timingsMs).map(([k, v]) => `${k} ${seconds(v)}`).join(', ')}`);
  lines.push('');
  lines.push('Invariants');
  for (const inv of summary.invariants) lines.push(`  ${inv.ok ? 'OK  ' : 'FAIL'} ${inv.name}: ${inv.detail}`);
  lines.push('');
  lines.push(summary.ok ? `demo: OK (${summary.invariants.length} invariants hold)` : `demo: FAILED (${summary.invariants.filter((i) => !i.ok).length} invariants broke)`);
  return lines.join('\n');
}

// ---------------------------------------------------------------- the run

async function run(options: DemoOptions, cleanup: Array<() => Promise<void> | void>): Promise<DemoSummary> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const mark = (name: string, since: number) => {
    timings[name] = Date.now() - since;
  };
  const token = process.env.DEMO_GITHUB_TOKEN ?? `test_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`;
  const secret = process.env.DEMO_SHARED_SECRET ?? randomBytes(32).toString('hex');
  const secrets = [token, secret];
  runSecrets = secrets;

  // The fake GitHub, in this process (the nodes reach it over loopback HTTP like any origin).
  const repos = Array.from({ length: options.resources }, (_, i) => ({ owner: OWNER, name: `${REPO_PREFIX}${i}`, body: repoBody(i) }));
  const github = await DemoGitHub.start({ tokens: { [token]: 'demo-token' }, repos, latencyMs: options.latencyMs });
  cleanup.push(() => github.close());
  err(`fake GitHub on ${github.url}: ${options.resources} repositories, ${options.latencyMs} ms latency, one token (label demo-token)`);

  const port = options.port ?? (await freePort());
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'github-p2p-cache-demo-'));
  cleanup.push(() => fs.rmSync(tmp, { recursive: true, force: true }));
  // Should this process die without running its cleanup (an uncaught error), the temp dir still goes.
  onExit.push(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // The nodes: forked at once, so they race for the fixed port.
  const script = fileURLToPath(new URL('./demo-node.js', import.meta.url));
  const baseEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CACHE_') && k !== 'GITHUB_API_URL' && !k.startsWith('DEMO_')) baseEnv[k] = v;
  const progressLine = (name: string, m: Reply<'progress'>): void => {
    const pctDone = Math.round((100 * m.done) / Math.max(1, m.total));
    const src = SOURCES.filter((s) => m.sources[s] > 0).map((s) => `${s} ${m.sources[s]}`).join(' · ');
    err(`[${name}] ${m.phase.padEnd(7)} ${String(pctDone).padStart(3)}%  ${String(m.done).padStart(String(m.total).length)}/${m.total}  ${src}${m.errors > 0 ? `  errors ${m.errors}` : ''}`);
  };
  err(`starting ${options.nodes} node processes, all told to listen on 127.0.0.1:${port}`);
  let started = Date.now();
  const members = Array.from({ length: options.nodes }, (_, i) => {
    const name = `node-${i + 1}`;
    const cacheDir = path.join(tmp, name);
    fs.mkdirSync(cacheDir);
    return new DemoMember(name, script, {
      ...baseEnv,
      CACHE_DIR: cacheDir,
      GITHUB_API_URL: github.url,
      CACHE_LISTEN_PORT: String(port),
      CACHE_P2P_SHARED_SECRET: secret,
      DEMO_GITHUB_TOKEN: token,
      DEMO_NODE_NAME: name,
      DEMO_CONCURRENCY: String(options.concurrency),
      DEMO_PEER_TIMEOUT_MS: String(options.peerTimeoutMs),
    }, (m) => progressLine(name, m), err);
  });
  onExit.push(() => {
    for (const m of members) m.kill();
  });
  cleanup.push(async () => {
    // On success they are closed already; on failure they are killed here.
    for (const m of members) m.kill();
    await Promise.all(members.map((m) => m.exited));
  });

  const ready = await Promise.all(members.map((m) => m.next('ready', START_LIMIT_MS)));
  mark('start', started);
  for (const r of ready) {
    const bind = r.p2p === undefined ? 'no P2P host' : r.p2p.portFallback ? `port ${port} taken: fell back to ${r.p2p.boundPort} and dialled it` : `bound ${r.p2p.boundPort}`;
    err(`[${r.name}] ready in ${seconds(r.startedMs)} (pid ${r.pid}): ${r.firstCallers} concurrent first callers -> ${r.provider.created} instance; ${bind}`);
  }

  started = Date.now();
  const meshMs = await waitFor(async () => (await Promise.all(members.map((m) => m.stats()))).every((s) => (s.stats.p2p?.connectedPeers ?? 0) >= options.nodes - 1),
    'a full mesh', START_LIMIT_MS, POLL_MS);
  err(`full mesh: every node connected to ${options.nodes - 1} peers (${meshMs} ms)`);

  // No warm-up: the main phase is every node's first use of the token (a cold fleet). Only wait until every
  // node speaks the protocol with every other.
  const protocolMs = await waitFor(async () => (await Promise.all(members.map((m) => m.stats()))).every((s) =>
    (s.stats.p2p?.peers.length ?? 0) >= options.nodes - 1), 'protocol sessions', START_LIMIT_MS, POLL_MS);
  mark('mesh', started);
  const warmupRequests = github.stats.requests;
  err(`cold start: every node speaks the protocol with the others (${protocolMs} ms); no node has used the token; ${warmupRequests} requests so far`);
  const before = await Promise.all(members.map((m) => m.stats()));

  // Main phase.
  const plans: PhaseWork[] = members.map((_, i) => ({
    indices: zipfIndices(options.resources, options.zipfExponent, options.requests, 1000 + i),
    owner: OWNER,
    repoPrefix: REPO_PREFIX,
    concurrency: options.concurrency,
  }));
  err(`main phase: ${options.requests} requests per node, ${options.concurrency} in flight`);
  started = Date.now();
  const main = await Promise.all(members.map((m, i) => {
    const done = m.next('done', options.timeoutSeconds * 1000);
    m.child.send({ type: 'run', phase: 'main', work: plans[i]! } satisfies NodeMessage);
    return done.then((d) => d.result);
  }));
  mark('main', started);
  const afterMain = github.stats;

  // Idle revisit: every clock moves on, every entry expires; the most popular repositories are asked for again.
  let revisit: PhaseResult[] | undefined;
  let revisitPlan: number[] = [];
  if (options.revisit > 0) {
    const idleMs = options.idleMinutes * 60_000;
    github.advance(idleMs);
    await Promise.all(members.map((m) => m.ask({ type: 'advance', ms: idleMs }, 'advanced', 10_000)));
    revisitPlan = Array.from({ length: options.revisit }, (_, k) => k);
    err(`idle revisit: clocks moved ${options.idleMinutes} minutes on; each node asks for the ${options.revisit} most popular repositories again`);
    started = Date.now();
    revisit = await Promise.all(members.map((m, i) => {
      const done = m.next('done', options.timeoutSeconds * 1000);
      const indices = shuffled(revisitPlan, mulberry32(2000 + i));
      m.child.send({ type: 'run', phase: 'revisit', work: { indices, owner: OWNER, repoPrefix: REPO_PREFIX, concurrency: options.concurrency } } satisfies NodeMessage);
      return done.then((d) => d.result);
    }));
    mark('revisit', started);
  }
  const afterAll = github.stats;
  const final = await Promise.all(members.map((m) => m.stats()));

  // Close every node (P2P host stopped, SQLite flushed), then look at what they wrote.
  started = Date.now();
  const closed = await Promise.all(members.map((m) => m.close()));
  const exits = await Promise.all(members.map((m) => m.exited));
  mark('close', started);
  const leakedFiles = filesContaining(tmp, secrets).map((f) => path.relative(tmp, f));
  mark('total', t0);

  return summarize({
    options, port, names: members.map((m) => m.name), ready, before, final, main, revisit, plans, revisitPlan, warmupRequests,
    afterMain, afterAll, closed, exits, leakedFiles, secrets, timings,
    printed: [...recorded, ...members.flatMap((m) => m.output)].join('\n'),
  });
}


async function main(): Promise<void> {
  let options: DemoOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const cleanup: Array<() => Promise<void> | void> = [];
  const runCleanup = async (): Promise<void> => {
    for (const step of cleanup.splice(0).reverse()) {
      try {
        await step();
      } catch {
        // keep cleaning up
      }
    }
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    err(`demo: ${signal}: stopping the nodes`);
    void runCleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let watchdog: NodeJS.Timeout | undefined;
  try {
    const summary = await Promise.race([
      run(options, cleanup),
      new Promise<never>((_, reject) => {
        watchdog = setTimeout(() => reject(new Error(`the demo took longer than ${options.timeoutSeconds} s`)), options.timeoutSeconds * 1000);
      }),
    ]);
    clearTimeout(watchdog);
    await runCleanup();
    const report = options.json ? JSON.stringify(summary) : humanReport(summary);
    // The report is built from counters and ids only; check it like everything else before it is printed.
    if (runSecrets.some((s) => report.includes(s))) throw new Error('the report would contain a secret');
    out(report);
    process.exitCode = summary.ok ? 0 : 1;
  } catch (e) {
    clearTimeout(watchdog);
    err(`demo: FAILED: ${(e as Error).message}`);
    await runCleanup();
    if (options.json) out(JSON.stringify({ ok: false, error: (e as Error).message }));
    process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
