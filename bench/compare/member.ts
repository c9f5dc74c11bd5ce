/**
 * One client of the compare benchmark in a process of its own (forked by bench/compare/index.ts with an IPC
 * channel and --expose-gc): it builds the client named by the parent's `setup`, then runs workloads, hit
 * loops, clock moves and memory reports on request (bench/compare/protocol.ts).
 *
 * A process per client keeps memory apart (each reports its own RSS and heap), lets three of them run one
 * workload at once as a fleet, and lets the clock be moved for third-party clients that read `Date.now`
 * (undici, make-fetch-happen) without moving it for anyone else. Each client kind loads only its own modules.
 */
import { performance } from 'node:perf_hooks';
import { OffsetClock } from '../../support/clock.js';
import type { ClientConfig, ClockMode, Command, MemoryReport, Ready, Reply, Request, RunResult } from './protocol.js';

interface Answer {
  status: number;
  /** What the client says about where the answer came from, if it says anything. */
  source?: string | null | undefined;
}

/** A client under test: one GET of `/repos/{owner}/{repo}`, answered with its parsed JSON body. */
interface Client {
  get(repo: string): Promise<Answer>;
  /** Other APIs of the same client, for the hit-latency comparison. */
  variants?: Record<string, (repo: string) => Promise<Answer>>;
  /** One GET of any path (a fleet's scope warm-up). */
  getPath?(path: string): Promise<Answer>;
  stats?(): Promise<unknown>;
  ready?: Partial<Ready>;
  close(): Promise<void>;
}

/** The process's clock: real time moved on by what the parent said (made before any client patches Date.now). */
const clock = new OffsetClock();
const now = clock.now;

const ACCEPT = 'application/vnd.github+json';

function clockModeOf(config: ClientConfig): ClockMode {
  return config.kind === 'fetch' || config.kind === 'undici' || config.kind === 'make-fetch-happen' ? 'patch-date-now' : 'inject';
}

