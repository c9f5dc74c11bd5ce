#!/usr/bin/env node
/**
 * The `github-p2p-cache` command: `serve` (the caching proxy, what `npm start` runs), `get <route>` (one call
 * through the cache), `stats`, `peers` and `demo`. Options mirror the library's options and environment
 * variables (an option given on the command line wins over its variable). Exit codes: 0 done, 1 failed,
 * 2 bad usage or an invalid option, 130/143 a second SIGINT/SIGTERM during shutdown.
 *
 * This file is the one place that wires the proxy (src/proxy, which takes a cache) to the process's
 * singleton provider (providers/): src never imports providers.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { CacheStats } from '../src/github-api-cache.js';
import { CacheConfigError, RateLimitError, UpstreamError } from '../src/errors.js';
import { resolveOptions, type CacheOptions, type P2POptions } from '../src/options.js';
import { p2pStatsOf } from '../src/proxy/p2p-stats.js';
import { startProxy, type ProxyServer } from '../src/proxy/proxy-server.js';
import { getGlobalCache, shutdownGlobalCache } from '../providers/global-cache.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Set by `serve`: the process lives on after its action returns (the server holds it). */
let keepRunning = false;

/** Exit codes. */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, sigint: 130, sigterm: 143 });

/** The command-line flag of each library option, to name the flag in CacheConfigError messages. */
const FLAG_OF_OPTION: Readonly<Record<string, string>> = Object.freeze({
  cacheDir: '--cache-dir',
  githubApiUrl: '--github-api-url',
  defaultTtl: '--default-ttl',
  maxEntries: '--max-entries',
  persistence: '--persistence',
  upstreamTimeoutMs: '--upstream-timeout',
  closeTimeoutMs: '--close-timeout',
  maxBytes: '--max-bytes',
  maxConcurrentPerScope: '--max-concurrent-per-scope',
  maxRateLimitWait: '--max-rate-limit-wait',
  'p2p.listenHost': '--listen-host',
  'p2p.requestTimeoutMs': '--peer-timeout',
  'p2p.maxEntryTtl': '--max-peer-entry-ttl',
  'p2p.enabled': '--p2p',
  'p2p.listenPort': '--listen-port',
  'p2p.bootstrapPeers': '--bootstrap-peers',
  'p2p.sharedSecret': '--shared-secret',
});

/** What commander hands an action for the options every cache-opening command takes. */
interface CacheFlags {
  cacheDir?: string;
  githubApiUrl?: string;
  defaultTtl?: number;
  maxEntries?: number;
  persistence?: 'auto' | 'required' | 'off';
  upstreamTimeout?: number;
  closeTimeout?: number;
  maxBytes?: number;
  maxConcurrentPerScope?: number;
  maxRateLimitWait?: number;
  listenHost?: string;
  peerTimeout?: number;
  maxPeerEntryTtl?: number;
  p2p?: boolean;
  listenPort?: number;
  bootstrapPeers?: string;
  sharedSecret?: string;
}

/** A usage error: printed as `error: <message>`, exit code 2. */
class UsageError extends Error {}

function numberArg(name: string): (value: string) => number {
  return (value: string) => {
    const trimmed = value.trim();
    if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(trimmed)) throw new InvalidArgumentError(`${name} must be a number, got ${JSON.stringify(value)}.`);
    return Number(trimmed);
  };
}

