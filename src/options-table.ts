/**
 * The options table: every option of a GitHubAPICache, once. Each row names the option's path, environment
 * variable, command-line flag, type, valid values, default and a one-line doc, and says how a given value is
 * read. `resolveOptions` (src/options.ts) walks the rows in order, the CLI declares its cache flags from them
 * (bin/cache-flags.ts), and the configuration tables of README.md and docs/operations.md are generated from
 * them (src/options-docs.ts, `npm run docs:options`). Adding an option means adding a row here and its field to
 * the option types in src/options-types.ts.
 *
 * Text in `doc`, `accepts` and `defaultText` is Markdown (code spans only): the help output drops the backticks.
 * Size: one row per option; the table is read as one unit, and splitting it would scatter the options.
 */
import { multiaddr } from '@multiformats/multiaddr';
import os from 'node:os';
import path from 'node:path';
import { CacheConfigError } from './errors.js';
import type { ResolvedCacheOptions, ResolvedP2POptions } from './options-types.js';

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
  maxEntries: 10_000,
  maxBytes: 256 * 1024 * 1024,
  maxEntryBytes: 10 * 1024 * 1024,
  maxParsedValues: 10_000,
  persistence: 'auto' as const,
  membership: 'handshake' as const,
  githubApiUrl: 'https://api.github.com',
  maxRateLimitWait: 0,
  maxConcurrentPerScope: 10,
  upstreamTimeoutMs: 30_000,
  closeTimeoutMs: 5_000,
  listenPort: 9100,
  listenHost: '0.0.0.0',
  requestTimeoutMs: 2_000,
  dialTimeoutMs: 1_500,
  startWaitMs: 0,
  /** p2p.startWaitMs of a member with bootstrap peers (a fleet member). */
  fleetStartWaitMs: 5_000,
  maxFrameBytes: 4 * 1024 * 1024,
  maxEntryTtl: 3_600,
});

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg !== undefined && xdg !== '' ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'github-p2p-cache');
}

/** An option's path: a top-level name (`maxEntries`) or `p2p.` and a P2P option's name (`p2p.listenPort`). */
export type OptionPath = Exclude<keyof ResolvedCacheOptions, 'p2p'> | `p2p.${keyof ResolvedP2POptions}`;

/** The resolved type of the option at `P`. */
export type OptionValue<P extends OptionPath> = P extends `p2p.${infer K extends keyof ResolvedP2POptions}`
  ? ResolvedP2POptions[K]
  : P extends keyof ResolvedCacheOptions ? ResolvedCacheOptions[P] : never;

/** Where a value came from: the option path, or the environment variable, named in error messages. */
export interface OptionSource {
  readonly name: string;
  readonly fromEnv: boolean;
}

/** The values resolved so far, for rows whose default or check depends on an earlier row. */
export interface ResolvedSoFar {
  get<P extends OptionPath>(path: P): OptionValue<P>;
}

/** How an option is typed; the CLI parses flag values by it and the docs show it. */
export type OptionType =
  | 'integer' | 'number' | 'port' | 'boolean' | 'choice' | 'path' | 'string' | 'url' | 'secret' | 'multiaddrs'
  | 'seconds per operation' | 'log sink' | 'function';

export interface OptionFlag {
  /** `--listen-port`. */
  readonly name: string;
  /** The value placeholder in help, `<port>`; absent for a switch (a boolean), which also gets `--no-…`. */
  readonly value?: string;
  /** Printed as a warning when the flag is used: why the environment variable is the better way. */
  readonly warning?: string;
}

export interface OptionRow {
  readonly path: OptionPath;
  readonly env?: string;
  readonly flag?: OptionFlag;
  readonly type: OptionType;
  /** Unit of a number (`seconds`, `ms`, `bytes`), shown with the type. */
  readonly unit?: string;
  /** Bounds of a number, inclusive. */
  readonly range?: { readonly min: number; readonly max: number };
  /** Values of a `choice`. */
  readonly choices?: readonly string[];
  /** Valid values, in words. */
  readonly accepts: string;
  readonly defaultText: string;
  readonly doc: string;
  /** The resolved value of a given one (an explicit option, or a trimmed non-empty environment value). */
  readonly parse: (value: unknown, source: OptionSource, resolved: ResolvedSoFar) => unknown;
  /** The resolved value when neither an option nor its environment variable is set. */
  readonly fallback: (env: NodeJS.ProcessEnv, resolved: ResolvedSoFar) => unknown;
}

