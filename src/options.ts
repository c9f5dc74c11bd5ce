import os from 'node:os';
import path from 'node:path';
import { CacheConfigError } from './errors.js';
import type { LogSink } from './log.js';

/** P2P sharing options. Environment variables in brackets; explicit options win over them. */
export interface P2POptions {
  /** Run the libp2p host. [CACHE_ENABLE_P2P] Default: true when a shared secret is set, else false. */
  enabled?: boolean;
  /** TCP port the host listens on; 0 picks a free one. [CACHE_LISTEN_PORT] Default: 9100. */
  listenPort?: number;
  /** Address the host listens on. Default: '0.0.0.0'. */
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

/** The original's per-operation TTLs, in seconds. */
export const DEFAULT_TTL_BY_OPERATION: Readonly<Record<string, number>> = Object.freeze({
  list_repos: 300,
  get_repo_info: 300,
  list_workflow_runs: 60,
  get_workflow_run: 60,
  list_runners: 30,
});

export const DEFAULTS = Object.freeze({
  defaultTtl: 300,
  maxEntries: 1000,
  maxBytes: 256 * 1024 * 1024,
  persistence: 'auto' as const,
  githubApiUrl: 'https://api.github.com',
  maxRateLimitWait: 0,
  maxConcurrentPerScope: 10,
  upstreamTimeoutMs: 30_000,
  closeTimeoutMs: 5_000,
  listenPort: 9100,
  listenHost: '0.0.0.0',
  requestTimeoutMs: 2_000,
  dialTimeoutMs: 1_500,
  maxFrameBytes: 4 * 1024 * 1024,
  maxEntryTtl: 3_600,
});

/** The environment variables read, and the option each one sets. */
export const ENVIRONMENT_VARIABLES = Object.freeze({
  CACHE_DIR: 'cacheDir',
  CACHE_DEFAULT_TTL: 'defaultTtl',
  CACHE_MAX_ENTRIES: 'maxEntries',
  CACHE_ENABLE_P2P: 'p2p.enabled',
  CACHE_LISTEN_PORT: 'p2p.listenPort',
  CACHE_BOOTSTRAP_PEERS: 'p2p.bootstrapPeers',
  CACHE_P2P_SHARED_SECRET: 'p2p.sharedSecret',
  GITHUB_API_URL: 'githubApiUrl',
});

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg !== undefined && xdg !== '' ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'github-p2p-cache');
}