async function build(config: ClientConfig, token: string, owner: string): Promise<Client> {
  const headers = { authorization: `token ${token}`, accept: ACCEPT };
  const urlOf = (repo: string) => `${config.baseUrl}/repos/${owner}/${repo}`;
  switch (config.kind) {
    case 'fetch': {
      const get = async (url: string): Promise<Answer> => {
        const response = await fetch(url, { headers });
        await response.json();
        return { status: response.status, source: response.headers.get('x-cache-source') };
      };
      return { get: (repo) => get(urlOf(repo)), getPath: (path) => get(config.baseUrl + path), close: async () => undefined };
    }
    case 'undici': {
      const { Agent, interceptors, request, fetch: undiciFetch } = await import('undici');
      // compose applies left to right, so the cache is outermost: a miss reaches deduplicate, which sends one
      // request per key in flight. The order undici's own docs show.
      const dispatcher = new Agent().compose(interceptors.deduplicate(), interceptors.cache({ type: 'private' }));
      const viaRequest = async (repo: string): Promise<Answer> => {
        const response = await request(urlOf(repo), { dispatcher, headers });
        await response.body.json();
        return { status: response.statusCode };
      };
      const viaFetch = async (repo: string): Promise<Answer> => {
        const response = await undiciFetch(urlOf(repo), { dispatcher, headers });
        await response.json();
        return { status: response.status };
      };
      return { get: viaRequest, variants: { fetch: viaFetch }, close: () => dispatcher.close() };
    }
    case 'make-fetch-happen': {
      const { default: makeFetchHappen } = await import('make-fetch-happen');
      const mfh = makeFetchHappen.defaults({ cachePath: config.cacheDir, retry: false });
      return {
        get: async (repo) => {
          const response = await mfh(urlOf(repo), { headers });
          await response.json();
          return { status: response.status, source: response.headers.get('x-local-cache-status') };
        },
        close: async () => undefined,
      };
    }
    case 'cache-request':
    case 'proxy-host': {
      const { GitHubAPICache, startProxy } = await import('../../index.js');
      const cache = await GitHubAPICache.create({
        cacheDir: config.cacheDir,
        githubApiUrl: config.baseUrl,
        now,
        p2p: config.kind === 'cache-request' && config.p2p !== undefined
          ? { enabled: true, sharedSecret: config.p2p.sharedSecret, listenHost: '127.0.0.1', listenPort: 0, bootstrapPeers: config.p2p.bootstrapPeers }
          : { enabled: false },
      });
      const route = 'GET /repos/{owner}/{repo}';
      const client: Client = {
        get: async (repo) => {
          const response = await cache.request(route, { owner, repo }, { token });
          return { status: response.status, source: response.source };
        },
        getPath: async (path) => {
          const response = await cache.request(`GET ${path}`, {}, { token });
          return { status: response.status, source: response.source };
        },
        stats: () => cache.getStats(),
        close: () => cache.close(),
      };
      if (config.kind === 'proxy-host') {
        const proxy = await startProxy({ cache, port: 0 });
        client.ready = { url: proxy.url };
        client.close = async () => {
          await proxy.close();
          await cache.close();
        };
      }
      await cache.p2pReady(); // create() resolves before the P2P host listens
      const p2p = (await cache.getStats()).p2p;
      if (p2p !== undefined) client.ready = { listenAddrs: p2p.listenAddrs.filter((a) => a.includes('/127.0.0.1/')) };
      return client;
    }
    case 'static-host': {
      const { createServer } = await import('node:http');
      const origin = await fetch(config.baseUrl + config.path, { headers });
      const body = await origin.text();
      const answerHeaders = { 'content-type': 'application/json; charset=utf-8', etag: origin.headers.get('etag') ?? '""' };
      const server = createServer((req, res) => {
        req.resume();
        res.writeHead(200, answerHeaders).end(body);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      return {
        get: () => Promise.reject(new Error('static-host runs no workload')),
        ready: { url: `http://127.0.0.1:${port}` },
        close: async () => {
          server.closeAllConnections();
          await new Promise((resolve) => server.close(resolve));
        },
      };
    }
    case 'octokit': {
      const [{ Octokit }, { GitHubAPICache, githubCachePlugin }] = await Promise.all([import('@octokit/core'), import('../../index.js')]);
      const cache = await GitHubAPICache.create({ cacheDir: config.cacheDir, githubApiUrl: config.baseUrl, now, p2p: { enabled: false } });
      const CachedOctokit = Octokit.plugin(githubCachePlugin);
      const octokit = new CachedOctokit({ auth: token, baseUrl: config.baseUrl, cache });
      return {
        get: async (repo) => {
          const response = await octokit.request('GET /repos/{owner}/{repo}', { owner, repo });
          return { status: response.status, source: response.headers['x-cache-source'] as string | undefined };
        },
        close: () => cache.close(),
      };
    }
  }
}

/** `inFlight` workers pulling repos from one list in order, each request timed. */
async function runWorkload(client: Client, repos: readonly string[], inFlight: number): Promise<RunResult> {
  const latenciesNs: number[] = [];
  const statuses: Record<string, number> = {};
  const sources: Record<string, number> = {};
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const worker = async () => {
    while (next < repos.length) {
      const repo = repos[next++]!;
      const started = process.hrtime.bigint();
      try {
        const answer = await client.get(repo);
        latenciesNs.push(Number(process.hrtime.bigint() - started));
        statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
        if (answer.source !== undefined && answer.source !== null) sources[answer.source] = (sources[answer.source] ?? 0) + 1;
      } catch (err) {
        errors++;
        firstError ??= describeError(err);
      }
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.min(inFlight, repos.length) }, worker));
  const wallNs = Number(process.hrtime.bigint() - started);
  return { latenciesNs, wallNs, statuses, sources, errors, ...(firstError !== undefined ? { firstError } : {}) };
}

/** The message with its code and cause's, e.g. `other side closed (UND_ERR_SOCKET)`. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const cause = err.cause === undefined ? '' : `; cause: ${describeError(err.cause)}`;
  return `${err.message}${typeof code === 'string' ? ` (${code})` : ''}${cause}`;
}

async function hitLoop(get: (repo: string) => Promise<Answer>, repo: string, iterations: number, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await get(repo);
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = process.hrtime.bigint();
    const answer = await get(repo);
    samples.push(Number(process.hrtime.bigint() - started));
    if (answer.status !== 200) throw new Error(`hit loop: HTTP ${answer.status}`);
  }
  return samples;
}

function memory(): MemoryReport {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  return { rss: usage.rss, heapUsed: usage.heapUsed, maxRss: process.resourceUsage().maxRSS * 1024 };
}

let client: Client | undefined;

async function handle(command: Command): Promise<unknown> {
  if (command.type === 'setup') {
    if (clockModeOf(command.client) === 'patch-date-now') Date.now = now;
    client = await build(command.client, command.token, command.owner);
    return { type: 'ready', pid: process.pid, ...client.ready } satisfies Ready;
  }
  if (client === undefined) throw new Error(`${command.type} before setup`);
  switch (command.type) {
    case 'run':
      return runWorkload(client, command.repos, command.inFlight);
    case 'hit': {
      const get = command.variant === undefined ? client.get : client.variants?.[command.variant];
      if (get === undefined) throw new Error(`no variant ${command.variant ?? ''}`);
      return hitLoop(get, command.repo, command.iterations, command.warmup);
    }
    case 'get':
      if (client.getPath === undefined) throw new Error('this client has no getPath');
      return client.getPath(command.path);
    case 'clock':
      clock.offsetMs = command.offsetMs;
      return { now: now(), performanceNow: performance.now() };
    case 'memory':
      return memory();
    case 'stats':
      return client.stats?.();
    case 'close':
      await client.close();
      return memory();
  }
}

process.on('message', (message: Request) => {
  void handle(message).then(
    (value) => reply({ id: message.id, ok: true, value }),
    (err: unknown) => reply({ id: message.id, ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }),
  ).then(() => {
    // Everything is closed; libp2p's leftover timers (~1 s) need not hold the process.
    if (message.type === 'close') process.exit(0);
  });
});
process.once('disconnect', () => process.exit(0));

function reply(message: Reply): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });
}