/** Shows a value in an error message; secrets are never shown. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

function toNumber(value: unknown, source: OptionSource, { min, max, integer }: { min: number; max: number; integer: boolean }): number {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (source.fromEnv && typeof value === 'string' && /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(value)) n = Number(value);
  else throw new CacheConfigError(source.name, `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${show(value)}`);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new CacheConfigError(source.name, `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${show(value)}`);
  }
  return n;
}

function toBoolean(value: unknown, source: OptionSource): boolean {
  if (typeof value === 'boolean') return value;
  if (source.fromEnv && typeof value === 'string') {
    const v = value.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
  }
  throw new CacheConfigError(source.name, `expected ${source.fromEnv ? 'one of 1/true/yes/on or 0/false/no/off' : 'a boolean'}, got ${show(value)}`);
}

function toString(value: unknown, source: OptionSource): string {
  if (typeof value !== 'string' || value === '') throw new CacheConfigError(source.name, `expected a non-empty string, got ${show(value)}`);
  return value;
}

/** 31536000 as `31,536,000`. */
export function formatNumber(n: number): string {
  return n.toLocaleString('en-US');
}

/** A number row: its type, range, default and parsing follow from the bounds. */
function numeric(row: {
  path: OptionPath; env?: string; flag?: OptionFlag; type: 'integer' | 'number' | 'port'; unit?: string;
  min: number; max: number; default: number; defaultNote?: string; doc: string;
}): OptionRow {
  const integer = row.type !== 'number';
  const bounds = { min: row.min, max: row.max, integer };
  const accepts = row.max === Number.MAX_SAFE_INTEGER ? `at least ${formatNumber(row.min)}` : `${formatNumber(row.min)} to ${formatNumber(row.max)}`;
  return {
    path: row.path, env: row.env, flag: row.flag, type: row.type, unit: row.unit, range: { min: row.min, max: row.max },
    accepts,
    defaultText: `\`${row.default}\`${row.defaultNote === undefined ? '' : ` (${row.defaultNote})`}`,
    doc: row.doc,
    parse: (value, source) => toNumber(value, source, bounds),
    fallback: () => row.default,
  };
}

const MAX_TTL_SECONDS = 365 * 86_400;
const PERSISTENCE_MODES = ['auto', 'required', 'off'] as const;
const MEMBERSHIP_MODES = ['handshake', 'pnet'] as const;

