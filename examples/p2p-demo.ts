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
 *   - fleet upstream requests <= 1.1 x distinct resources touched (+ the warm-up); 304s only after idle;
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
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULTS, type SingletonProviderStats } from '../index.js';
import { DemoGitHub, type DemoGitHubStats } from './demo-github.js';
import { SOURCES, type NodeMessage, type NodeReply, type PhaseResult, type PhaseWork, type SourceCounts } from './demo-protocol.js';

// ---------------------------------------------------------------- options

export interface DemoOptions {
  nodes: number;
  requests: number;
  concurrency: number;
  resources: number;
  latencyMs: number;
  zipfExponent: number;
  /** Most popular repositories asked for again after the idle time; 0 skips the phase. */
  revisit: number;
  idleMinutes: number;
  /** The fixed P2P port; default a free one. */
  port: number | undefined;
  /** p2p.requestTimeoutMs of the nodes (see --peer-timeout). */
  peerTimeoutMs: number;
  json: boolean;
  timeoutSeconds: number;
}

const USAGE = `usage: node dist/examples/p2p-demo.js [options]
  --requests N       requests per node (default 1000)
  --concurrency N    clients in flight per node (default 50)
  --resources N      repositories at the fake GitHub (default 300)
  --latency MS       fake GitHub latency (default 20)
  --zipf S           Zipf exponent of the popularity of repositories (default 1.0)
  --revisit N        most popular repositories asked for again after the idle time, 0 to skip (default 100)
  --idle-minutes M   how far the clocks move on before the revisit (default 10)
  --port P           the fixed P2P port every node is given (default: a free one)
  --peer-timeout MS  how long a node waits for a key's owner before going upstream itself
                     (p2p.requestTimeoutMs; default 2000, the library's)
  --json             print one JSON line for machines instead of the tables
  --timeout S        give up (and exit 1) after S seconds (default 120)

A busy owner sends 'working' frames while it fetches, so askers keep waiting for it (up to 30 s) instead of
fetching the same key themselves.`;

function parseOptions(argv: string[]): DemoOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      requests: { type: 'string' },
      concurrency: { type: 'string' },
      resources: { type: 'string' },
      latency: { type: 'string' },
      zipf: { type: 'string' },
      revisit: { type: 'string' },
      'idle-minutes': { type: 'string' },
      port: { type: 'string' },
      'peer-timeout': { type: 'string' },
      json: { type: 'boolean' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (value: string | undefined, name: string, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return n;
  };
  const zipf = values.zipf === undefined ? 1 : Number(values.zipf);
  if (!Number.isFinite(zipf) || zipf < 0 || zipf > 5) throw new UsageError(`--zipf must be a number from 0 to 5, got ${JSON.stringify(values.zipf)}`);
  const resources = int(values.resources, 'resources', 300, 1, 100_000);
  return {
    nodes: 3,
    requests: int(values.requests, 'requests', 1000, 1, 1_000_000),
    concurrency: int(values.concurrency, 'concurrency', 50, 1, 10_000),
    resources,
    latencyMs: int(values.latency, 'latency', 20, 0, 10_000),
    zipfExponent: zipf,
    revisit: Math.min(resources, int(values.revisit, 'revisit', 100, 0, 100_000)),
    idleMinutes: int(values['idle-minutes'], 'idle-minutes', 10, 1, 24 * 60),
    port: values.port === undefined ? undefined : int(values.port, 'port', 0, 1, 65_535),
    peerTimeoutMs: int(values['peer-timeout'], 'peer-timeout', 2_000, 100, 120_000),
    json: values.json === true,
    timeoutSeconds: int(values.timeout, 'timeout', 120, 5, 3600),
  };
}

class UsageError extends Error {}

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

/** mulberry32: a small seeded PRNG, so a run's workload is reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` indices from 0..n-1, index k drawn with weight 1/(k+1)^s (index 0 the most popular). */
export function zipfIndices(n: number, s: number, count: number, seed: number): number[] {
  const cdf: number[] = [];
  let sum = 0;
  for (let k = 0; k < n; k++) cdf.push((sum += 1 / (k + 1) ** s));
  const random = rng(seed);
  return Array.from({ length: count }, () => {
    const x = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  });
}

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

