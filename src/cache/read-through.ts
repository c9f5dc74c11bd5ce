import { RateLimitError, UpstreamError } from '../errors.js';
import { abortable } from './abortable.js';
import type { CacheCounters, ResponseSource } from './counters.js';
import { HTTP_PREFIX, type CacheEntry } from './entry.js';
import { entryOf, freshnessSeconds, isStorable, parseBody, PURGE_STATUSES } from './http-policy.js';
import type { Fleet, FleetHost, FleetLease, Origin, OriginResponse } from './ports.js';
import type { RequestKeyParts } from './request-key.js';
import { Singleflight } from './singleflight.js';
import type { MemoryItem, TieredEntries } from './tiered-entries.js';
import type { TokenVault } from './token-vault.js';
import { dropWritten, type RecentWrites } from './write-through.js';

/**
 * ReadThrough: how one GET travels (after groupcache's Group.load). A fresh local entry answers at once;
 * otherwise one load per key runs at a time (callers that arrive meanwhile join it): the fleet (the key's
 * owner answers from its cache or fetches once for everyone), else the origin — conditionally when an entry
 * is held, so a 304 costs no rate limit — and what HTTP allows is stored. When GitHub fails (5xx, reset,
 * timeout, rate limit) a held entry answers stale; a 401/403/404/410 drops it. Every wait listens to the
 * cache's shutdown signal; a caller's own signal stops its wait, never a load others share. While the fleet is
 * still starting, a load (never a fresh local hit) waits for it only within the bound the composition root
 * gives (`fleetStarting`), then goes on without it. A peer's entry that is stale by this node's clock, older than
 * what it holds, or stored before a peer's write it was told of is refused and the fleet asked once more with
 * `refresh` (an owner that kept it blind drops it and leases the key out). Under a lease, the fetch ends it with
 * the fresh entry, as unshareable (a 4xx, no-store, a redirect: the waiters fetch at once), or as failed.
 *
 *   read ─► fresh local? ─yes─► answer
 *             │ no
 *             ▼
 *        singleflight ─► fleet ─entry─► store ─► answer   (an owner lacking it: its previous holder, after a join)
 *                          │ self / unavailable   (self with a lease: the fetch below ends it, sharing its entry)
 *                          ▼
 *                        origin ─► store ─► answer (or stale, or error)
 */

/** One GET or HEAD to answer. */
export interface ReadRequest {
  /** The key's parts: normalized URL, method, scope id, Accept. */
  readonly parts: RequestKeyParts;
  /** formatRequestKey(parts). */
  readonly key: string;
  /** The URL to send: the caller's own (its query in the caller's order); the key holds the normalized one. Default: parts.url. */
  readonly url?: string | undefined;
  /** How the token is sent (see OriginRequest.scheme). */
  readonly scheme?: 'token' | 'bearer' | undefined;
  /** Whether GitHub's redirects are followed (default) or answered as they are (a proxy's clients follow them). */
  readonly redirect?: 'follow' | 'manual' | undefined;
  /** Headers to send upstream (lowercase; Accept and the conditional headers are set here). */
  readonly headers: Readonly<Record<string, string>>;
  readonly token: string | undefined;
  /** Seconds fresh, overriding the response's max-age. */
  readonly ttl: number | undefined;
  /** The caller's signal: stops this caller's wait only. */
  readonly signal?: AbortSignal | undefined;
}

/** What a read produced: an entry (stored or not), or an answer passed on as it came (a redirect asked for as is). */
export type ReadOutcome =
  | { readonly kind: 'entry'; readonly entry: CacheEntry; readonly source: ResponseSource;
    /** GitHub's full headers when the answer came from GitHub just now. */
    readonly headers?: Readonly<Record<string, string>> | undefined;
    /** The memory item, so a parsed body is reused. */
    readonly item?: MemoryItem | undefined;
    /** The URL that answered, after redirects, when GitHub answered just now. */
    readonly url?: string | undefined }
  | { readonly kind: 'pass'; readonly response: OriginResponse; readonly source: ResponseSource };

export interface ReadThroughParts {
  tiers: TieredEntries;
  origin: Origin;
  vault: TokenVault;
  counters: CacheCounters;
  recentWrites: RecentWrites;
  /** Resources peers wrote (their notices), with when the notice arrived: an older peer entry is not taken. */
  peerWrites: RecentWrites;
  now: () => number;
  /** Seconds fresh when neither the caller nor the response says. */
  defaultTtl: number;
  /** Largest body stored, in bytes; larger answers are passed on, not kept. */
  maxEntryBytes: number;
  /** Aborted when the cache closes: every upstream request, peer ask and rate-limit wait listens to it. */
  shutdown: AbortSignal;
}