/** Every option, in the order `resolveOptions` reads them (the shared secret before `p2p.enabled`, which needs it). */
export const OPTION_TABLE: readonly OptionRow[] = Object.freeze([
  {
    path: 'cacheDir', env: 'CACHE_DIR', flag: { name: '--cache-dir', value: '<dir>' }, type: 'path',
    accepts: 'non-empty path, made absolute',
    defaultText: '`$XDG_CACHE_HOME/github-p2p-cache` (when set and not empty), else `~/.cache/github-p2p-cache`',
    doc: 'directory of the SQLite cache (`cache.sqlite`) and the peer identity (`p2p/`)',
    parse: (value, source) => path.resolve(toString(value, source)),
    fallback: (env) => defaultCacheDir(env),
  },
  numeric({
    path: 'defaultTtl', env: 'CACHE_DEFAULT_TTL', flag: { name: '--default-ttl', value: '<seconds>' }, type: 'number', unit: 'seconds',
    min: 0, max: MAX_TTL_SECONDS, default: DEFAULTS.defaultTtl,
    doc: 'how long an answer stays fresh when GitHub sends no `max-age`; also the TTL of `put` keys whose operation has none',
  }),
  {
    path: 'ttlByOperation', type: 'seconds per operation',
    accepts: `object of seconds (0 to ${formatNumber(MAX_TTL_SECONDS)}), merged over the built-in table`,
    defaultText: Object.entries(DEFAULT_TTL_BY_OPERATION).map(([op, ttl]) => `\`${op}\` ${ttl}`).join(', '),
    doc: 'TTL per operation of the key/value API (a key\'s part before the first `:`)',
    parse: (value) => {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new CacheConfigError('ttlByOperation', `expected an object of seconds, got ${show(value)}`);
      }
      const ttls: Record<string, number> = { ...DEFAULT_TTL_BY_OPERATION };
      for (const [op, ttl] of Object.entries(value)) {
        ttls[op] = toNumber(ttl, { name: `ttlByOperation.${op}`, fromEnv: false }, { min: 0, max: MAX_TTL_SECONDS, integer: false });
      }
      return Object.freeze(ttls);
    },
    fallback: () => Object.freeze({ ...DEFAULT_TTL_BY_OPERATION }),
  },
  numeric({
    path: 'maxEntries', env: 'CACHE_MAX_ENTRIES', flag: { name: '--max-entries', value: '<n>' }, type: 'integer',
    min: 1, max: 100_000_000, default: DEFAULTS.maxEntries,
    doc: 'entries kept before the least recently used is evicted; one budget for the whole cache (SQLite decides what is kept; memory follows). About 8.5 KB of RSS per 4 KB entry with GitHub\'s headers, before any parsed value: 10,000 ≈ 85 MB (docs/operations.md, Sizing)',
  }),
  numeric({
    path: 'maxParsedValues', type: 'integer',
    min: 0, max: 100_000_000, default: DEFAULTS.maxParsedValues,
    doc: 'entries read through `cache.request` or `get` that keep their parsed value beside their bytes (the most recently read); each costs about 4.5 KB of RSS per 4 KB JSON body and saves a parse of about 6 µs per later read on Node 22 (9 KB and 30-40 µs on Node 20; bench/memory.ts); lower it where reads repeat on a small hot set; 0: parse on every read',
  }),
  numeric({
    path: 'maxBytes', flag: { name: '--max-bytes', value: '<bytes>' }, type: 'integer', unit: 'bytes',
    min: 1024, max: Number.MAX_SAFE_INTEGER, default: DEFAULTS.maxBytes, defaultNote: '256 MiB',
    doc: 'most bytes of distinct response bodies kept in SQLite; least recently used entries are evicted past it',
  }),
  numeric({
    path: 'maxEntryBytes', env: 'CACHE_MAX_ENTRY_BYTES', flag: { name: '--max-entry-bytes', value: '<bytes>' }, type: 'integer', unit: 'bytes',
    min: 0, max: Number.MAX_SAFE_INTEGER, default: DEFAULTS.maxEntryBytes, defaultNote: '10 MiB',
    doc: 'largest body kept (JSON, raw text, diffs, archives and release assets alike); larger answers are passed on, not stored',
  }),
  {
    path: 'persistence', flag: { name: '--persistence', value: '<mode>' }, type: 'choice', choices: PERSISTENCE_MODES,
    accepts: PERSISTENCE_MODES.map((mode) => `\`${mode}\``).join(', '),
    defaultText: `\`${DEFAULTS.persistence}\``,
    doc: '`auto`: SQLite, or memory-only with a warning if it cannot be opened; `required`: fail instead; `off`: memory only',
    parse: (value) => {
      if (!(PERSISTENCE_MODES as readonly unknown[]).includes(value)) {
        throw new CacheConfigError('persistence', `expected 'auto', 'required' or 'off', got ${show(value)}`);
      }
      return value;
    },
    fallback: () => DEFAULTS.persistence,
  },
  {
    path: 'githubApiUrl', env: 'GITHUB_API_URL', flag: { name: '--github-api-url', value: '<url>' }, type: 'url',
    accepts: 'http(s) URL without credentials; a trailing `/` is removed',
    defaultText: `\`${DEFAULTS.githubApiUrl}\``,
    doc: 'base URL of the GitHub REST API (GitHub Enterprise Server: `https://ghe.example.com/api/v3`)',
    parse: (value, source) => parseApiUrl(value, source),
    fallback: () => DEFAULTS.githubApiUrl,
  },
  {
    path: 'githubUploadsUrl', env: 'GITHUB_UPLOADS_URL', flag: { name: '--github-uploads-url', value: '<url>' }, type: 'url',
    accepts: 'http(s) URL without credentials; a trailing `/` is removed',
    defaultText: '`https://uploads.github.com` for api.github.com; else `<origin of githubApiUrl>/api/uploads`',
    doc: 'where release assets are uploaded; with githubApiUrl, the only places a token is ever sent',
    parse: (value, source) => parseApiUrl(value, source),
    fallback: (_env, resolved) => {
      const api = new URL(resolved.get('githubApiUrl') as string);
      return api.origin === 'https://api.github.com' ? 'https://uploads.github.com' : `${api.origin}/api/uploads`;
    },
  },
  numeric({
    path: 'maxRateLimitWait', flag: { name: '--max-rate-limit-wait', value: '<seconds>' }, type: 'number', unit: 'seconds',
    min: 0, max: 86_400, default: DEFAULTS.maxRateLimitWait,
    doc: 'how long a request may wait for a rate-limited token to reset before failing with `RateLimitError`',
  }),
  numeric({
    path: 'maxConcurrentPerScope', flag: { name: '--max-concurrent-per-scope', value: '<n>' }, type: 'integer',
    min: 1, max: 100, default: DEFAULTS.maxConcurrentPerScope,
    doc: 'concurrent upstream requests per token scope, per process; keep members x n under GitHub\'s 100',
  }),
  numeric({
    path: 'upstreamTimeoutMs', flag: { name: '--upstream-timeout', value: '<ms>' }, type: 'integer', unit: 'ms',
    min: 1, max: 600_000, default: DEFAULTS.upstreamTimeoutMs,
    doc: 'abort a request to GitHub after this long',
  }),
  numeric({
    path: 'closeTimeoutMs', flag: { name: '--close-timeout', value: '<ms>' }, type: 'integer', unit: 'ms',
    min: 0, max: 600_000, default: DEFAULTS.closeTimeoutMs,
    doc: 'how long `close()` waits for in-flight work, and `serve` for in-flight requests (per stage)',
  }),
  {
    path: 'p2p.sharedSecret', env: 'CACHE_P2P_SHARED_SECRET',
    flag: {
      name: '--shared-secret', value: '<secret>',
      warning: 'is visible to other users of this machine (ps, /proc); set CACHE_P2P_SHARED_SECRET in the environment instead',
    },
    type: 'secret',
    accepts: 'string of at least 16 characters (e.g. `openssl rand -hex 32`)',
    defaultText: 'none',
    doc: 'secret shared by the fleet: only nodes holding it connect (see `p2p.membership`); prefer the variable: arguments show in `ps`',
    parse: (value, source) => {
      if (typeof value !== 'string') throw new CacheConfigError(source.name, `expected a string, got ${show(value)}`);
      // Never echo the secret itself.
      if (value.length < 16) throw new CacheConfigError(source.name, 'the shared secret must be at least 16 characters (use a random one, e.g. `openssl rand -hex 32`)');
      return value;
    },
    fallback: () => undefined,
  },
  {
    path: 'p2p.enabled', env: 'CACHE_ENABLE_P2P', flag: { name: '--p2p' }, type: 'boolean',
    accepts: 'boolean; from the environment `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`',
    defaultText: '`true` when a shared secret is set, else `false`',
    doc: 'run the libp2p host and share entries with peers; enabling it without a shared secret is an error',
    parse: (value, source, resolved) => {
      const enabled = toBoolean(value, source);
      if (enabled && resolved.get('p2p.sharedSecret') === undefined) {
        throw new CacheConfigError(source.name, 'P2P is enabled but no shared secret is set (p2p.sharedSecret or CACHE_P2P_SHARED_SECRET): an open network would let anyone in');
      }
      return enabled;
    },
    fallback: (_env, resolved) => resolved.get('p2p.sharedSecret') !== undefined,
  },
  numeric({
    path: 'p2p.listenPort', env: 'CACHE_LISTEN_PORT', flag: { name: '--listen-port', value: '<port>' }, type: 'port',
    min: 0, max: 65_535, default: DEFAULTS.listenPort,
    doc: 'TCP port of the P2P host; 0 picks a free one',
  }),
  {
    path: 'p2p.listenHost', flag: { name: '--listen-host', value: '<address>' }, type: 'string',
    accepts: 'non-empty string',
    defaultText: `\`${DEFAULTS.listenHost}\``,
    doc: 'IP address the P2P host listens on',
    parse: (value, source) => toString(value, source),
    fallback: () => DEFAULTS.listenHost,
  },
  {
    path: 'p2p.bootstrapPeers', env: 'CACHE_BOOTSTRAP_PEERS', flag: { name: '--bootstrap-peers', value: '<multiaddrs>' }, type: 'multiaddrs',
    accepts: 'multiaddrs (each starts with `/` and must parse, else the whole option is refused naming the entry); comma-separated in the variable and the flag',
    defaultText: 'none',
    doc: 'peers to dial at start, e.g. `/ip4/10.0.0.2/tcp/9100/p2p/12D3...`',
    parse: (value, source) => {
      const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter((s) => s !== '') : value;
      if (!Array.isArray(list)) {
        throw new CacheConfigError(source.name, `expected multiaddrs such as /ip4/10.0.0.2/tcp/9100/p2p/12D3..., got ${show(value)}`);
      }
      // One rule for the variable, the flag and the library: every entry is a multiaddr, or nothing starts.
      list.forEach((entry: unknown, index) => {
        const problem = multiaddrProblem(entry);
        if (problem !== undefined) {
          throw new CacheConfigError(source.name, `entry ${index + 1} of ${list.length}, ${show(entry)}, is not a multiaddr (${problem}); ` +
            'each entry must look like /ip4/10.0.0.2/tcp/9100/p2p/12D3... (or /ip6/..., /dns4/...)');
        }
      });
      return Object.freeze([...list as string[]]);
    },
    fallback: () => Object.freeze([]),
  },
  {
    path: 'p2p.membership', env: 'CACHE_P2P_MEMBERSHIP', flag: { name: '--p2p-membership', value: '<mode>' }, type: 'choice', choices: MEMBERSHIP_MODES,
    accepts: MEMBERSHIP_MODES.map((mode) => `\`${mode}\``).join(', '),
    defaultText: `\`${DEFAULTS.membership}\``,
    doc: 'how the shared secret keeps outsiders off: `handshake`: bound into every connection\'s noise handshake (a node without it fails the handshake at once); `pnet`: libp2p\'s private network, XSalsa20 over every connection beneath noise, as members before 2026-12 ran (the two modes do not connect to each other; docs/security.md)',
    parse: (value, source) => {
      if (!(MEMBERSHIP_MODES as readonly unknown[]).includes(value)) {
        throw new CacheConfigError(source.name, `expected 'handshake' or 'pnet', got ${show(value)}`);
      }
      return value;
    },
    fallback: () => DEFAULTS.membership,
  },
  {
    path: 'p2p.mdns', type: 'boolean',
    accepts: 'boolean',
    defaultText: '`false`',
    doc: 'discover peers on the LAN with mDNS (needs `@libp2p/mdns`)',
    parse: (value, source) => toBoolean(value, source),
    fallback: () => false,
  },
  {
    path: 'p2p.keepAlive', type: 'boolean',
    accepts: 'boolean',
    defaultText: '`false` (`serve` sets it)',
    doc: 'whether the P2P host keeps the process alive by itself; off, a script ends when its own work does',
    parse: (value, source) => toBoolean(value, source),
    fallback: () => false,
  },
  numeric({
    path: 'p2p.requestTimeoutMs', flag: { name: '--peer-timeout', value: '<ms>' }, type: 'integer', unit: 'ms',
    min: 1, max: 600_000, default: DEFAULTS.requestTimeoutMs,
    doc: 'how long an asker waits for a key\'s owner before going to GitHub itself',
  }),
  numeric({
    path: 'p2p.dialTimeoutMs', type: 'integer', unit: 'ms',
    min: 1, max: 600_000, default: DEFAULTS.dialTimeoutMs,
    doc: 'abort a dial after this long (with `p2p.membership` `pnet`, a wrong shared secret otherwise fails only after about 6 s)',
  }),
  {
    ...numeric({
      path: 'p2p.startWaitMs', type: 'integer', unit: 'ms',
      min: 0, max: 600_000, default: DEFAULTS.startWaitMs,
      doc: 'while the P2P host starts, a request that would go to GitHub waits up to this long for the host to listen (from creation) and then, with bootstrap peers, up to this long again (from listening) to be in session with as many peers as it was given (local hits never wait); 0: the cache answers from its own tiers and GitHub until the host is up',
    }),
    defaultText: `\`${DEFAULTS.fleetStartWaitMs}\` with \`p2p.bootstrapPeers\` (a fleet member: its first requests are shared), else \`${DEFAULTS.startWaitMs}\``,
    fallback: (_env, resolved) => ((resolved.get('p2p.bootstrapPeers') as readonly string[] | undefined)?.length ?? 0) > 0
      ? DEFAULTS.fleetStartWaitMs : DEFAULTS.startWaitMs,
  },
  numeric({
    path: 'p2p.maxFrameBytes', type: 'integer', unit: 'bytes',
    min: 1024, max: 256 * 1024 * 1024, default: DEFAULTS.maxFrameBytes, defaultNote: '4 MiB',
    doc: 'largest frame accepted from a peer; entries above 256 KiB travel in pieces, so any entry up to 16 MiB sealed is shared',
  }),
  numeric({
    path: 'p2p.maxEntryTtl', flag: { name: '--max-peer-entry-ttl', value: '<seconds>' }, type: 'number', unit: 'seconds',
    min: 1, max: MAX_TTL_SECONDS, default: DEFAULTS.maxEntryTtl,
    doc: 'largest TTL accepted from, and sent to, a peer; keep it equal across the fleet',
  }),
  {
    path: 'p2p.handoff', type: 'boolean',
    accepts: 'boolean',
    defaultText: '`true`',
    doc: 'a key\'s new owner asks the key\'s previous holder before GitHub, for `p2p.maxEntryTtl` after this node started or a member left',
    parse: (value, source) => toBoolean(value, source),
    fallback: () => true,
  },
  {
    path: 'logSink', type: 'log sink',
    accepts: 'object with `warn(component, message)` and `error(component, message)`',
    defaultText: 'stderr',
    doc: 'where warnings and errors are written',
    parse: (value) => {
      const sink = value as { warn?: unknown; error?: unknown } | null;
      if (sink === null || typeof sink !== 'object' || typeof sink.warn !== 'function' || typeof sink.error !== 'function') {
        throw new CacheConfigError('logSink', 'expected an object with warn(component, message) and error(component, message)');
      }
      return sink;
    },
    fallback: () => undefined,
  },
  {
    path: 'now', type: 'function',
    accepts: 'function returning ms since the epoch',
    defaultText: '`Date.now`',
    doc: 'the clock, for tests and benchmarks',
    parse: (value) => {
      if (typeof value !== 'function') throw new CacheConfigError('now', `expected a function returning ms since the epoch, got ${show(value)}`);
      return value;
    },
    fallback: () => Date.now,
  },
] satisfies OptionRow[]);

