/**
 * One fleet member for specs and the demo, run as a child process (IPC) or a worker thread (parentPort).
 * It builds the process's one cache through the package entry (configureCache) with P2P on, says
 * `{type:'ready', ...}`, then answers messages: `{type:'request', id, route, token}` → `{type:'response', id,
 * source, status, data}` or `{type:'error', id, message}`; `{type:'stats', id}` → `{type:'stats', id, stats,
 * provider}`; `{type:'run', id, routes, token, inFlight}` → `{type:'run', id, latenciesNs, sources, errors, wallNs}`
 * (every route requested, `inFlight` at a time, each timed in this process, with each request's source in
 * `perSource`, its index in `routes` in `perRoute` and its start in `startedAtMs` (ms since the epoch, sub-ms, to line
 * up with other processes), and this process's event-loop delay over the run in `loopDelayMs`); `{type:'profile', id}`
 * starts a CPU profile of this process and `{type:'profile', id, file}` stops it and writes it to `file` (→ `{type:'profile',
 * id}`; benchmarks use it to profile the serving side over a timed row); `{type:'close'}` → closes the cache and exits.
 *
 * Configuration comes from the environment (CACHE_* variables, GITHUB_API_URL) or, in a worker, workerData.env.
 * More variables are for specs and benchmarks only: FLEET_NODE_P2P=off (P2P off: a node alone, `p2p` absent from
 * 'ready'), FLEET_NODE_CPU_PROF_DIR (each `run` is CPU-profiled, from its first request to its last answer, into
 * `<dir>/run-<pid>-<n>.cpuprofile`), FLEET_NODE_LISTEN_HOST (default 127.0.0.1; a member in a network
 * namespace of its own listens on 0.0.0.0 as a machine would), FLEET_NODE_MDNS=1 (p2p.mdns) and
 * FLEET_NODE_PEER_TIMEOUT_MS (p2p.requestTimeoutMs), FLEET_NODE_START_WAIT_MS (p2p.startWaitMs),
 * FLEET_NODE_PERSISTENCE (the cache's `persistence`; default 'off': memory only).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { configureCache, getCacheProvider, getGlobalCache, shutdownGlobalCache } from '../index.js';

type Message =
  | { type: 'request'; id: number; route: string; token?: string }
  | { type: 'run'; id: number; routes: string[]; token?: string; inFlight: number }
  | { type: 'stats'; id: number }
  | { type: 'profile'; id: number; file?: string }
  | { type: 'close' };
type Reply = Record<string, unknown>;

const env: Record<string, string | undefined> = parentPort !== null ? { ...process.env, ...(workerData?.env ?? {}) } : process.env;
const send = (reply: Reply): void => {
  if (parentPort !== null) parentPort.postMessage(reply);
  else process.send?.(reply);
};

let profiledRuns = 0;
/** The session of a profile started by a `profile` message, until the one that stops it. */
let rowProfiler: Session | undefined;

/** A CPU profile of this process, started now (node:inspector). */
async function startCpuProfile(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return session;
}

/** Stops `session`'s profile and writes it to `file`. */
async function stopCpuProfile(session: Session, file: string): Promise<void> {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
}

