/**
 * One member of the offline demo's fleet (examples/p2p-demo.ts starts three of these as child processes).
 *
 * The process is an application with many concurrent clients of its one cache: half of them reach it through
 * `getGlobalCache()`, half through an Inversify container's `getAsync(TYPES.GitHubAPICache)`. At start all
 * clients ask for the cache at once, before it exists, so the provider's double-checked lock has many
 * concurrent first callers; it must create one instance (and one libp2p host).
 *
 * Configuration comes from the environment, set by the demo: CACHE_DIR, GITHUB_API_URL, CACHE_LISTEN_PORT,
 * CACHE_P2P_SHARED_SECRET, DEMO_GITHUB_TOKEN, DEMO_NODE_NAME, DEMO_CONCURRENCY, DEMO_PEER_TIMEOUT_MS. It talks to the
 * demo over IPC:
 *
 *   → {type:'ready', ...} once the cache exists (or {type:'failed', message})
 *   ← {type:'stats'}                      → {type:'stats', stats, provider}
 *   ← {type:'warmup'}                     → {type:'warmed'}   (one request: announces the token's scope to peers)
 *   ← {type:'run', phase, work}           → {type:'progress', ...}… then {type:'done', phase, result}
 *   ← {type:'advance', ms}                → {type:'advanced'} (moves this cache's clock on)
 *   ← {type:'close'}                      → {type:'closed', provider} and the process exits
 *
 * The token is read from the environment and passed to `cache.request`; it is never printed or sent back.
 */
import { performance } from 'node:perf_hooks';
import {
  createCacheContainer,
  getCacheProvider,
  getGlobalCache,
  shutdownGlobalCache,
  TYPES,
  type CacheOptions,
  type GitHubAPICache,
} from '../index.js';
import { OffsetClock } from '../support/clock.js';
import { SOURCES, type NodeMessage, type NodeReply, type PhaseResult, type PhaseWork, type SourceCounts } from './demo-protocol.js';

const env = process.env;
const name = env.DEMO_NODE_NAME ?? 'node';
const token = env.DEMO_GITHUB_TOKEN;
const concurrency = Number(env.DEMO_CONCURRENCY ?? 50);
const clock = new OffsetClock();

const send = (message: NodeReply): void => {
  process.send?.(message);
};

const options: CacheOptions = {
  cacheDir: env.CACHE_DIR,
  githubApiUrl: env.GITHUB_API_URL,
  persistence: 'auto',
  // The demo moves every clock on at once for its idle-revisit phase.
  now: clock.now,
  p2p: {
    enabled: true,
    sharedSecret: env.CACHE_P2P_SHARED_SECRET,
    listenHost: '127.0.0.1',
    listenPort: Number(env.CACHE_LISTEN_PORT ?? 0),
    bootstrapPeers: [],
    ...(env.DEMO_PEER_TIMEOUT_MS !== undefined ? { requestTimeoutMs: Number(env.DEMO_PEER_TIMEOUT_MS) } : {}),
  },
};

// The container's options become the provider's options for the first creation; getGlobalCache() without
// options uses the same ones. Nothing is created yet.
const container = createCacheContainer(options);
const instancesSeen = new Set<GitHubAPICache>();
type Via = 'getGlobalCache' | 'container.getAsync';

/** One client's way to the cache: even clients use getGlobalCache(), odd ones the container. */
async function resolveCache(via: Via): Promise<GitHubAPICache> {
  const cache = via === 'getGlobalCache' ? await getGlobalCache() : await container.getAsync<GitHubAPICache>(TYPES.GitHubAPICache);
  instancesSeen.add(cache);
  return cache;
}

