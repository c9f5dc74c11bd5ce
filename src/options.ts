import { CacheConfigError } from './errors.js';
import type { LogSink } from './log.js';
import { OPTION_TABLE, show, type OptionPath, type OptionRow, type OptionSource, type ResolvedSoFar } from './options-table.js';

/**
 * The option types. Each option's variable, flag, valid values and default are declared once, in OPTION_TABLE
 * (src/options-table.ts), which resolveOptions follows; the notes here are a summary for editors.
 */

/** P2P sharing options. Environment variables in brackets; explicit options win over them. */
export interface P2POptions {
  /** Run the libp2p host. [CACHE_ENABLE_P2P] Default: true when a shared secret is set, else false. */
  enabled?: boolean;
  /** TCP port the host listens on; 0 picks a free one. [CACHE_LISTEN_PORT] Default: 9100. */
  listenPort?: number;
  /** Address the host listens on (flag `--listen-host`, no variable). Default: '0.0.0.0'. */
  listenHost?: string;
  /** Multiaddrs of peers to dial at start (`/ip4/10.0.0.2/tcp/9100/p2p/12D3…`). [CACHE_BOOTSTRAP_PEERS, comma-separated] Default: none. */
  bootstrapPeers?: string[];
  /** Secret shared by the fleet; derives the private-network key. Required when enabled. [CACHE_P2P_SHARED_SECRET] */
  sharedSecret?: string;
  /** Discover peers on the LAN with mDNS. Default: false. */
  mdns?: boolean;
  /** How long an asker waits for a key's owner before going upstream itself, in ms. Default: 2000. */
  requestTimeoutMs?: number;
  /** Abort a dial after this many ms (a wrong network key otherwise fails only after ~6 s). Default: 1500. */
  dialTimeoutMs?: number;
  /** Largest frame accepted from a peer, in bytes. Default: 4 MiB. */
  maxFrameBytes?: number;
  /** Largest TTL accepted on an entry from a peer, in seconds. Default: 3600. */
  maxEntryTtl?: number;
}

/** Options of a GitHubAPICache. Every field is optional; the defaults are documented per field. */
export interface CacheOptions {
  /** Directory of the SQLite database and the peer identity. [CACHE_DIR] Default: `$XDG_CACHE_HOME/github-p2p-cache` or `~/.cache/github-p2p-cache`. */
  cacheDir?: string;
  /** TTL in seconds for keys whose operation has no TTL of its own. [CACHE_DEFAULT_TTL] Default: 300. */
  defaultTtl?: number;
  /** TTL in seconds per operation (a key's part before the first `:`), merged over the built-in table. */
  ttlByOperation?: Record<string, number>;
  /** Most entries kept; the least recently used is evicted past it. [CACHE_MAX_ENTRIES] Default: 1000. */
  maxEntries?: number;
  /** Most bytes of bodies kept on disk. Default: 256 MiB. */
  maxBytes?: number;
  /** 'auto': SQLite, degrading to memory-only with a warning if it cannot be used; 'required': fail instead; 'off': memory only. Default: 'auto'. */
  persistence?: 'auto' | 'required' | 'off';
  /** Base URL of the GitHub REST API. [GITHUB_API_URL] Default: 'https://api.github.com'. */
  githubApiUrl?: string;
  /** Seconds a request may wait for a rate-limited scope to reset before failing with RateLimitError. Default: 0. */
  maxRateLimitWait?: number;
  /** Concurrent upstream requests per token scope (GitHub allows at most 100). Default: 10. */
  maxConcurrentPerScope?: number;
  /** Abort an upstream request after this many ms. Default: 30000. */
  upstreamTimeoutMs?: number;
  /** How long `close()` waits for in-flight operations, in ms. Default: 5000. */
  closeTimeoutMs?: number;
  /** P2P sharing. */
  p2p?: P2POptions;
  /** Where warnings and errors are written. Default: stderr. */
  logSink?: LogSink;
  /** Clock in ms since the epoch, for tests and benchmarks. Default: Date.now. */
  now?: () => number;
}

export interface ResolvedP2POptions {
  readonly enabled: boolean;
  readonly listenPort: number;
  readonly listenHost: string;
  readonly bootstrapPeers: readonly string[];
  readonly sharedSecret: string | undefined;
  readonly mdns: boolean;
  readonly requestTimeoutMs: number;
  readonly dialTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly maxEntryTtl: number;
}

export interface ResolvedCacheOptions {
  readonly cacheDir: string;
  readonly defaultTtl: number;
  readonly ttlByOperation: Readonly<Record<string, number>>;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly persistence: 'auto' | 'required' | 'off';
  readonly githubApiUrl: string;
  readonly maxRateLimitWait: number;
  readonly maxConcurrentPerScope: number;
  readonly upstreamTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly p2p: ResolvedP2POptions;
  readonly logSink: LogSink | undefined;
  readonly now: () => number;
}

