import type { CacheEntry } from './entry.js';
import type { RequestKeyParts } from './request-key.js';

/**
 * Ports of the cache: what the read path needs of the world, declared here and implemented elsewhere.
 * `src/github/` implements `Origin`, `src/p2p/` implements `Fleet`, `src/store/` implements `EntryStore`;
 * `src/cache/` depends on these interfaces only and imports none of those folders. The composition root
 * (`src/github-api-cache.ts`) wires them together.
 */

export type { EntryStore } from './entry-store.js';

/** One HTTP exchange the cache asks its origin to make. Header names are lowercase; no Authorization. */
export interface OriginRequest {
  readonly method: string;
  /** Absolute URL, as the caller built it (not the normalized key URL). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array | undefined;
  /** The caller's credential: sent upstream in Authorization only, never stored. */
  readonly token?: string | undefined;
  /** The Authorization scheme the caller used (GitHub accepts an App's JWT only as Bearer). Default: Bearer for a JWT, else token. */
  readonly scheme?: 'token' | 'bearer' | undefined;
  /** 'follow' (default): the final answer after redirects, as Octokit gets it; 'manual': a 3xx as GitHub sent it. */
  readonly redirect?: 'follow' | 'manual' | undefined;
  /** The token's scope id (rate limits are kept per scope). */
  readonly scopeId: string;
  /** Aborts the exchange: the cache's shutdown signal, combined with the caller's where one caller waits alone. */
  readonly signal: AbortSignal;
}

/** What the origin answered. Header names are lowercase, hop-by-hop headers dropped. */
export interface OriginResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The body, byte for byte as GitHub sent it. */
  readonly body: Uint8Array;
  /** GitHub's `message` of an error answer (status >= 400). */
  readonly message?: string | undefined;
  /** Set when the answer is a rate-limit refusal: no request of this scope goes out before this time (ms since the epoch). */
  readonly rateLimitedUntil?: number | undefined;
  /** The URL that answered, after redirects. */
  readonly url?: string | undefined;
}

/** What GitHub last said about one scope's rate limit. Keys are scope ids, never tokens. */
export interface ScopeRateLimit {
  limit?: number | undefined;
  remaining?: number | undefined;
  used?: number | undefined;
  /** When the window resets, ms since the epoch. */
  reset?: number | undefined;
  resource?: string | undefined;
  /** No request of this scope is sent before this time (ms since the epoch); 0 when not blocked. */
  blockedUntil: number;
  /** Rate-limit refusals GitHub answered for this scope. */
  limited: number;
}

/**
 * The origin: GitHub. `admit` waits while the request's scope is paused by GitHub's rate limit (at most
 * `maxRateLimitWait`, and not at all when `mayWait` is false) and rejects with RateLimitError when it may
 * not wait, and with TokenHostError when a request with a token names a host the token may not go to;
 * `send` makes one exchange and resolves with any status GitHub answered, recording what it says
 * about rate limits; it rejects with UpstreamError (status 0) when no answer came (reset, refused, timeout),
 * and with the signal's reason when aborted.
 */
export interface Origin {
  admit(request: { scopeId: string; url: string; mayWait: boolean; signal: AbortSignal; refusal?: string; withToken?: boolean }): Promise<void>;
  send(request: OriginRequest): Promise<OriginResponse>;
  /** Whether `url` is under the configured GitHub API (only such requests are shared with peers). */
  isApiUrl(url: string): boolean;
  /** What GitHub last said per scope. */
  rateLimits(): Record<string, ScopeRateLimit>;
  /** The x-ratelimit-* headers of the scope's window for `url` as GitHub last sent them; {} when unknown. */
  rateLimitHeaders(scopeId: string, url: string): Readonly<Record<string, string>>;
  /** A number that changes whenever any scope's rate-limit headers may have changed (so a caller can keep what it built from them). */
  readonly rateLimitVersion: number;
}

