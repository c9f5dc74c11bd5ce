import { CacheConfigError } from './errors.js';
import { OPTION_TABLE, show, type OptionPath, type OptionRow, type OptionSource, type ResolvedSoFar } from './options-table.js';

/**
 * resolveOptions: explicit options win over environment variables, which win over defaults; every value is
 * checked against its row of OPTION_TABLE (src/options-table.ts), and a bad one is refused with a
 * CacheConfigError naming the option, the value and what is accepted. Nothing is resolved half-way.
 */

export type { CacheOptions, P2POptions, ResolvedCacheOptions, ResolvedP2POptions } from './options-types.js';
import type { CacheOptions, P2POptions, ResolvedCacheOptions } from './options-types.js';

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
    maxParsedValues: get('maxParsedValues'),
    maxBytes: get('maxBytes'),
    maxEntryBytes: get('maxEntryBytes'),
    persistence: get('persistence'),
    githubApiUrl: get('githubApiUrl'),
    githubUploadsUrl: get('githubUploadsUrl'),
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
      membership: get('p2p.membership'),
      mdns: get('p2p.mdns'),
      keepAlive: get('p2p.keepAlive'),
      requestTimeoutMs: get('p2p.requestTimeoutMs'),
      dialTimeoutMs: get('p2p.dialTimeoutMs'),
      startWaitMs: get('p2p.startWaitMs'),
      maxFrameBytes: get('p2p.maxFrameBytes'),
      maxEntryTtl: get('p2p.maxEntryTtl'),
      handoff: get('p2p.handoff'),
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