function portArg(value: string): number {
  const n = numberArg('the port')(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError(`expected an integer from 0 to 65535, got ${JSON.stringify(value)}.`);
  return n;
}

function addCacheOptions(command: Command): Command {
  return command
    .option('--cache-dir <dir>', 'directory of the SQLite cache and the peer identity [env CACHE_DIR] (default: $XDG_CACHE_HOME/github-p2p-cache or ~/.cache/github-p2p-cache)')
    .option('--github-api-url <url>', 'base URL of the GitHub REST API [env GITHUB_API_URL] (default: https://api.github.com)')
    .option('--default-ttl <seconds>', 'seconds an answer stays fresh when GitHub sends no max-age [env CACHE_DEFAULT_TTL] (default: 300)', numberArg('--default-ttl'))
    .option('--max-entries <n>', 'entries kept before the least recently used is evicted [env CACHE_MAX_ENTRIES] (default: 1000)', numberArg('--max-entries'))
    .addOption(new Option('--persistence <mode>', 'auto: SQLite, or memory-only with a warning if it cannot be used; required: fail instead; off: memory only (default: auto)')
      .choices(['auto', 'required', 'off']))
    .option('--upstream-timeout <ms>', 'abort a request to GitHub after this long (default: 30000)', numberArg('--upstream-timeout'))
    .option('--close-timeout <ms>', 'on shutdown, how long in-flight work may take to finish (default: 5000)', numberArg('--close-timeout'))
    .option('--max-bytes <bytes>', 'most bytes of response bodies kept on disk (default: 268435456, 256 MiB)', numberArg('--max-bytes'))
    .option('--max-concurrent-per-scope <n>', 'concurrent GitHub requests per token; keep members x n under GitHub\'s 100 (default: 10)', numberArg('--max-concurrent-per-scope'))
    .option('--max-rate-limit-wait <seconds>', 'wait this long for a rate-limited token to reset before failing (default: 0)', numberArg('--max-rate-limit-wait'))
    .option('--p2p', 'share entries with peers over libp2p; needs a shared secret [env CACHE_ENABLE_P2P] (default: on when a shared secret is set)')
    .option('--no-p2p', 'do not run the P2P host, even with a shared secret')
    .option('--listen-port <port>', 'TCP port of the P2P host, 0 for any free one [env CACHE_LISTEN_PORT] (default: 9100)', portArg)
    .option('--listen-host <address>', 'IP address the P2P host listens on (default: 0.0.0.0)')
    .option('--peer-timeout <ms>', 'how long to wait for a key\'s owner before going to GitHub (default: 2000)', numberArg('--peer-timeout'))
    .option('--max-peer-entry-ttl <seconds>', 'largest TTL accepted on an entry from a peer (default: 3600)', numberArg('--max-peer-entry-ttl'))
    .option('--bootstrap-peers <multiaddrs>', 'comma-separated multiaddrs of peers to dial, e.g. /ip4/10.0.0.2/tcp/9100/p2p/12D3... [env CACHE_BOOTSTRAP_PEERS]')
    .option('--shared-secret <secret>', 'secret of the fleet, at least 16 characters; prefer the env CACHE_P2P_SHARED_SECRET: arguments are visible to other users in `ps`');
}

/** Library options from the flags; flags not given stay undefined so the environment and defaults apply. */
export function cacheOptionsFromFlags(flags: CacheFlags): CacheOptions {
  const options: CacheOptions = {};
  const p2p: P2POptions = {};
  if (flags.cacheDir !== undefined) options.cacheDir = flags.cacheDir;
  if (flags.githubApiUrl !== undefined) options.githubApiUrl = flags.githubApiUrl;
  if (flags.defaultTtl !== undefined) options.defaultTtl = flags.defaultTtl;
  if (flags.maxEntries !== undefined) options.maxEntries = flags.maxEntries;
  if (flags.persistence !== undefined) options.persistence = flags.persistence;
  if (flags.upstreamTimeout !== undefined) options.upstreamTimeoutMs = flags.upstreamTimeout;
  if (flags.closeTimeout !== undefined) options.closeTimeoutMs = flags.closeTimeout;
  if (flags.maxBytes !== undefined) options.maxBytes = flags.maxBytes;
  if (flags.maxConcurrentPerScope !== undefined) options.maxConcurrentPerScope = flags.maxConcurrentPerScope;
  if (flags.maxRateLimitWait !== undefined) options.maxRateLimitWait = flags.maxRateLimitWait;
  if (flags.listenHost !== undefined) p2p.listenHost = flags.listenHost;
  if (flags.peerTimeout !== undefined) p2p.requestTimeoutMs = flags.peerTimeout;
  if (flags.maxPeerEntryTtl !== undefined) p2p.maxEntryTtl = flags.maxPeerEntryTtl;
  if (flags.p2p !== undefined) p2p.enabled = flags.p2p;
  if (flags.listenPort !== undefined) p2p.listenPort = flags.listenPort;
  if (flags.bootstrapPeers !== undefined) p2p.bootstrapPeers = flags.bootstrapPeers.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (flags.sharedSecret !== undefined) {
    p2p.sharedSecret = flags.sharedSecret;
    warn('--shared-secret is visible to other users of this machine (ps, /proc); set CACHE_P2P_SHARED_SECRET in the environment instead');
  }
  if (Object.keys(p2p).length > 0) options.p2p = p2p;
  // Validate now, so a bad option exits 2 before anything starts.
  resolveOptions(options);
  return options;
}

/** A CacheConfigError's message with the option named as the flag the user typed. */
function configMessage(err: CacheConfigError): string {
  const flag = FLAG_OF_OPTION[err.option];
  return flag === undefined ? err.message : err.message.replace(`Invalid ${err.option}:`, `Invalid ${flag}:`);
}

function warn(message: string): void {
  process.stderr.write(`github-p2p-cache: warning: ${message}\n`);
}

function info(message: string): void {
  process.stderr.write(`github-p2p-cache: ${message}\n`);
}

/** Writes to stdout and waits for it (so a process.exit right after loses nothing). */
function writeOut(text: string): Promise<void> {
  return new Promise((resolve) => {
    process.stdout.write(text, () => resolve());
  });
}

function printJson(value: unknown): Promise<void> {
  return writeOut(`${JSON.stringify(value, null, process.stdout.isTTY ? 2 : undefined)}\n`);
}

function packageVersion(): string {
  for (const candidate of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(HERE, candidate), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'github-p2p-cache' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next
    }
  }
  return '0.0.0';
}