/**
 * The key's lease (a blind owner's, see docs/p2p-protocol.md): the fleet's other askers of the key wait while
 * this node fetches it. `end` must be called once the fetch is over, whatever happened: with the fresh entry
 * fetched (it answers them), or undefined: the fetch failed (5xx, network; the next waiter gets the lease), or,
 * `unshareable`, its answer is not to be shared (no-store, a redirect, a 4xx: every waiter fetches it itself at
 * once). Idempotent (only the first call counts); never throws.
 */
export interface FleetLease {
  end(entry: CacheEntry | undefined, unshareable?: boolean): void;
}

/** What the fleet answered for a key. 'self' with a lease: fetch it, then end the lease (FleetLease). */
export type FleetAnswer =
  | { readonly kind: 'self'; readonly lease?: FleetLease | undefined }
  | { readonly kind: 'entry'; readonly entry: CacheEntry; readonly peerId: string }
  | { readonly kind: 'unavailable'; readonly reason: string };

/** Counters and gauges of the P2P host. */
export interface FleetStats {
  /** This node's peer id. */
  peerId: string;
  /** Its listen multiaddrs, with /p2p/<id>. */
  listenAddrs: string[];
  /** Peers with an open connection. */
  connectedPeers: number;
  /** Peers speaking the protocol; `scopes` counts the scopes they proved that this node holds too. */
  peers: Array<{ id: string; scopes: number }>;
  /** `get`s sent to owners. */
  requestsSent: number;
  /** Verified entries received. */
  entriesReceived: number;
  /** Entries sent as owner. */
  requestsServed: number;
  /** Hand-off asks sent: this node owned a key it lacked, soon after the member set changed, and asked its previous holder. */
  handoffsSent: number;
  /** Verified entries those hand-off asks brought (also counted in entriesReceived): upstream requests saved. */
  handoffEntries: number;
  /** As a blind owner (a key owned in a scope this node does not hold): leases handed to askers. */
  leasesGranted: number;
  /** As a blind owner: sealed entries answered unread (kept from a lease holder's put, or relayed to its waiters). */
  blindServed: number;
  /** Leases this node took: it fetched a key for the fleet and put (or released) it. */
  leasesTaken: number;
  /**
   * Rejected data by reason: envelope reasons ('decrypt', 'schema', 'digest', 'key', 'future', 'ttl', 'unsealed') and 'frame',
   * 'oversize', 'proof', 'request', 'protocol', 'truncated', 'withheld'; invalidation notices: 'notice' (malformed,
   * oversized or unfinished: a strike), 'notice-scope' (a scope the sender did not prove), 'notice-rate' (over the
   * sender's rate).
   */
  rejected: Record<string, number>;
  /** Requests whose owner did not answer within requestTimeoutMs. */
  timeouts: number;
  /** Invalidation notices (one per written URL and peer) handed to peers. */
  invalidationsSent: number;
  /** Invalidation notices from peers that were applied (within their sender's rate; scopes checked). */
  invalidationsReceived: number;
  /** Invalidation notices not delivered: the peer failed or was gone, or its queue was full. */
  invalidationsDropped: number;
  /** Peers disconnected because they kept sending bad data. */
  disconnectedForAbuse: number;
  /** The TCP port actually bound. */
  boundPort: number;
  /** Whether the configured port was taken and an ephemeral one is used. */
  portFallback: boolean;
  /** How the shared secret admits members (`p2p.membership`): members of the other mode never connect to this node. */
  membership: 'handshake' | 'pnet';
}

/** How a key is asked of the fleet (see Fleet.fetch). */
export interface FleetFetchOptions {
  /** This node serves the key as its owner, for a peer: only a hand-off ask (see Fleet.fetch). */
  readonly asOwner?: boolean | undefined;
  /** The caller refused the entry the fleet answered before (see Fleet.fetch). */
  readonly refresh?: boolean | undefined;
  /**
   * The parts the caller made `key` from (`formatRequestKey(parts)`): the fleet takes them instead of parsing the
   * key again (in the flow of a peer hit the parse and its URL check were ~3 µs). Parts this node made or parsed
   * itself, never a peer's claim.
   */
  readonly parts?: RequestKeyParts | undefined;
}