const viaOf = (client: number): Via => (client % 2 === 0 ? 'getGlobalCache' : 'container.getAsync');

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runPhase(phase: string, work: PhaseWork): Promise<PhaseResult> {
  const total = work.indices.length;
  const sources = Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;
  const via = { getGlobalCache: 0, 'container.getAsync': 0 };
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  const touched = new Set<number>();
  let next = 0;
  let done = 0;
  let wrong = 0;
  let errors = 0;
  let nextTenth = 1;
  let lastReport = performance.now();
  const started = performance.now();
  const cpu = process.cpuUsage();

  const report = (): void => {
    lastReport = performance.now();
    send({ type: 'progress', phase, done, total, errors, sources: { ...sources } });
  };

  const client = async (id: number): Promise<void> => {
    const way = viaOf(id);
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const index = work.indices[i]!;
      const repo = `${work.repoPrefix}${index}`;
      touched.add(index);
      const t0 = performance.now();
      try {
        const cache = await resolveCache(way);
        via[way]++;
        const r = await cache.request<{ id?: number; full_name?: string }>('GET /repos/{owner}/{repo}', { owner: work.owner, repo }, { token });
        latencies.push(performance.now() - t0);
        sources[r.source]++;
        if (r.status !== 200 || r.data.id !== index || r.data.full_name !== `${work.owner}/${repo}`) wrong++;
      } catch (err) {
        errors++;
        if (errorSamples.length < 3) errorSamples.push((err as Error).message);
      }
      done++;
      if (done >= (nextTenth * total) / 10) {
        while (done >= (nextTenth * total) / 10) nextTenth++;
        report();
      } else if (performance.now() - lastReport >= 1000) {
        report();
      }
    }
  };

  await Promise.all(Array.from({ length: Math.min(work.concurrency, Math.max(1, total)) }, (_, id) => client(id)));
  latencies.sort((a, b) => a - b);
  return {
    requests: total,
    answered: total - errors,
    wrong,
    errors,
    errorSamples,
    sources,
    via,
    distinctResources: touched.size,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? 0,
    elapsedMs: performance.now() - started,
    cpuMs: (({ user, system }) => (user + system) / 1000)(process.cpuUsage(cpu)),
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  let cache: GitHubAPICache;
  try {
    // Every client asks for the cache at once, before it exists: the double-checked lock's cold path.
    const first = await Promise.all(Array.from({ length: concurrency }, (_, id) => resolveCache(viaOf(id))));
    cache = first[0]!;
    await cache.p2pReady(); // 'ready' reports the P2P host's port: wait until it listens
  } catch (err) {
    send({ type: 'failed', message: (err as Error).message });
    process.exitCode = 1;
    return;
  }
  const stats = await cache.getStats();
  send({
    type: 'ready',
    name,
    pid: process.pid,
    startedMs: Math.round(performance.now() - started),
    firstCallers: concurrency,
    distinctInstancesSeen: instancesSeen.size,
    provider: getCacheProvider().stats(),
    persistence: stats.persistence,
    p2p: stats.p2p,
  });

  process.on('message', (message: NodeMessage) => {
    void (async () => {
      switch (message.type) {
        case 'stats': {
          const c = await resolveCache('getGlobalCache');
          send({ type: 'stats', stats: await c.getStats(), provider: getCacheProvider().stats(), distinctInstancesSeen: instancesSeen.size });
          return;
        }
        case 'warmup': {
          const c = await resolveCache('container.getAsync');
          try {
            await c.request('GET /rate_limit', {}, { token });
            send({ type: 'warmed' });
          } catch (err) {
            send({ type: 'failed', message: `warm-up request failed: ${(err as Error).message}` });
          }
          return;
        }
        case 'run': {
          const result = await runPhase(message.phase, message.work);
          send({ type: 'done', phase: message.phase, result });
          return;
        }
        case 'advance':
          clock.advance(message.ms);
          send({ type: 'advanced', offsetMs: clock.offsetMs });
          return;
        case 'close': {
          await shutdownGlobalCache(); // stops the libp2p host (the port is released) and flushes SQLite
          send({ type: 'closed', provider: getCacheProvider().stats() });
          process.disconnect?.();
          return;
        }
      }
    })().catch((err: unknown) => send({ type: 'failed', message: (err as Error).message }));
  });
  // The demo going away (killed, crashed) must not leave this process behind.
  process.once('disconnect', () => {
    void shutdownGlobalCache().finally(() => process.exit(0));
  });
}

await main();