// ---------------------------------------------------------------- serve

interface ServeFlags extends CacheFlags {
  host: string;
  port: number;
}

async function serve(flags: ServeFlags): Promise<void> {
  const options = cacheOptionsFromFlags(flags);
  const resolved = resolveOptions(options);
  keepRunning = true;

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
  await printJson({
    event: 'listening',
    url: proxy.url,
    host: proxy.host,
    port: proxy.port,
    pid: process.pid,
    githubApiUrl: resolved.githubApiUrl,
    persistence: stats.persistence,
    cacheDir: resolved.cacheDir,
    p2p: p2p === undefined ? null : { peerId: p2p.peerId, listenAddrs: p2p.listenAddrs },
  });
  info(`proxy listening on ${proxy.url} -> ${resolved.githubApiUrl} (cache: ${stats.persistence === 'sqlite' ? `SQLite in ${resolved.cacheDir}` : 'memory only'}; ` +
    `P2P: ${p2p === undefined ? 'disabled' : `${p2p.peerId ?? '?'} on ${p2p.listenAddrs.join(', ') || '?'}`}). Try: curl ${proxy.url}/healthz`);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

// ---------------------------------------------------------------- get

interface GetFlags extends CacheFlags {
  tokenEnv: string;
  param?: string[];
  accept?: string;
  ttl?: number;
  includeHeaders?: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

async function get(route: string, flags: GetFlags): Promise<void> {
  const options = cacheOptionsFromFlags(flags);
  const tokenEnv = flags.tokenEnv;
  const explicitTokenEnv = tokenEnv !== 'GITHUB_TOKEN';
  const raw = process.env[tokenEnv];
  if (explicitTokenEnv && (raw === undefined || raw.trim() === '')) {
    throw new UsageError(`--token-env ${tokenEnv}: the environment variable ${tokenEnv} is not set (or empty)`);
  }
  const token = raw === undefined || raw.trim() === '' ? undefined : raw.trim();

  const params: Record<string, string> = {};
  for (const pair of flags.param ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param ${JSON.stringify(pair)}: expected key=value`);
    params[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const trimmed = route.trim();
  const fullRoute = /^[A-Za-z]+\s+\S/.test(trimmed) ? trimmed : `GET ${trimmed.startsWith('/') || /^https?:/.test(trimmed) ? trimmed : `/${trimmed}`}`;

  const cache = await getGlobalCache(options);
  try {
    const response = await cache.request(fullRoute, params, {
      token,
      ttl: flags.ttl,
      headers: flags.accept === undefined ? undefined : { accept: flags.accept },
    });
    await printJson({
      status: response.status,
      source: response.source,
      ...(flags.includeHeaders === true ? { headers: response.headers } : {}),
      data: response.data,
    });
  } catch (err) {
    if (err instanceof UpstreamError && err.status !== 0) {
      await printJson({ status: err.status, source: 'origin', data: err.response?.data });
      throw new CommandFailed(err.message);
    }
    if (err instanceof RateLimitError && err.response !== undefined) {
      await printJson({ status: err.response.status, source: 'origin', data: err.response.data });
    }
    throw err;
  } finally {
    await shutdownGlobalCache();
  }
}

/** The command ran and failed (its output already explains what); exit code 1. */
class CommandFailed extends Error {}

// ---------------------------------------------------------------- stats, peers

interface StatsFlags extends CacheFlags {
  url?: string;
  wait?: number;
}

async function statsFromProxy(url: string): Promise<CacheStats & { proxy?: unknown }> {
  const target = `${url.replace(/\/+$/, '')}/_cache/stats`;
  let response: Response;
  try {
    response = await fetch(target, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new CommandFailed(`cannot reach the proxy at ${target}: ${cause ?? (err instanceof Error ? err.message : String(err))} (is \`github-p2p-cache serve\` running there?)`);
  }
  if (!response.ok) throw new CommandFailed(`the proxy at ${target} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as CacheStats & { proxy?: unknown };
}

async function localStats(flags: StatsFlags): Promise<CacheStats> {
  const options = cacheOptionsFromFlags(flags);
  const cache = await getGlobalCache(options);
  try {
    if (flags.wait !== undefined && flags.wait > 0) await new Promise((resolve) => setTimeout(resolve, flags.wait! * 1000));
    return await cache.getStats();
  } finally {
    await shutdownGlobalCache();
  }
}

async function stats(flags: StatsFlags): Promise<void> {
  await printJson(flags.url !== undefined ? await statsFromProxy(flags.url) : await localStats(flags));
}

async function peers(flags: StatsFlags): Promise<void> {
  const snapshot = flags.url !== undefined ? await statsFromProxy(flags.url) : await localStats(flags);
  const p2p = p2pStatsOf(snapshot);
  if (p2p === undefined) {
    await writeOut('P2P disabled (enable it with --p2p and a shared secret in CACHE_P2P_SHARED_SECRET)\n');
    return;
  }
  await printJson({
    peerId: p2p.peerId,
    listenAddrs: p2p.listenAddrs,
    connectedPeers: p2p.connectedPeers,
    peers: p2p.peers,
    counters: p2p.counters,
    rejected: p2p.rejected,
  });
}

// ---------------------------------------------------------------- demo

async function demo(args: string[]): Promise<void> {
  const candidates = [path.join(HERE, '../examples/p2p-demo.js'), path.join(HERE, '../examples/concurrent-server.js')];
  const script = candidates.find((file) => fs.existsSync(file));
  if (script === undefined) throw new CommandFailed(`no demo found (looked for ${candidates.join(', ')}); run \`npm run build\` first`);
  info(`running ${path.relative(process.cwd(), script) || script}`);
  const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit' });
  // The terminal's Ctrl-C reaches the child too; a kill aimed at this process is passed on.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((resolve) => {
    child.once('exit', (exitCode, signal) => resolve(exitCode ?? (signal === 'SIGINT' ? EXIT.sigint : signal === 'SIGTERM' ? EXIT.sigterm : EXIT.failed)));
    child.once('error', (err) => {
      info(`cannot run the demo: ${err.message}`);
      resolve(EXIT.failed);
    });
  });
  process.exit(code);
}