/** Shows a value in an error message; secrets are never shown. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

type Source = { readonly name: string; readonly fromEnv: boolean };

function pick<T>(option: T | undefined, optionName: string, env: NodeJS.ProcessEnv, envName: string | undefined):
  { value: T | string | undefined; source: Source } {
  if (option !== undefined) return { value: option, source: { name: optionName, fromEnv: false } };
  if (envName !== undefined) {
    const raw = env[envName];
    if (raw !== undefined && raw.trim() !== '') return { value: raw.trim(), source: { name: envName, fromEnv: true } };
  }
  return { value: undefined, source: { name: optionName, fromEnv: false } };
}

function toNumber(value: unknown, source: Source, { min, max, integer }: { min: number; max: number; integer: boolean }): number {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (source.fromEnv && typeof value === 'string' && /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(value)) n = Number(value);
  else throw new CacheConfigError(source.name, `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${show(value)}`);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new CacheConfigError(source.name, `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${show(value)}`);
  }
  return n;
}

function toBoolean(value: unknown, source: Source): boolean {
  if (typeof value === 'boolean') return value;
  if (source.fromEnv && typeof value === 'string') {
    const v = value.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
  }
  throw new CacheConfigError(source.name, `expected ${source.fromEnv ? 'true/false/1/0/yes/no' : 'a boolean'}, got ${show(value)}`);
}

function toString(value: unknown, source: Source): string {
  if (typeof value !== 'string' || value === '') throw new CacheConfigError(source.name, `expected a non-empty string, got ${show(value)}`);
  return value;
}

function numberOption(option: unknown, name: string, env: NodeJS.ProcessEnv, envName: string | undefined, fallback: number,
  range: { min: number; max: number; integer: boolean }): number {
  const { value, source } = pick(option, name, env, envName);
  return value === undefined ? fallback : toNumber(value, source, range);
}

const KNOWN_OPTIONS = new Set(['cacheDir', 'defaultTtl', 'ttlByOperation', 'maxEntries', 'maxBytes', 'persistence', 'githubApiUrl',
  'maxRateLimitWait', 'maxConcurrentPerScope', 'upstreamTimeoutMs', 'closeTimeoutMs', 'p2p', 'logSink', 'now']);
const KNOWN_P2P_OPTIONS = new Set(['enabled', 'listenPort', 'listenHost', 'bootstrapPeers', 'sharedSecret', 'mdns', 'requestTimeoutMs',
  'dialTimeoutMs', 'maxFrameBytes', 'maxEntryTtl']);

/**
 * Resolves options: explicit options > environment variables > defaults. Throws CacheConfigError naming the
 * option or variable and its value (never a secret's value) on the first invalid one; it has no side effects.
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

  const dir = pick(options.cacheDir, 'cacheDir', env, 'CACHE_DIR');
  const cacheDir = dir.value === undefined ? defaultCacheDir(env) : path.resolve(toString(dir.value, dir.source));

  const defaultTtl = numberOption(options.defaultTtl, 'defaultTtl', env, 'CACHE_DEFAULT_TTL', DEFAULTS.defaultTtl,
    { min: 0, max: 365 * 86_400, integer: false });

  const ttlByOperation: Record<string, number> = { ...DEFAULT_TTL_BY_OPERATION };
  if (options.ttlByOperation !== undefined) {
    if (options.ttlByOperation === null || typeof options.ttlByOperation !== 'object' || Array.isArray(options.ttlByOperation)) {
      throw new CacheConfigError('ttlByOperation', `expected an object of seconds, got ${show(options.ttlByOperation)}`);
    }
    for (const [op, ttl] of Object.entries(options.ttlByOperation)) {
      ttlByOperation[op] = toNumber(ttl, { name: `ttlByOperation.${op}`, fromEnv: false }, { min: 0, max: 365 * 86_400, integer: false });
    }
  }

  const maxEntries = numberOption(options.maxEntries, 'maxEntries', env, 'CACHE_MAX_ENTRIES', DEFAULTS.maxEntries,
    { min: 1, max: 100_000_000, integer: true });
  const maxBytes = numberOption(options.maxBytes, 'maxBytes', env, undefined, DEFAULTS.maxBytes,
    { min: 1024, max: Number.MAX_SAFE_INTEGER, integer: true });

  const persistence = options.persistence ?? DEFAULTS.persistence;
  if (!['auto', 'required', 'off'].includes(persistence)) {
    throw new CacheConfigError('persistence', `expected 'auto', 'required' or 'off', got ${show(persistence)}`);
  }

  const api = pick(options.githubApiUrl, 'githubApiUrl', env, 'GITHUB_API_URL');
  let githubApiUrl: string = DEFAULTS.githubApiUrl;
  if (api.value !== undefined) {
    const raw = toString(api.value, api.source);
    let url: URL;
    try {
      url = new URL(raw);
    } catch (cause) {
      throw new CacheConfigError(api.source.name, `expected an http(s) URL, got ${show(raw)}`, { cause });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new CacheConfigError(api.source.name, `expected an http(s) URL, got ${show(raw)}`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new CacheConfigError(api.source.name, 'credentials in the URL are not allowed; pass a token per request instead');
    }
    githubApiUrl = url.href.replace(/\/+$/, '');
  }

  const maxRateLimitWait = numberOption(options.maxRateLimitWait, 'maxRateLimitWait', env, undefined, DEFAULTS.maxRateLimitWait,
    { min: 0, max: 86_400, integer: false });
  const maxConcurrentPerScope = numberOption(options.maxConcurrentPerScope, 'maxConcurrentPerScope', env, undefined,
    DEFAULTS.maxConcurrentPerScope, { min: 1, max: 100, integer: true });
  const upstreamTimeoutMs = numberOption(options.upstreamTimeoutMs, 'upstreamTimeoutMs', env, undefined, DEFAULTS.upstreamTimeoutMs,
    { min: 1, max: 600_000, integer: true });
  const closeTimeoutMs = numberOption(options.closeTimeoutMs, 'closeTimeoutMs', env, undefined, DEFAULTS.closeTimeoutMs,
    { min: 0, max: 600_000, integer: true });

  // P2P
  const secret = pick(p2pIn.sharedSecret, 'p2p.sharedSecret', env, 'CACHE_P2P_SHARED_SECRET');
  let sharedSecret: string | undefined;
  if (secret.value !== undefined) {
    if (typeof secret.value !== 'string') throw new CacheConfigError(secret.source.name, `expected a string, got ${show(secret.value)}`);
    // Never echo the secret itself.
    if (secret.value.length < 16) throw new CacheConfigError(secret.source.name, 'the shared secret must be at least 16 characters (use a random one, e.g. `openssl rand -hex 32`)');
    sharedSecret = secret.value;
  }
  const en = pick(p2pIn.enabled, 'p2p.enabled', env, 'CACHE_ENABLE_P2P');
  const enabled = en.value === undefined ? sharedSecret !== undefined : toBoolean(en.value, en.source);
  if (enabled && sharedSecret === undefined) {
    throw new CacheConfigError(en.source.name, 'P2P is enabled but no shared secret is set (p2p.sharedSecret or CACHE_P2P_SHARED_SECRET): an open network would let anyone in');
  }
  const listenPort = numberOption(p2pIn.listenPort, 'p2p.listenPort', env, 'CACHE_LISTEN_PORT', DEFAULTS.listenPort,
    { min: 0, max: 65_535, integer: true });
  const host = pick(p2pIn.listenHost, 'p2p.listenHost', env, undefined);
  const listenHost = host.value === undefined ? DEFAULTS.listenHost : toString(host.value, host.source);
  const peers = pick(p2pIn.bootstrapPeers, 'p2p.bootstrapPeers', env, 'CACHE_BOOTSTRAP_PEERS');
  let bootstrapPeers: string[] = [];
  if (peers.value !== undefined) {
    const list = typeof peers.value === 'string' ? peers.value.split(',').map((s) => s.trim()).filter((s) => s !== '') : peers.value;
    if (!Array.isArray(list) || !list.every((p) => typeof p === 'string' && p.startsWith('/'))) {
      throw new CacheConfigError(peers.source.name, `expected multiaddrs such as /ip4/10.0.0.2/tcp/9100/p2p/12D3..., got ${show(peers.value)}`);
    }
    bootstrapPeers = [...list];
  }
  const mdns = p2pIn.mdns === undefined ? false : toBoolean(p2pIn.mdns, { name: 'p2p.mdns', fromEnv: false });
  const requestTimeoutMs = numberOption(p2pIn.requestTimeoutMs, 'p2p.requestTimeoutMs', env, undefined, DEFAULTS.requestTimeoutMs,
    { min: 1, max: 600_000, integer: true });
  const dialTimeoutMs = numberOption(p2pIn.dialTimeoutMs, 'p2p.dialTimeoutMs', env, undefined, DEFAULTS.dialTimeoutMs,
    { min: 1, max: 600_000, integer: true });
  const maxFrameBytes = numberOption(p2pIn.maxFrameBytes, 'p2p.maxFrameBytes', env, undefined, DEFAULTS.maxFrameBytes,
    { min: 1024, max: 256 * 1024 * 1024, integer: true });
  const maxEntryTtl = numberOption(p2pIn.maxEntryTtl, 'p2p.maxEntryTtl', env, undefined, DEFAULTS.maxEntryTtl,
    { min: 1, max: 365 * 86_400, integer: false });

  if (options.logSink !== undefined && (typeof options.logSink !== 'object' || typeof options.logSink.warn !== 'function' || typeof options.logSink.error !== 'function')) {
    throw new CacheConfigError('logSink', 'expected an object with warn(component, message) and error(component, message)');
  }
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new CacheConfigError('now', `expected a function returning ms since the epoch, got ${show(options.now)}`);
  }

  return Object.freeze({
    cacheDir,
    defaultTtl,
    ttlByOperation: Object.freeze(ttlByOperation),
    maxEntries,
    maxBytes,
    persistence,
    githubApiUrl,
    maxRateLimitWait,
    maxConcurrentPerScope,
    upstreamTimeoutMs,
    closeTimeoutMs,
    p2p: Object.freeze({
      enabled, listenPort, listenHost, bootstrapPeers: Object.freeze(bootstrapPeers), sharedSecret, mdns,
      requestTimeoutMs, dialTimeoutMs, maxFrameBytes, maxEntryTtl,
    }),
    logSink: options.logSink,
    now: options.now ?? Date.now,
  });
}

/** The TTL in seconds of a key: by its operation (the part before the first `:`), else the default. */
export function ttlForKey(key: string, options: Pick<ResolvedCacheOptions, 'ttlByOperation' | 'defaultTtl'>): number {
  const colon = key.indexOf(':');
  const operation = colon === -1 ? key : key.slice(0, colon);
  return Object.hasOwn(options.ttlByOperation, operation) ? options.ttlByOperation[operation]! : options.defaultTtl;
}