export class ReadThrough implements FleetHost {
  readonly #p: ReadThroughParts;
  readonly #flights = new Singleflight<ReadOutcome>();
  #fleet: Fleet | undefined;
  #fleetStarting: Promise<void> | undefined;

  constructor(parts: ReadThroughParts) {
    this.#p = parts;
  }

  /** The fleet to ask before the origin (set once the P2P host runs; undefined to stop asking). */
  set fleet(fleet: Fleet | undefined) {
    this.#fleet = fleet;
    this.#fleetStarting = undefined;
  }

  /**
   * The fleet is starting: a load that would ask it (never a local hit) first waits for `started` (which settles,
   * never rejects, once the fleet is set, failed, or the wait bound passed); until then none is asked.
   */
  fleetStarting(started: Promise<void> | undefined): void {
    this.#fleetStarting = started;
  }

  get scopes(): TokenVault {
    return this.#p.vault;
  }

  /** The outcome of a read: synchronously for a fresh local hit (no promise on the hot path), else a promise. */
  read(request: ReadRequest): ReadOutcome | Promise<ReadOutcome> {
    return this.readFresh(request.key) ?? this.load(request);
  }

  /**
   * Step 1 of `read` alone: the fresh local entry of `key`, counted as answered; else undefined with the miss
   * counted, and the caller goes on with `load` (the hot path builds no ReadRequest for a hit).
   */
  readFresh(key: string): (ReadOutcome & { kind: 'entry' }) | undefined {
    const { tiers, counters, now } = this.#p;
    const found = tiers.read(HTTP_PREFIX + key);
    if (found !== undefined && now() < found.entry.expiresAt) {
      counters.answered(found.tier);
      return { kind: 'entry', entry: found.entry, source: found.tier, item: found.item };
    }
    counters.missed(found !== undefined);
    return undefined;
  }

  /** Steps 2 and on of `read`, after `readFresh` found no fresh entry (the miss is already counted). */
  async load(request: ReadRequest): Promise<ReadOutcome> {
    const { counters } = this.#p;
    // 2. One load per key: callers that arrive while it runs join it.
    const { promise, shared } = this.#flights.do(request.key, () => this.#load(request, 'owner'));
    const outcome = await abortable(promise, request.signal);
    if (!shared) return outcome;
    if (outcome.kind === 'pass') return { ...outcome, source: 'coalesced' };
    counters.answered('coalesced');
    return { kind: 'entry', entry: outcome.entry, source: 'coalesced' };
  }

