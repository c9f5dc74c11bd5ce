/**
 * `serve`: the caching proxy. Guarantees: nothing listens until the options are valid (exit 2 otherwise); one
 * JSON line `{"event":"listening",...}` on stdout once it listens; a warning when it listens beyond loopback, and
 * when it runs a P2P member without the service's Node flags (bin/node-flags.ts);
 * on SIGINT/SIGTERM no new connections, in-flight requests finish, the cache is closed, then
 * `{"event":"stopped",...}` and exit 0 (1 if that fails or outlasts twice closeTimeoutMs plus 5 s); a second
 * signal exits at once with 130/143.
 *
 * This is where the proxy (src/proxy, which takes a cache) is wired to the process's singleton provider
 * (providers/): src never imports providers.
 */
import net from 'node:net';
import { Option, type Command } from 'commander';
import type { CacheStats } from '../../src/cache/counters.js';
import { resolveOptions } from '../../src/options.js';
import { p2pStatsOf } from '../../src/proxy/p2p-stats.js';
import { ProxyListenError, startProxy, type ProxyServer } from '../../src/proxy/proxy-server.js';
import { getGlobalCache, shutdownGlobalCache } from '../../providers/global-cache.js';
import { addCacheOptions, cacheOptionsFromFlags, type CacheFlags } from '../cache-flags.js';
import { EXIT, info, keepProcessAlive, portArg, printJson, warn } from '../cli-support.js';
import { missingNodeFlags, SERVICE_NODE_FLAGS } from '../node-flags.js';

type ServeFlags = CacheFlags & {
  host: string;
  port: number;
};