// ---------------------------------------------------------------- the program

/** The command-line program (exported for specs; `main` runs it). */
export function createProgram(): Command {
  const program = new Command();
  program
    .name('github-p2p-cache')
    .description('One process-wide cache of GitHub API responses, shared with peers over libp2p, as a local HTTP proxy and a CLI.')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', `
Environment variables (a flag given on the command line wins):
  GITHUB_TOKEN             token used by \`get\` (or the variable named by --token-env); never printed
  GITHUB_API_URL           GitHub REST API base URL
  CACHE_DIR, CACHE_DEFAULT_TTL, CACHE_MAX_ENTRIES
  CACHE_ENABLE_P2P, CACHE_LISTEN_PORT, CACHE_BOOTSTRAP_PEERS, CACHE_P2P_SHARED_SECRET
  CACHE_PROXY_HOST, CACHE_PROXY_PORT   where \`serve\` listens

Exit codes: 0 ok, 1 failed, 2 bad usage or invalid option, 130/143 forced by a second SIGINT/SIGTERM.`);

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

  addCacheOptions(program.command('get')
    .description('make one GitHub REST call through the cache and print {status, source, data} as JSON')
    .argument('<route>', 'a path (/repos/octocat/hello-world), or a method and a route ("GET /repos/{owner}/{repo}" with --param)')
    .option('--token-env <name>', 'environment variable holding the token (there is no --token flag: arguments show in ps)', 'GITHUB_TOKEN')
    .option('-p, --param <key=value>', 'a route parameter or query parameter (repeatable)', collect)
    .option('--accept <media-type>', 'Accept header, e.g. application/vnd.github.raw+json')
    .option('--ttl <seconds>', 'seconds the answer stays fresh (default: GitHub\'s max-age)', numberArg('--ttl'))
    .option('--include-headers', 'include the response headers in the output'))
    .addHelpText('after', `
Uses the cache in --cache-dir, so a second \`get\` in a new process is answered from disk.
Exits 1 when GitHub answers an error (its status and message are printed) or cannot be reached.

Examples:
  GITHUB_TOKEN=... github-p2p-cache get /repos/octocat/hello-world
  github-p2p-cache get "GET /repos/{owner}/{repo}/issues" -p owner=octocat -p repo=hello-world -p state=open`)
    .action(async (route: string, flags: GetFlags) => get(route, flags));

  addCacheOptions(program.command('stats')
    .description('print cache statistics as JSON')
    .option('--url <proxy-url>', 'read the stats of the proxy running at this URL (its /_cache/stats) instead')
    .option('--wait <seconds>', 'seconds to wait before reading (lets a P2P host connect)', numberArg('--wait')))
    .addHelpText('after', `
Without --url this opens the cache with the given options and prints that process's stats: the entries and
disk bytes of the cache directory are real, but the counters start at zero. To see a running proxy's counters,
pass --url http://127.0.0.1:8787.`)
    .action(async (flags: StatsFlags) => stats(flags));

  addCacheOptions(program.command('peers')
    .description('print this node\'s P2P identity and its peers as JSON, or "P2P disabled"')
    .option('--url <proxy-url>', 'read the peers of the proxy running at this URL instead')
    .option('--wait <seconds>', 'seconds to let the P2P host connect before reading', numberArg('--wait')))
    .addHelpText('after', `
Without --url this starts a P2P host of its own (when enabled) and reports what it sees; to see a running
proxy's peers, pass --url http://127.0.0.1:8787.`)
    .action(async (flags: StatsFlags) => peers(flags));

  program.command('demo')
    .description('run the offline demo (dist/examples/p2p-demo.js, or the concurrent-server example when it is absent)')
    .argument('[args...]', 'arguments passed to the demo')
    .allowUnknownOption()
    .action(async (args: string[]) => demo(args));

  return program;
}

/** Runs the CLI with `argv` (as process.argv) and exits the process. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const program = createProgram();
  try {
    await program.parseAsync(argv);
    // One-shot commands exit now rather than wait for idle keep-alive sockets and libp2p timers to lapse.
    if (!keepRunning) process.exit(EXIT.ok);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander printed the message or the help already.
      process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    if (err instanceof CacheConfigError) {
      process.stderr.write(`error: ${configMessage(err)}\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof UpstreamError && err.status === 0) {
      process.stderr.write(`error: GitHub API unreachable: ${err.upstreamMessage} (${err.message})\n`);
      process.exit(EXIT.failed);
    }
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.failed);
  }
}

/** Whether this module is the program being run (also through npm's bin symlink), not imported. */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(fs.realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) void main();