  /** The fresh entry held for `key` (counted as a hit), else undefined (nothing counted): a HEAD answered from its GET. */
  peekFresh(key: string): { entry: CacheEntry; source: ResponseSource; item: MemoryItem } | undefined {
    const found = this.#p.tiers.read(HTTP_PREFIX + key);
    if (found === undefined || this.#p.now() >= found.entry.expiresAt) return undefined;
    this.#p.counters.answered(found.tier);
    return { entry: found.entry, source: found.tier, item: found.item };
  }

  /** A peer's invalidation notice: drops what a write to `resource` made stale, in the scopes given only. */
  invalidateFromPeer(resource: string, scopeIds: readonly string[]): number {
    if (!this.#p.origin.isApiUrl(resource) || scopeIds.length === 0) return 0;
    const collection = resource.slice(0, resource.lastIndexOf('/'));
    const dropped = dropWritten(this.#p.tiers, resource, collection, new Set(scopeIds));
    this.#p.peerWrites.add(resource, collection, this.#p.now());
    this.#p.counters.invalidations += dropped;
    return dropped;
  }

  /**
   * As the key's owner, for a peer: the fresh entry held, else the one load of this key, which asks the fleet
   * only for a hand-off (the key's previous holder, right after the member set changed; never forwarded).
   */
  async serveAsOwner(key: string, signal: AbortSignal, parts: RequestKeyParts): Promise<CacheEntry | undefined> {
    if (!this.#mayServe(parts)) return undefined;
    const held = this.heldEntry(key, parts);
    if (held !== undefined) return held;
    const headers: Record<string, string> = { accept: parts.accept };
    if (parts.apiVersion !== undefined) headers['x-github-api-version'] = parts.apiVersion;
    const request: ReadRequest = { parts, key, headers, token: this.#p.vault.tokenOf(parts.scopeId), ttl: undefined };
    const { promise } = this.#flights.do(key, () => this.#load(request, 'handoff'));
    try {
      const outcome = await abortable(promise, signal);
      // Only fresh answers go to peers: a stale fallback is this node's business, the asker has its own.
      return outcome.kind === 'entry' && this.#p.now() < outcome.entry.expiresAt ? outcome.entry : undefined;
    } catch {
      return undefined;
    }
  }

  heldEntry(key: string, parts: RequestKeyParts): CacheEntry | undefined {
    if (!this.#mayServe(parts)) return undefined;
    const found = this.#p.tiers.read(HTTP_PREFIX + key);
    if (found === undefined || this.#p.now() >= found.entry.expiresAt) return undefined;
    this.#p.counters.answered('owner');
    return found.entry;
  }

  /**
   * A peer may only make this node fetch from the GitHub API it is configured for (never an arbitrary URL with
   * this node's token: that would be a server-side request forgery through the fleet), in a scope it holds.
   */
  #mayServe(parts: RequestKeyParts): boolean {
    return this.#p.origin.isApiUrl(parts.url) && this.#p.vault.holds(parts.scopeId);
  }

  /**
   * The leader's work for one key: the fleet, else the origin. `owner`: ask the key's owner (a caller of this
   * node); `handoff`: this node serves the key as owner for a peer, so only its previous holder is asked.
   */
  async #load(request: ReadRequest, askFleet: 'owner' | 'handoff'): Promise<ReadOutcome> {
    const held = this.#p.tiers.read(HTTP_PREFIX + request.key)?.entry;
    // 3. The fleet: the key's owner answers from its cache, or fetches it once for the whole fleet; an owner
    // that lacks it asks its previous holder first while ownership moved recently (a member joined or left).
    const fromFleet = await this.#fromFleet(request, held, askFleet === 'handoff');
    if (fromFleet !== undefined && !('end' in fromFleet)) return fromFleet;
    // 4. The origin, conditionally when an entry is held; 5. stored as HTTP allows.
    if (fromFleet === undefined) return this.#fromOrigin(request, held);
    // Under the key's lease (the fleet's other askers of it wait for this fetch): it ends on every path, with the
    // fresh entry GitHub gave (or confirmed) to share, else with nothing (the next waiter fetches it).
    // An answer GitHub gave that is not to be shared (no-store, a redirect, a 4xx) lets every waiter go at once;
    // a failure (network, 5xx, a stale entry answered instead) passes the lease to the next waiter.
    let shared: CacheEntry | undefined;
    let unshareable = false;
    try {
      const outcome = await this.#fromOrigin(request, held);
      if (outcome.kind === 'entry' && (outcome.source === 'origin' || outcome.source === 'revalidated') && this.#p.now() < outcome.entry.expiresAt) shared = outcome.entry;
      else unshareable = outcome.source !== 'stale';
      return outcome;
    } catch (err) {
      unshareable = err instanceof UpstreamError && err.status >= 400 && err.status < 500;
      throw err;
    } finally {
      fromFleet.end(shared, unshareable);
    }
  }

  /** A verified peer entry to answer with, the key's lease when this node is to fetch it for the fleet, else undefined. */
  async #fromFleet(request: ReadRequest, held: CacheEntry | undefined, asOwner: boolean): Promise<ReadOutcome | FleetLease | undefined> {
    const { origin, recentWrites, tiers, counters, shutdown } = this.#p;
    // A resource this node wrote may still be held by its owner from before the write: ask GitHub instead.
    if (!origin.isApiUrl(request.parts.url) || recentWrites.covers(request.parts.url)) return undefined;
    // A fleet still starting: wait for it only as long as the composition root allows (`started` never rejects).
    if (this.#fleet === undefined && this.#fleetStarting !== undefined) await abortable(this.#fleetStarting, shutdown);
    const fleet = this.#fleet;
    if (fleet === undefined) return undefined;
    const { parts } = request;
    let answer = await fleet.fetch(request.key, parts.scopeId, shutdown, asOwner ? { asOwner, parts } : { parts });
    // A refused entry (below) is asked for once more with `refresh`: an owner that kept it blind drops it and
    // leases the key out, so this fetch is still the fleet's one fetch of it.
    if (answer.kind === 'entry' && !asOwner && this.#refuses(request, held, answer.entry)) {
      answer = await fleet.fetch(request.key, parts.scopeId, shutdown, { refresh: true, parts });
    }
    if (answer.kind === 'self' && answer.lease !== undefined) return answer.lease;
    if (answer.kind !== 'entry' || this.#refuses(request, held, answer.entry)) return undefined;
    // A peer's entry is kept under this node's own size limit (the owner's may be larger); it answers either way.
    if (answer.entry.body.byteLength <= this.#p.maxEntryBytes) tiers.write(HTTP_PREFIX + request.key, answer.entry);
    // Served as owner, the entry answers the asking peer, not a caller of this node: counted as served to a peer
    // (as a held entry is), so `peerHits` counts exactly the answers this node's callers got from peers.
    counters.answered(asOwner ? 'owner' : 'peer');
    return { kind: 'entry', entry: answer.entry, source: 'peer' };
  }

  /** Whether a peer's entry is refused: stale by this node's clock, older than what it holds, or stored before a peer's write it was told of. */
  #refuses(request: ReadRequest, held: CacheEntry | undefined, entry: CacheEntry): boolean {
    if (this.#p.now() >= entry.expiresAt) return true;
    if (held !== undefined && entry.storedAt < held.storedAt) return true; // never older than what we hold
    // Nor stored before a peer's write to it that this node was told of: its owner may not have been told yet.
    const written = this.#p.peerWrites.writtenAt(request.parts.url);
    return written !== undefined && entry.storedAt < written;
  }

  async #fromOrigin(request: ReadRequest, held: CacheEntry | undefined): Promise<ReadOutcome> {
    const { origin, tiers, counters, now, shutdown, defaultTtl } = this.#p;
    const { parts } = request;
    const storeKey = HTTP_PREFIX + request.key;
    try {
      // A held entry is a better answer than waiting for a paused scope.
      await origin.admit({
        scopeId: parts.scopeId, url: request.url ?? parts.url, mayWait: held === undefined, signal: shutdown, withToken: request.token !== undefined,
      });
    } catch (err) {
      if (err instanceof RateLimitError && held !== undefined) return this.#stale(held);
      if (err instanceof RateLimitError) counters.rateLimited++;
      throw err;
    }
    const headers: Record<string, string> = { ...request.headers, accept: parts.accept };
    if (held?.etag !== undefined) headers['if-none-match'] = held.etag;
    if (held?.lastModified !== undefined) headers['if-modified-since'] = held.lastModified;
    let response: OriginResponse;
    try {
      counters.apiCallsMade++;
      response = await origin.send({
        method: parts.method, url: request.url ?? parts.url, headers, token: request.token, scheme: request.scheme,
        scopeId: parts.scopeId, signal: shutdown, redirect: request.redirect,
      });
    } catch (err) {
      counters.upstreamErrors++;
      if (held !== undefined && !shutdown.aborted) return this.#stale(held);
      throw err;
    }
    const at = now();
    if (response.status === 304 && held !== undefined) {
      const ttl = freshnessSeconds(request.ttl, response.headers, defaultTtl, held.headers);
      const entry = tiers.refresh(storeKey, at, at + ttl * 1000) ?? { ...held, storedAt: at, expiresAt: at + ttl * 1000 };
      counters.answered('revalidated');
      return { kind: 'entry', entry, source: 'revalidated' };
    }
    if (response.status >= 200 && response.status < 300) {
      // Every body is kept as the bytes GitHub sent (JSON, raw text, diffs, archives alike), up to maxEntryBytes.
      const entry = entryOf(response, at, freshnessSeconds(request.ttl, response.headers, defaultTtl));
      if (isStorable(response, this.#p.maxEntryBytes)) tiers.write(storeKey, entry);
      return { kind: 'entry', entry, source: 'origin', headers: response.headers, url: response.url };
    }
    // A redirect asked to be answered as it is (redirect: 'manual'): passed through, never stored.
    if (response.status >= 300 && response.status < 400 && response.status !== 304) return { kind: 'pass', response, source: 'origin' };
    const data = parseBody(response.body, response.headers['content-type']);
    const message = response.message ?? `HTTP ${response.status}`;
    if (response.rateLimitedUntil !== undefined) {
      counters.rateLimited++;
      if (held !== undefined) return this.#stale(held);
      throw new RateLimitError(parts.scopeId, response.rateLimitedUntil, message, { status: response.status, headers: { ...response.headers }, data, body: response.body });
    }
    if (response.status >= 500) {
      counters.upstreamErrors++;
      if (held !== undefined) return this.#stale(held);
    } else if (PURGE_STATUSES.has(response.status) && held !== undefined) {
      // The token lost access (or the resource is gone): its entry must not answer anyone again.
      tiers.delete(storeKey);
      counters.purged++;
    }
    throw new UpstreamError(response.status, parts.method, parts.url, message, { response: { headers: { ...response.headers }, data, body: response.body } });
  }

  #stale(entry: CacheEntry): ReadOutcome {
    this.#p.counters.answered('stale');
    return { kind: 'entry', entry, source: 'stale' };
  }
}