async function main(): Promise<void> {
  const started = Date.now();
  let cache;
  try {
    cache = await configureCache({
      // Checked by the cache's own option validation (CacheConfigError for anything but auto, required or off).
      persistence: (env.FLEET_NODE_PERSISTENCE || 'off') as 'auto' | 'required' | 'off',
      cacheDir: env.CACHE_DIR,
      githubApiUrl: env.GITHUB_API_URL,
      p2p: {
        enabled: env.FLEET_NODE_P2P !== 'off',
        sharedSecret: env.CACHE_P2P_SHARED_SECRET,
        listenPort: Number(env.CACHE_LISTEN_PORT ?? 0),
        listenHost: env.FLEET_NODE_LISTEN_HOST ?? '127.0.0.1',
        bootstrapPeers: (env.CACHE_BOOTSTRAP_PEERS ?? '').split(',').filter((p) => p !== ''),
        mdns: env.FLEET_NODE_MDNS === '1',
        ...(env.FLEET_NODE_PEER_TIMEOUT_MS !== undefined ? { requestTimeoutMs: Number(env.FLEET_NODE_PEER_TIMEOUT_MS) } : {}),
        // FLEET_NODE_START_WAIT_MS (specs only): p2p.startWaitMs.
        ...(env.FLEET_NODE_START_WAIT_MS !== undefined ? { startWaitMs: Number(env.FLEET_NODE_START_WAIT_MS) } : {}),
      },
    });
    await cache.p2pReady(); // 'ready' reports the P2P host's address: wait until it listens
  } catch (err) {
    send({ type: 'failed', message: (err as Error).message });
    process.exitCode = 1;
    return;
  }
  const stats = await cache.getStats();
  send({ type: 'ready', startedMs: Date.now() - started, p2p: stats.p2p, pid: process.pid });

  const onMessage = (message: Message): void => {
    void (async () => {
      if (message.type === 'close') {
        await shutdownGlobalCache();
        if (parentPort !== null) parentPort.close();
        else process.disconnect?.();
        return;
      }
      if (message.type === 'profile') {
        if (message.file === undefined) {
          rowProfiler = await startCpuProfile();
        } else if (rowProfiler !== undefined) {
          await stopCpuProfile(rowProfiler, message.file);
          rowProfiler = undefined;
        }
        send({ type: 'profile', id: message.id });
        return;
      }
      const c = await getGlobalCache();
      if (message.type === 'stats') {
        send({ type: 'stats', id: message.id, stats: await c.getStats(), provider: getCacheProvider().stats() });
        return;
      }
      if (message.type === 'run') {
        const latenciesNs: number[] = [];
        const sources: Record<string, number> = {};
        const perSource: string[] = [];
        const perRoute: number[] = [];
        const startedAtMs: number[] = [];
        let errors = 0;
        let next = 0;
        const profiler = env.FLEET_NODE_CPU_PROF_DIR !== undefined ? await startCpuProfile() : undefined;
        const loop = monitorEventLoopDelay({ resolution: 10 });
        loop.enable();
        const started = process.hrtime.bigint();
        await Promise.all(Array.from({ length: Math.min(message.inFlight, message.routes.length) }, async () => {
          while (next < message.routes.length) {
            const index = next++;
            const route = message.routes[index]!;
            startedAtMs.push(performance.timeOrigin + performance.now());
            const t = process.hrtime.bigint();
            let source = 'error';
            try {
              const r = await c.request(route, {}, { token: message.token });
              source = r.source;
              sources[r.source] = (sources[r.source] ?? 0) + 1;
            } catch {
              errors++;
            }
            latenciesNs.push(Number(process.hrtime.bigint() - t));
            perSource.push(source);
            perRoute.push(index);
          }
        }));
        const wallNs = Number(process.hrtime.bigint() - started);
        loop.disable();
        if (profiler !== undefined) await stopCpuProfile(profiler, path.join(env.FLEET_NODE_CPU_PROF_DIR!, `run-${process.pid}-${++profiledRuns}.cpuprofile`));
        const loopDelayMs = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 };
        send({ type: 'run', id: message.id, latenciesNs, sources, perSource, perRoute, startedAtMs, loopDelayMs, errors, wallNs });
        return;
      }
      try {
        const r = await c.request(message.route, {}, { token: message.token });
        send({ type: 'response', id: message.id, source: r.source, status: r.status, data: r.data });
      } catch (err) {
        send({ type: 'error', id: message.id, message: (err as Error).message });
      }
    })();
  };
  if (parentPort !== null) parentPort.on('message', onMessage);
  else process.on('message', onMessage);
}

await main();