/** The environment variables read, and the option each one sets. */
export const ENVIRONMENT_VARIABLES: Readonly<Record<string, OptionPath>> = Object.freeze(Object.fromEntries(
  OPTION_TABLE.filter((row) => row.env !== undefined).map((row) => [row.env!, row.path]),
));

/** The row of an option path, if there is one. */
export function optionRow(optionPath: string): OptionRow | undefined {
  return OPTION_TABLE.find((row) => row.path === optionPath);
}

/** A row's type in words, with its unit: `integer ms`, `seconds`, `port`, `path`. */
export function typeText(row: OptionRow): string {
  if (row.type === 'number') return row.unit ?? 'number';
  return row.unit === undefined ? row.type : `${row.type} ${row.unit}`;
}

/** A row's valid values in words; a number's carry its type (`integer ms, 1 to 600,000`). */
export function valuesText(row: OptionRow): string {
  return row.range === undefined ? row.accepts : `${typeText(row)}, ${row.accepts}`;
}

/** An API base URL: http(s), no credentials, no trailing slash. */
function parseApiUrl(value: unknown, source: OptionSource): string {
  const raw = toString(value, source);
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new CacheConfigError(source.name, `expected an http(s) URL, got ${show(raw)}`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CacheConfigError(source.name, `expected an http(s) URL, got ${show(raw)}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new CacheConfigError(source.name, 'credentials in the URL are not allowed; pass a token per request instead');
  }
  return url.href.replace(/\/+$/, '');
}

/** Why `entry` is not a multiaddr, or undefined when it is one. */
function multiaddrProblem(entry: unknown): string | undefined {
  if (typeof entry !== 'string') return `a ${typeof entry}, not a string`;
  if (!entry.startsWith('/')) return 'it does not start with /';
  try {
    multiaddr(entry);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
