/**
 * What the compare benchmark's parent (bench/compare/index.ts) and its client processes (member.ts) say to
 * each other over IPC: one request, one reply with the same id. Types only.
 */

/** Where a client's own clock comes from once the benchmark moves time on. */
export type ClockMode =
  /** Third-party clients read `Date.now`: it is replaced in their process. */
  | 'patch-date-now'
  /** This library takes a `now` option: it is injected, `Date.now` stays real. */
  | 'inject';

/** One client under test, built inside a member process. */
export type ClientConfig =
  /** Node's own fetch, no cache: against the fake GitHub (the baseline) or against the proxy. */
  | { kind: 'fetch'; baseUrl: string }
  /** undici 7: `Agent().compose(deduplicate(), cache({ type: 'private' }))`, memory store, `request` API. */
  | { kind: 'undici'; baseUrl: string }
  /** make-fetch-happen 15 with a cacache directory. */
  | { kind: 'make-fetch-happen'; baseUrl: string; cacheDir: string }
  /** This library, `cache.request`; with `p2p` a fleet member. */
  | { kind: 'cache-request'; baseUrl: string; cacheDir: string; p2p?: { sharedSecret: string; bootstrapPeers: string[] } }
  /** This library through `@octokit/core` + githubCachePlugin. */
  | { kind: 'octokit'; baseUrl: string; cacheDir: string }
  /** This library behind startProxy; serves others, runs no workload itself. */
  | { kind: 'proxy-host'; baseUrl: string; cacheDir: string }
  /** A bare node:http server answering every path with one body fetched once from `baseUrl`: the HTTP floor. */
  | { kind: 'static-host'; baseUrl: string; path: string };

export type Command =
  | { type: 'setup'; client: ClientConfig; token: string; owner: string }
  /** GETs `/repos/{owner}/{repo}` for each repo, `inFlight` workers pulling from the list. */
  | { type: 'run'; repos: string[]; inFlight: number }
  /** The same warm repo `iterations` times, one after the other; `variant` picks another API of the client. */
  | { type: 'hit'; repo: string; iterations: number; warmup: number; variant?: string }
  /** One GET of an arbitrary path (the scope warm-up of a fleet). */
  | { type: 'get'; path: string }
  /** Moves this process's clock to real time + offsetMs. */
  | { type: 'clock'; offsetMs: number }
  /** Collects garbage, then reports memory. */
  | { type: 'memory' }
  /** The library's `getStats()` (fleet members: peers, scopes). */
  | { type: 'stats' }
  /** Closes the client (cache, agent, proxy); the process exits after the reply. */
  | { type: 'close' };

export type Request = Command & { id: number };

export type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: string };

/** The first message of a member once its client is built. */
export interface Ready {
  type: 'ready';
  pid: number;
  /** The server's URL (proxy-host, static-host). */
  url?: string;
  /** Loopback multiaddrs of the P2P host (fleet members). */
  listenAddrs?: string[];
}

export interface RunResult {
  /** Per request, as the worker saw it. */
  latenciesNs: number[];
  wallNs: number;
  statuses: Record<string, number>;
  /** What the client said about each answer, where it says anything (cache source, make-fetch-happen status). */
  sources: Record<string, number>;
  errors: number;
  firstError?: string;
}

export interface MemoryReport {
  rss: number;
  heapUsed: number;
  /** Peak RSS of the process so far, bytes. */
  maxRss: number;
}