// ---------------------------------------------------------------- fleet members

type Reply<T extends NodeReply['type']> = Extract<NodeReply, { type: T }>;

/** One node process and the conversation with it. */
class Member {
  readonly child: ChildProcess;
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: Array<{ type: string; resolve: (m: NodeReply) => void; reject: (e: Error) => void }> = [];
  #failure: Error | undefined;
  #closing = false;

  constructor(readonly name: string, script: string, env: NodeJS.ProcessEnv, onProgress: (m: Reply<'progress'>) => void) {
    this.child = fork(script, [], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        this.output.push(chunk);
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) if (line.trim() !== '') err(`[${name}] ${line}`);
      });
    }
    this.child.on('message', (message: NodeReply) => {
      if (message.type === 'progress') {
        onProgress(message);
        return;
      }
      if (message.type === 'failed') {
        this.#fail(new Error(`${name} failed: ${message.message}`));
        return;
      }
      const i = this.#waiters.findIndex((w) => w.type === message.type);
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(message);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        if (!this.#closing || code !== 0) this.#fail(new Error(`${name} exited unexpectedly (code ${code}, signal ${signal})`));
        resolve({ code, signal });
      });
    });
    this.child.once('error', (e) => this.#fail(new Error(`${name}: ${e.message}`)));
  }

  /** The next reply of this type. */
  next<T extends NodeReply['type']>(type: T, timeoutMs: number): Promise<Reply<T>> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<Reply<T>>((resolve, reject) => {
      const waiter = {
        type,
        resolve: (m: NodeReply) => {
          clearTimeout(timer);
          resolve(m as Reply<T>);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: no '${type}' within ${seconds(timeoutMs)}`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Sends a message and waits for its reply. */
  ask<T extends NodeReply['type']>(message: NodeMessage, reply: T, timeoutMs: number): Promise<Reply<T>> {
    const answer = this.next(reply, timeoutMs);
    this.child.send(message);
    return answer;
  }

  async stats(): Promise<Reply<'stats'>> {
    return this.ask({ type: 'stats' }, 'stats', 10_000);
  }

  /** Asks the node to close its cache and exit; kills it if it does not within 8 s. */
  async close(): Promise<Reply<'closed'> | undefined> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return undefined;
    this.#closing = true;
    try {
      const closed = await this.ask({ type: 'close' }, 'closed', 8_000);
      const timer = setTimeout(() => this.kill(), 5_000);
      await this.exited;
      clearTimeout(timer);
      return closed;
    } catch {
      this.kill();
      await this.exited;
      return undefined;
    }
  }

  kill(): void {
    this.#closing = true;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const w of this.#waiters.splice(0)) w.reject(error);
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${seconds(timeoutMs)} waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - started;
}

/** Every file under `dir` that contains one of `needles` (the SQLite files, the peer identity, anything). */
function filesContaining(dir: string, needles: string[]): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) {
        const bytes = fs.readFileSync(p);
        if (needles.some((n) => bytes.includes(Buffer.from(n, 'utf8')))) found.push(p);
      }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return found;
}

// ---------------------------------------------------------------- the report

interface Invariant {
  name: string;
  ok: boolean;
  detail: string;
}

interface NodeRow {
  name: string;
  pid: number;
  startedMs: number;
  firstCallers: number;
  instancesCreated: number;
  factoryCalls: number;
  distinctInstancesSeen: number;
  p2pHosts: number;
  peerId: string;
  port: { fixed: number; bound: number; fellBack: boolean };
  connectedPeers: number;
  /** The P2P protocol's counters over the whole run: asks sent to owners, entries received, asks served as owner, asks that timed out, data rejected. */
  p2pTraffic: { asked: number; received: number; servedAsOwner: number; timeouts: number; rejected: number };
  served: number;
  upstream: number;
  notModified: number;
  charged: number;
  unitsSaved: number;
  sources: SourceCounts;
  via: PhaseResult['via'];
  errors: number;
  wrong: number;
  main: PhaseResult;
  revisit: PhaseResult | undefined;
  closedCleanly: boolean;
}

export interface DemoSummary {
  ok: boolean;
  invariants: Invariant[];
  options: Omit<DemoOptions, 'json' | 'port'> & { port: number };
  nodes: Array<Omit<NodeRow, 'main' | 'revisit'> & { mainP50Ms: number; mainP99Ms: number; mainMaxMs: number }>;
  totals: {
    requestsServed: number;
    mainRequests: number;
    revisitRequests: number;
    distinctResources: number;
    distinctRevisited: number;
    /** Σ per node of the distinct resources it touched: what three unshared caches would fetch at least. */
    unsharedMinimum: number;
    warmupRequests: number;
    upstream: { main: number; revisit: number; total: number; notModified: number };
    rateLimitUnits: { spent: number; uncachedBaseline: number; saved: number; revisitCharged: number };
    fake: Omit<DemoGitHubStats, 'byPath'> & { distinctPaths: number };
  };
  timingsMs: Record<string, number>;
}

function table(headers: string[], rows: string[][], alignLeft = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function sumSources(list: SourceCounts[]): SourceCounts {
  const total = Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;
  for (const s of list) for (const k of SOURCES) total[k] += s[k];
  return total;
}

function humanReport(summary: DemoSummary): string {
  const { totals: t, options: o } = summary;
  const lines: string[] = [];
  lines.push('');
  lines.push(`github-p2p-cache offline demo: ${o.nodes} node processes, fixed P2P port ${o.port}, fake GitHub with ${o.resources} repositories and ${o.latencyMs} ms latency`);
  lines.push(`workload: ${o.requests} requests per node, ${o.concurrency} in flight, Zipf s=${o.zipfExponent}; half through getGlobalCache(), half through container.getAsync()`);
  lines.push(`owner timeout (p2p.requestTimeoutMs): ${o.peerTimeoutMs} ms${o.peerTimeoutMs === DEFAULTS.requestTimeoutMs ? ' (the library default)' : ` (library default ${DEFAULTS.requestTimeoutMs} ms; see --help)`}`);
  lines.push('');
  lines.push('Processes');
  lines.push(table(
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
  lines.push(table(['node', 'served', 'upstream', '304s', 'units spent', 'units saved', ...sourceHeaders, 'main p50/p99 ms'], rows));
  lines.push('  units spent = upstream requests GitHub charged (every one but a 304); units saved = served - spent.');
  lines.push('  disk: every entry is also in SQLite (a temp dir per node); with all entries in memory, disk answers appear after a restart.');
  lines.push('');
  lines.push('Totals');
  const pct = (a: number, b: number) => (b === 0 ? '0' : ((100 * a) / b).toFixed(1));
  lines.push(`  main phase: ${t.mainRequests} requests served over ${t.distinctResources} distinct repositories -> ${t.upstream.main} upstream requests at the fake GitHub` +
    ` (+${t.warmupRequests} warm-up /rate_limit); ${o.nodes} unshared caches would need at least ${t.unsharedMinimum}`);
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
    return new Member(name, script, {
      ...baseEnv,
      CACHE_DIR: cacheDir,
      GITHUB_API_URL: github.url,
      CACHE_LISTEN_PORT: String(port),
      CACHE_P2P_SHARED_SECRET: secret,
      DEMO_GITHUB_TOKEN: token,
      DEMO_NODE_NAME: name,
      DEMO_CONCURRENCY: String(options.concurrency),
      DEMO_PEER_TIMEOUT_MS: String(options.peerTimeoutMs),
    }, (m) => progressLine(name, m));
  });
  onExit.push(() => {
    for (const m of members) m.kill();
  });
  cleanup.push(async () => {
    // On success they are closed already; on failure they are killed here.
    for (const m of members) m.kill();
    await Promise.all(members.map((m) => m.exited));
  });

  const ready = await Promise.all(members.map((m) => m.next('ready', 30_000)));
  mark('start', started);
  for (const r of ready) {
    const bind = r.p2p === undefined ? 'no P2P host' : r.p2p.portFallback ? `port ${port} taken: fell back to ${r.p2p.boundPort} and dialled it` : `bound ${r.p2p.boundPort}`;
    err(`[${r.name}] ready in ${seconds(r.startedMs)} (pid ${r.pid}): ${r.firstCallers} concurrent first callers -> ${r.provider.created} instance; ${bind}`);
  }

  started = Date.now();
  const meshMs = await waitUntil(async () => (await Promise.all(members.map((m) => m.stats()))).every((s) => (s.stats.p2p?.connectedPeers ?? 0) >= options.nodes - 1),
    'a full mesh', 15_000);
  err(`full mesh: every node connected to ${options.nodes - 1} peers (${meshMs} ms)`);

  // Warm-up: one request per node announces the token's scope; wait until every peer proved it holds it.
  await Promise.all(members.map((m) => m.ask({ type: 'warmup' }, 'warmed', 15_000)));
  const scopeMs = await waitUntil(async () => (await Promise.all(members.map((m) => m.stats()))).every((s) =>
    (s.stats.p2p?.peers.length ?? 0) >= options.nodes - 1 && s.stats.p2p!.peers.every((p) => p.scopes >= 2)), 'scope claims', 15_000);
  mark('mesh+warm-up', started);
  const warmupRequests = github.stats.requests;
  err(`warm-up: ${warmupRequests} requests (GET /rate_limit, free); every peer proved it holds the token's scope (${scopeMs} ms)`);
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
      const shuffled = [...revisitPlan];
      const random = rng(2000 + i);
      for (let k = shuffled.length - 1; k > 0; k--) {
        const j = Math.floor(random() * (k + 1));
        [shuffled[k], shuffled[j]] = [shuffled[j]!, shuffled[k]!];
      }
      m.child.send({ type: 'run', phase: 'revisit', work: { indices: shuffled, owner: OWNER, repoPrefix: REPO_PREFIX, concurrency: options.concurrency } } satisfies NodeMessage);
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

  // ---- rows and invariants
  const rows: NodeRow[] = members.map((m, i) => {
    const r = ready[i]!;
    const f = final[i]!.stats;
    const b = before[i]!.stats;
    const p2p = f.p2p;
    const results = [main[i]!, ...(revisit !== undefined ? [revisit[i]!] : [])];
    const served = results.reduce((a, x) => a + x.answered, 0);
    const upstream = f.apiCallsMade - b.apiCallsMade;
    const notModified = f.notModified - b.notModified;
    const charged = upstream - notModified;
    const provider: SingletonProviderStats = final[i]!.provider;
    return {
      name: m.name,
      pid: r.pid,
      startedMs: r.startedMs,
      firstCallers: r.firstCallers,
      instancesCreated: provider.created,
      factoryCalls: provider.factoryCalls,
      distinctInstancesSeen: final[i]!.distinctInstancesSeen,
      // One host per instance (the cache owns it); the fleet-wide peer-id check below catches a second one.
      p2pHosts: p2p !== undefined ? provider.created : 0,
      peerId: p2p?.peerId ?? '',
      port: { fixed: port, bound: p2p?.boundPort ?? 0, fellBack: p2p?.portFallback ?? false },
      connectedPeers: p2p?.connectedPeers ?? 0,
      p2pTraffic: {
        asked: p2p?.requestsSent ?? 0,
        received: p2p?.entriesReceived ?? 0,
        servedAsOwner: p2p?.requestsServed ?? 0,
        timeouts: p2p?.timeouts ?? 0,
        rejected: Object.values(p2p?.rejected ?? {}).reduce((a, n) => a + n, 0),
      },
      served,
      upstream,
      notModified,
      charged,
      unitsSaved: served - charged,
      sources: sumSources(results.map((x) => x.sources)),
      via: { getGlobalCache: results.reduce((a, x) => a + x.via.getGlobalCache, 0), 'container.getAsync': results.reduce((a, x) => a + x.via['container.getAsync'], 0) },
      errors: results.reduce((a, x) => a + x.errors, 0),
      wrong: results.reduce((a, x) => a + x.wrong, 0),
      main: main[i]!,
      revisit: revisit?.[i],
      closedCleanly: closed[i] !== undefined && closed[i]!.provider.hasInstance === false && exits[i]!.code === 0,
    };
  });

  const distinctMain = new Set(plans.flatMap((p) => p.indices)).size;
  const unsharedMinimum = main.reduce((a, x) => a + x.distinctResources, 0);
  const mainRequests = main.reduce((a, x) => a + x.requests, 0);
  const revisitRequests = revisit?.reduce((a, x) => a + x.requests, 0) ?? 0;
  const upstreamMain = afterMain.requests - warmupRequests;
  const upstreamRevisit = afterAll.requests - afterMain.requests;
  const revisitNotModified = afterAll.notModified - afterMain.notModified;
  const revisitCharged = afterAll.charged - afterMain.charged;
  const served = rows.reduce((a, r) => a + r.served, 0);
  const totalRequests = mainRequests + revisitRequests;
  const nodeUpstream = rows.reduce((a, r) => a + r.upstream, 0);
  const peerIds = new Set(rows.map((r) => r.peerId).filter((id) => id !== ''));
  const binders = rows.filter((r) => !r.port.fellBack && r.port.bound === port);
  const fallers = rows.filter((r) => r.port.fellBack && r.port.bound !== port && r.port.bound > 0);
  const mainLimit = Math.floor(1.1 * distinctMain) + warmupRequests;
  const revisitLimit = Math.floor(1.1 * revisitPlan.length);
  // What the clients saw (source of each answer) against what each cache counted over the same requests.
  const sourceChecks = rows.map((r, i) => {
    const f = final[i]!.stats;
    const b = before[i]!.stats;
    const pairs: Array<[string, number, number]> = [
      ['memory+disk/hits', r.sources.memory + r.sources.disk, f.hits - b.hits],
      ['peer/peerHits', r.sources.peer, f.peerHits - b.peerHits],
      ['coalesced/coalesced', r.sources.coalesced, f.coalesced - b.coalesced],
      ['stale/staleServed', r.sources.stale, f.staleServed - b.staleServed],
    ];
    const bad = pairs.filter(([, seen, counted]) => seen !== counted);
    return {
      ok: bad.length === 0,
      text: bad.length === 0 ? `${r.name}: hits, peerHits, coalesced, staleServed match`
        : `${r.name}: ${bad.map(([what, seen, counted]) => `${what} ${seen} vs ${counted}`).join(', ')}`,
    };
  });
  const errorSamples = rows.flatMap((r) => [...r.main.errorSamples, ...(r.revisit?.errorSamples ?? [])]).slice(0, 3);

  const invariants: Invariant[] = [
    {
      name: 'one cache instance per process',
      ok: rows.every((r) => r.instancesCreated === 1 && r.factoryCalls === 1 && r.distinctInstancesSeen === 1),
      detail: `created / factory calls / distinct instances seen: ${rows.map((r) => `${r.name} ${r.instancesCreated}/${r.factoryCalls}/${r.distinctInstancesSeen}`).join(', ')} ` +
        `(${options.concurrency} concurrent first callers per node; ${rows.reduce((a, r) => a + r.via.getGlobalCache, 0)} getGlobalCache + ` +
        `${rows.reduce((a, r) => a + r.via['container.getAsync'], 0)} container.getAsync resolutions in all)`,
    },
    {
      name: 'one P2P host per process',
      ok: rows.every((r) => r.p2pHosts === 1 && r.connectedPeers === options.nodes - 1) && peerIds.size === options.nodes,
      detail: `${peerIds.size} distinct peer ids for ${options.nodes} processes; peers connected per node: ${rows.map((r) => r.connectedPeers).join(', ')}`,
    },
    {
      name: `exactly one process bound the fixed port ${port}`,
      ok: binders.length === 1 && fallers.length === options.nodes - 1,
      detail: `${binders.map((r) => r.name).join(', ') || 'none'} bound it; ${fallers.map((r) => `${r.name} fell back to ${r.port.bound}`).join(', ') || 'none fell back'}`,
    },
    {
      name: 'every request answered with the right data',
      ok: served === totalRequests && rows.every((r) => r.errors === 0 && r.wrong === 0),
      detail: `${served} of ${totalRequests} answered, ${rows.reduce((a, r) => a + r.errors, 0)} errors, ${rows.reduce((a, r) => a + r.wrong, 0)} wrong` +
        (errorSamples.length > 0 ? ` (first: ${errorSamples.join(' | ')})` : ''),
    },
    {
      name: 'fleet upstream requests <= 1.1 x distinct resources (+ warm-up)',
      ok: upstreamMain + warmupRequests <= mainLimit,
      detail: `${upstreamMain} + ${warmupRequests} warm-up <= ${mainLimit} (distinct repositories touched: ${distinctMain})`,
    },
    ...(revisit !== undefined
      ? [{
        name: 'after idle, only free revalidations (304s)',
        ok: revisitCharged === 0 && upstreamRevisit <= revisitLimit && revisitNotModified === upstreamRevisit,
        detail: `${upstreamRevisit} upstream requests for ${revisitPlan.length} expired repositories (limit ${revisitLimit}), ${revisitNotModified} answered 304, ${revisitCharged} charged`,
      }]
      : []),
    {
      name: "the nodes' upstream counts match the fake GitHub's",
      ok: nodeUpstream === upstreamMain + upstreamRevisit,
      detail: `nodes counted ${nodeUpstream}, the fake received ${upstreamMain + upstreamRevisit} (after warm-up)`,
    },
    {
      name: "answers' sources agree with the caches' own counters",
      ok: sourceChecks.every((c) => c.ok),
      detail: sourceChecks.map((c) => c.text).join('; '),
    },
    {
      name: 'no token or shared secret in any file the nodes wrote',
      ok: leakedFiles.length === 0,
      detail: leakedFiles.length === 0 ? `scanned ${options.nodes} cache directories (SQLite, peer identity)` : `found in ${leakedFiles.join(', ')}`,
    },
    {
      name: 'every node closed cleanly',
      ok: rows.every((r) => r.closedCleanly),
      detail: rows.map((r, i) => `${r.name}: ${r.closedCleanly ? 'closed, exit 0' : `exit ${exits[i]!.code ?? exits[i]!.signal}`}`).join('; '),
    },
  ];

  // Last: nothing printed so far, by this process or a node, may contain the token or the secret.
  const everything = [...recorded, ...members.flatMap((m) => m.output)].join('\n');
  const leakedOutput = secrets.some((s) => everything.includes(s));
  invariants.push({
    name: 'no token or shared secret in any output',
    ok: !leakedOutput,
    detail: leakedOutput ? 'found in the output' : `checked ${everything.length} characters of this process's and the nodes' stdout/stderr`,
  });

  return {
    ok: invariants.every((i) => i.ok),
    invariants,
    options: (({ json: _json, port: _port, ...rest }) => ({ ...rest, port }))(options),
    nodes: rows.map(({ main: m, revisit: _r, ...rest }) => ({ ...rest, mainP50Ms: m.p50Ms, mainP99Ms: m.p99Ms, mainMaxMs: m.maxMs })),
    totals: {
      requestsServed: served,
      mainRequests,
      revisitRequests,
      distinctResources: distinctMain,
      distinctRevisited: revisitPlan.length,
      unsharedMinimum,
      warmupRequests,
      upstream: { main: upstreamMain, revisit: upstreamRevisit, total: afterAll.requests, notModified: afterAll.notModified },
      rateLimitUnits: { spent: afterAll.charged, uncachedBaseline: served, saved: served - afterAll.charged, revisitCharged },
      fake: (({ byPath, ...rest }) => ({ ...rest, distinctPaths: Object.keys(byPath).length }))(afterAll),
    },
    timingsMs: timings,
  };
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
