import type { LogSink } from './log.js';

/**
 * The option types: what a caller may pass (CacheOptions) and what the cache runs with once resolved
 * (ResolvedCacheOptions). Each field's range, default, variable and flag are in the options table
 * (src/options-table.ts); src/options.ts resolves them.
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
  /** Secret shared by the fleet; only nodes holding it connect (see `membership`). Required when enabled. [CACHE_P2P_SHARED_SECRET] */
  sharedSecret?: string;
  /**
   * How the shared secret keeps outsiders off. 'handshake': a key derived from it is bound into every connection's
   * noise handshake (its prologue), so a node without it fails the handshake; 'pnet': libp2p's private network
   * (XSalsa20 under a key derived from it, beneath noise), as members before 2026-12 ran. The two modes do not
   * connect to each other. [CACHE_P2P_MEMBERSHIP] Default: 'handshake'.
   */
  membership?: 'handshake' | 'pnet';
  /** Discover peers on the LAN with mDNS. Default: false. */
  mdns?: boolean;
  /** Whether the P2P host keeps the process alive by itself (a server's listener does that anyway). Default: false; `serve` sets it. */
  keepAlive?: boolean;
  /** How long an asker waits for a key's owner before going upstream itself, in ms. Default: 2000. */
  requestTimeoutMs?: number;
  /** Abort a dial after this many ms (a wrong network key otherwise fails only after ~6 s). Default: 1500. */
  dialTimeoutMs?: number;
  /** While the P2P host is still starting, a request that would go to GitHub waits up to this many ms for it (local hits never wait). Default: 0. */
  startWaitMs?: number;
  /** Largest frame accepted from a peer, in bytes. Default: 4 MiB. */
  maxFrameBytes?: number;
  /** Largest TTL accepted on an entry from a peer, in seconds. Default: 3600. */
  maxEntryTtl?: number;
  /** Whether a key's new owner asks its previous holder before GitHub, for `maxEntryTtl` after the member set changed. Default: true. */
  handoff?: boolean;
}

/** Options of a GitHubAPICache. Every field is optional; the defaults are documented per field. */
export interface CacheOptions {
  /** Directory of the SQLite database and the peer identity. [CACHE_DIR] Default: `$XDG_CACHE_HOME/github-p2p-cache` or `~/.cache/github-p2p-cache`. */
  cacheDir?: string;
  /** TTL in seconds for keys whose operation has no TTL of its own. [CACHE_DEFAULT_TTL] Default: 300. */
  defaultTtl?: number;
  /** TTL in seconds per operation (a key's part before the first `:`), merged over the built-in table. */
  ttlByOperation?: Record<string, number>;
  /** Most entries kept; the least recently used is evicted past it. [CACHE_MAX_ENTRIES] Default: 10,000 (about 85 MB of RSS for 4 KB bodies with GitHub's headers; see docs/operations.md, Sizing). */
  maxEntries?: number;
  /** Most bytes of bodies kept on disk. Default: 256 MiB. */
  maxBytes?: number;
  /** Entries read through `cache.request` or `get` that keep their parsed value (the most recently read). Default: 10,000 (as `maxEntries`). */
  maxParsedValues?: number;
  /** Largest body kept, in bytes; larger answers are passed on, not stored. [CACHE_MAX_ENTRY_BYTES] Default: 10 MiB. */
  maxEntryBytes?: number;
  /** 'auto': SQLite, degrading to memory-only with a warning if it cannot be used; 'required': fail instead; 'off': memory only. Default: 'auto'. */
  persistence?: 'auto' | 'required' | 'off';
  /** Base URL of the GitHub REST API. [GITHUB_API_URL] Default: 'https://api.github.com'. */
  githubApiUrl?: string;
  /** Where release assets are uploaded; with githubApiUrl, the only places a token is sent. [GITHUB_UPLOADS_URL] Default: https://uploads.github.com for api.github.com, else `<origin>/api/uploads`. */
  githubUploadsUrl?: string;
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
  readonly membership: 'handshake' | 'pnet';
  readonly mdns: boolean;
  readonly keepAlive: boolean;
  readonly requestTimeoutMs: number;
  readonly dialTimeoutMs: number;
  readonly startWaitMs: number;
  readonly maxFrameBytes: number;
  readonly maxEntryTtl: number;
  readonly handoff: boolean;
}

export interface ResolvedCacheOptions {
  readonly cacheDir: string;
  readonly defaultTtl: number;
  readonly ttlByOperation: Readonly<Record<string, number>>;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly maxParsedValues: number;
  readonly maxEntryBytes: number;
  readonly persistence: 'auto' | 'required' | 'off';
  readonly githubApiUrl: string;
  readonly githubUploadsUrl: string;
  readonly maxRateLimitWait: number;
  readonly maxConcurrentPerScope: number;
  readonly upstreamTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly p2p: ResolvedP2POptions;
  readonly logSink: LogSink | undefined;
  readonly now: () => number;
}