async function serve(flags: ServeFlags): Promise<void> {
  // A server: its P2P host may hold the process open too (the proxy does anyway).
  const fromFlags = cacheOptionsFromFlags(flags);
  const options = { ...fromFlags, p2p: { ...fromFlags.p2p, keepAlive: true } };
  const resolved = resolveOptions(options);
  keepProcessAlive();

  // Signals are handled from the start, so one arriving while the cache or the P2P host starts still closes them.
  let proxy: ProxyServer | undefined;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      info(`${signal} again: exiting at once`);
      process.exit(signal === 'SIGINT' ? EXIT.sigint : EXIT.sigterm);
    }
    stopping = true;
    info(`${signal}: no new connections; finishing in-flight requests, then closing the cache (${signal} again exits at once)`);
    // Bounded: the proxy's drain and the cache's close each wait at most closeTimeoutMs.
    const deadline = setTimeout(() => {
      info('shutdown is taking too long; exiting');
      process.exit(EXIT.failed);
    }, resolved.closeTimeoutMs * 2 + 5_000);
    deadline.unref();
    void (async () => {
      try {
        await proxy?.close();
        await shutdownGlobalCache();
        await printJson({ event: 'stopped', requests: proxy?.counters.requests ?? 0 });
        info('stopped');
        process.exit(EXIT.ok);
      } catch (err) {
        info(`shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(EXIT.failed);
      }
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // The port is checked before the cache exists, so a port in use leaves no cache directory or SQLite file behind.
  await checkPortFree(flags.host, flags.port);
  if (stopping) return;
  const cache = await getGlobalCache(options);
  if (stopping) return;
  try {
    proxy = await startProxy({
      cache: () => getGlobalCache(),
      host: flags.host,
      port: flags.port,
      closeTimeoutMs: resolved.closeTimeoutMs,
    });
  } catch (err) {
    if (stopping) return;
    await shutdownGlobalCache();
    throw err;
  }
  if (stopping) {
    await proxy.close();
    return;
  }
  // The proxy answers while the P2P host starts; the banner names the host's address, and a host that cannot
  // start (an address it cannot listen on) ends the server as it did before the proxy existed.
  try {
    await cache.p2pReady();
  } catch (err) {
    if (stopping) return;
    await proxy.close();
    await shutdownGlobalCache();
    throw err;
  }
  if (stopping) return;

  if (!isLoopback(proxy.host)) {
    warn(`the proxy listens on ${proxy.host}, reachable from the network: anyone who reaches it can read /metrics and ` +
      '/_cache/stats and spend this address\'s anonymous rate limit (callers\' tokens stay in their own scopes); firewall the port');
  }
  let stats: CacheStats;
  try {
    stats = await cache.getStats();
  } catch (err) {
    if (stopping) return; // a signal closed the cache meanwhile
    throw err;
  }
  const p2p = p2pStatsOf(stats);
  const port = p2pPort(stats, resolved.p2p.listenPort);
  // cacheDir is shown only when something is kept there: the SQLite file, or the P2P identity.
  const usesCacheDir = stats.persistence === 'sqlite' || p2p !== undefined;
  const missing = p2p === undefined ? [] : missingNodeFlags();
  if (missing.length > 0) {
    warn(`Node was started without ${missing.join(' ')}: a fleet member that serves peers then runs far more full GCs ` +
      `(docs/operations.md, "Node flags"); start it as \`node ${SERVICE_NODE_FLAGS.join(' ')} ${process.argv[1] ?? 'dist/bin/cli.js'} serve\``);
  }
  await printJson({
    event: 'listening',
    url: proxy.url,
    host: proxy.host,
    port: proxy.port,
    pid: process.pid,
    githubApiUrl: resolved.githubApiUrl,
    persistence: stats.persistence,
    cacheDir: usesCacheDir ? resolved.cacheDir : null,
    p2p: p2p === undefined ? null : { peerId: p2p.peerId, listenAddrs: p2p.listenAddrs, ...port },
  });
  const fallback = port.portFallback
    ? ` (port ${resolved.p2p.listenPort} was taken: fell back to ${port.boundPort ?? 'an ephemeral port'})`
    : '';
  info(`proxy listening on ${proxy.url} -> ${resolved.githubApiUrl} (cache: ${stats.persistence === 'sqlite' ? `SQLite in ${resolved.cacheDir}` : 'memory only'}; ` +
    `P2P: ${p2p === undefined ? 'disabled' : `${p2p.peerId ?? '?'} on ${p2p.listenAddrs.join(', ') || '?'}${fallback}`}). Try: curl ${proxy.url}/healthz`);
}

/** The P2P port asked for, the one bound and whether the host fell back to another (the stats' boundPort, portFallback). */
export function p2pPort(stats: unknown, requestedPort: number): { requestedPort: number; boundPort: number | null; portFallback: boolean } {
  const p2p = (stats as { p2p?: { boundPort?: unknown; portFallback?: unknown } } | undefined)?.p2p;
  const boundPort = typeof p2p?.boundPort === 'number' && p2p.boundPort > 0 ? p2p.boundPort : null;
  const portFallback = p2p?.portFallback === true || (requestedPort !== 0 && boundPort !== null && boundPort !== requestedPort);
  return { requestedPort, boundPort, portFallback };
}

/** Rejects with the ProxyListenError startProxy would give when host:port cannot be bound now (port 0 always can). */
async function checkPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', (err) => reject(new ProxyListenError(host, port, err)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Adds `serve` to `program`. */
export function registerServe(program: Command): void {
  addCacheOptions(program.command('serve')
    .description('run the caching proxy: GitHub REST calls to http://HOST:PORT/<path> are answered through the cache')
    .addOption(new Option('--host <address>', 'address to listen on; 0.0.0.0 exposes the proxy to the network').env('CACHE_PROXY_HOST').default('127.0.0.1'))
    .addOption(new Option('--port <port>', 'port to listen on; 0 picks a free one (printed on stdout)').env('CACHE_PROXY_PORT').default(8787).argParser(portArg)))
    .addHelpText('after', `
The client's Authorization header ("token <t>" or "Bearer <t>") selects the cache scope; answers carry
GitHub's status, headers and body plus X-Cache-Source (memory, disk, peer, origin, revalidated, coalesced,
stale). Also served: /healthz, /metrics (Prometheus), /_cache/stats (JSON).
On start it prints one JSON line on stdout: {"event":"listening","url":...}. SIGINT/SIGTERM stop it
gracefully (in-flight requests finish, the cache is flushed and closed); a second signal exits at once.

Examples:
  github-p2p-cache serve
  curl -H "Authorization: token $GITHUB_TOKEN" http://127.0.0.1:8787/repos/octocat/hello-world`)
    .action(async (flags: ServeFlags) => serve(flags));
}