export { DEFAULTS, DEFAULT_TTL_BY_OPERATION, ENVIRONMENT_VARIABLES, defaultCacheDir } from './options-table.js';

/** Top-level option names and P2P option names, from the table, to refuse misspelt ones. */
const KNOWN_OPTIONS = new Set(['p2p', ...OPTION_TABLE.filter((row) => !row.path.includes('.')).map((row) => row.path)]);
const KNOWN_P2P_OPTIONS = new Set(OPTION_TABLE.filter((row) => row.path.startsWith('p2p.')).map((row) => row.path.slice('p2p.'.length)));

/** The explicit value of an option path, or undefined. */
function explicitValue(options: CacheOptions, p2p: P2POptions, optionPath: OptionPath): unknown {
  return optionPath.startsWith('p2p.')
    ? (p2p as Record<string, unknown>)[optionPath.slice('p2p.'.length)]
    : (options as Record<string, unknown>)[optionPath];
}

/** The given value of a row and its source: the explicit option, else a trimmed non-empty environment value. */
function givenValue(row: OptionRow, explicit: unknown, env: NodeJS.ProcessEnv): { value: unknown; source: OptionSource } {
  if (explicit !== undefined) return { value: explicit, source: { name: row.path, fromEnv: false } };
  if (row.env !== undefined) {
    const raw = env[row.env];
    if (raw !== undefined && raw.trim() !== '') return { value: raw.trim(), source: { name: row.env, fromEnv: true } };
  }
  return { value: undefined, source: { name: row.path, fromEnv: false } };
}

/**
 * Resolves options: explicit options > environment variables > defaults, row by row through OPTION_TABLE.
 * Throws CacheConfigError naming the option or variable and its value (never a secret's value) on the first
 * invalid one; it has no side effects.
 */
export function resolveOptions(options: CacheOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedCacheOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new CacheConfigError('options', `expected an object, got ${show(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new CacheConfigError(key, 'unknown option (check its spelling against CacheOptions)');
  }
  const p2pIn = options.p2p ?? {};
  if (p2pIn === null || typeof p2pIn !== 'object' || Array.isArray(p2pIn)) {
    throw new CacheConfigError('p2p', `expected an object, got ${show(p2pIn)}`);
  }
  for (const key of Object.keys(p2pIn)) {
    if (!KNOWN_P2P_OPTIONS.has(key)) throw new CacheConfigError(`p2p.${key}`, 'unknown option (check its spelling against P2POptions)');
  }

  const values = new Map<OptionPath, unknown>();
  const resolved: ResolvedSoFar = { get: (optionPath) => values.get(optionPath) as never };
  for (const row of OPTION_TABLE) {
    const { value, source } = givenValue(row, explicitValue(options, p2pIn, row.path), env);
    values.set(row.path, value === undefined ? row.fallback(env, resolved) : row.parse(value, source, resolved));
  }

  const get = resolved.get;
  return Object.freeze({
    cacheDir: get('cacheDir'),
    defaultTtl: get('defaultTtl'),
    ttlByOperation: get('ttlByOperation'),
    maxEntries: get('maxEntries'),
    maxBytes: get('maxBytes'),
    persistence: get('persistence'),
    githubApiUrl: get('githubApiUrl'),
    maxRateLimitWait: get('maxRateLimitWait'),
    maxConcurrentPerScope: get('maxConcurrentPerScope'),
    upstreamTimeoutMs: get('upstreamTimeoutMs'),
    closeTimeoutMs: get('closeTimeoutMs'),
    p2p: Object.freeze({
      enabled: get('p2p.enabled'),
      listenPort: get('p2p.listenPort'),
      listenHost: get('p2p.listenHost'),
      bootstrapPeers: get('p2p.bootstrapPeers'),
      sharedSecret: get('p2p.sharedSecret'),
      mdns: get('p2p.mdns'),
      requestTimeoutMs: get('p2p.requestTimeoutMs'),
      dialTimeoutMs: get('p2p.dialTimeoutMs'),
      maxFrameBytes: get('p2p.maxFrameBytes'),
      maxEntryTtl: get('p2p.maxEntryTtl'),
    }),
    logSink: get('logSink'),
    now: get('now'),
  });
}

/** The TTL in seconds of a key: by its operation (the part before the first `:`), else the default. */
export function ttlForKey(key: string, options: Pick<ResolvedCacheOptions, 'ttlByOperation' | 'defaultTtl'>): number {
  const colon = key.indexOf(':');
  const operation = colon === -1 ? key : key.slice(0, colon);
  return Object.hasOwn(options.ttlByOperation, operation) ? options.ttlByOperation[operation]! : options.defaultTtl;
}