/**
 * The fleet: the other members of the private network. `fetch` never throws for peer failures: it answers
 * 'self' (this node owns the key and no previous holder had it, or a blind owner gave it the key's lease: go to
 * the origin, then end the lease if there is one), 'entry' (a verified entry) or 'unavailable'.
 */
export interface Fleet {
  /**
   * `asOwner`: this node serves the key as its owner (for a peer that asked it): the fleet only asks the key's
   * previous holder, if ownership moved recently, and never forwards the ask ('entry', else 'self').
   * `refresh`: the caller refused the entry the fleet answered for the key (stale by its clock, older than what
   * it holds, or stored before a write it was told of): an owner that kept it blind drops it and leases the key out.
   */
  fetch(key: string, scopeId: string, signal?: AbortSignal, options?: FleetFetchOptions): Promise<FleetAnswer>;
  /**
   * After a write this node made with a token of `scopeId` succeeded (and its own entries were dropped): tells
   * every peer to drop its entries of `resource` (a normalized URL without query or trailing slash), what lies
   * below it and its collection, in the scopes it may. Fire and forget: returns at once, never throws.
   */
  invalidate(resource: string, scopeId: string): void;
  stats(): FleetStats;
  /**
   * Calls `listener` synchronously each time a session comes up (a peer's hello arrived) or ends, so a start-up
   * wait counts `stats().peers` then and never on a timer. Returns an unsubscribe.
   */
  onSessionsChanged(listener: () => void): () => void;
  /** Idempotent; once it resolves the port is released and no timer or socket is left. */
  stop(): Promise<void>;
}

/**
 * The scopes whose tokens this node holds, lent by the cache to the fleet. Tokens never leave the vault:
 * the fleet sees scope ids and the per-scope entry keys only.
 */
export interface ScopeKeys {
  /** The entry key (the AEAD key of its sealed entries) for a scope whose token this node holds (anonymous: undefined). */
  entryKey(scopeId: string): Uint8Array | undefined;
  /** Scope ids held, the anonymous scope first. */
  heldScopes(): readonly string[];
  /** Calls `listener` (on a later tick, never inside the token path) when a scope is first held. Returns an unsubscribe. */
  onScopeAdded(listener: (scopeId: string) => void): () => void;
}

/** What the cache lends the fleet so this node can serve as a key's owner. */
export interface FleetHost {
  /**
   * As the key's owner: the fresh entry, or the one upstream request made with this node's own token of the
   * key's scope (under the same singleflight as local callers). undefined when this node holds no token of
   * that scope, the URL is not under the GitHub API, or GitHub failed. `parts` is the parsed key.
   */
  serveAsOwner(key: string, signal: AbortSignal, parts: RequestKeyParts): Promise<CacheEntry | undefined>;
  /** serveAsOwner's first step alone, synchronously: the fresh entry held now, else undefined (nothing counted). */
  heldEntry(key: string, parts: RequestKeyParts): CacheEntry | undefined;
  /**
   * A peer's invalidation notice: drops the entries of `resource` (a normalized URL without query or trailing
   * slash), below it and of its collection, of the given scopes only (the fleet checked that the peer may name
   * them), as a local write to it would. Ignores a URL not under the GitHub API. Returns how many entries went.
   */
  invalidateFromPeer(resource: string, scopeIds: readonly string[]): number;
  readonly scopes: ScopeKeys;
}

/** Starts the fleet for a cache; the composition root supplies the P2P implementation. */
export type FleetFactory = (host: FleetHost, signal: AbortSignal) => Promise<Fleet>;
