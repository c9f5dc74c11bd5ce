import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sha256Hex, type CacheEntry } from '../../src/cache/entry.js';
import { formatRequestKey } from '../../src/cache/request-key.js';
import { ANONYMOUS_SCOPE, entryKeyOf, scopeIdOf } from '../../src/cache/scope.js';
import { DEFAULTS, type ResolvedP2POptions } from '../../src/options.js';
import { PeerNetwork, type PeerBackend, type PeerNetworkLimits } from '../../src/p2p/peer-network.js';
import { RecordingLogger } from '../../support/recording-logger.js';

export { RecordingLogger };
// One copy of each, shared with bench/ and examples/; re-exported so the P2P specs keep one import.
export { freePort } from '../../support/ports.js';
export { waitFor } from '../../support/wait.js';

/**
 * Fixtures of the P2P specs: an in-memory backend that counts "upstream" calls, node factories on loopback
 * with ephemeral ports and throwaway cache directories, and a polling wait that leaves no timer behind.
 */

export const SHARED_SECRET = 'spec-shared-secret-0123456789abcdef';

/** P2P options for a spec node: loopback, ephemeral port, short timeouts. */
export function p2pOptions(overrides: Partial<ResolvedP2POptions> = {}): ResolvedP2POptions {
  return {
    enabled: true,
    listenPort: 0,
    listenHost: '127.0.0.1',
    bootstrapPeers: [],
    sharedSecret: SHARED_SECRET,
    membership: DEFAULTS.membership,
    mdns: false,
    keepAlive: false,
    requestTimeoutMs: DEFAULTS.requestTimeoutMs,
    dialTimeoutMs: DEFAULTS.dialTimeoutMs,
    startWaitMs: DEFAULTS.startWaitMs,
    maxFrameBytes: DEFAULTS.maxFrameBytes,
    maxEntryTtl: DEFAULTS.maxEntryTtl,
    handoff: true,
    ...overrides,
  };
}


/** A cache key of a GitHub GET for scope `scopeId`. */
export function requestKey(scopeId: string, n: number | string): string {
  return formatRequestKey({ scopeId, method: 'GET', url: `https://api.github.com/repos/octo/repo-${n}`, accept: 'application/vnd.github+json' });
}

export function entryFor(key: string, now = Date.now(), ttlMs = 60_000): CacheEntry {
  const body = JSON.stringify({ key, n: Math.random() });
  return { body: Buffer.from(body), digest: sha256Hex(body), storedAt: now, expiresAt: now + ttlMs, status: 200, headers: { 'content-type': 'application/json' }, etag: `"${sha256Hex(key).slice(0, 16)}"` };
}

/** Counts "upstream" requests across every backend sharing it. */
export class UpstreamCounter {
  calls = 0;
  readonly perKey = new Map<string, number>();
  /** Delay of each upstream call, in ms. */
  delayMs = 5;
  async fetch(key: string): Promise<CacheEntry> {
    this.calls++;
    this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return entryFor(key);
  }
}

/**
 * A cache in miniature: a Map, a per-key in-flight map (singleflight), the tokens it holds, and the same
 * lookup order as the real cache (local, then the key's owner, then upstream).
 */
export class MemoryBackend implements PeerBackend {
  readonly store = new Map<string, CacheEntry>();
  readonly inFlight = new Map<string, Promise<CacheEntry>>();
  readonly tokens = new Map<string, string>();
  readonly sources = { local: 0, peer: 0, upstream: 0 };
  network: PeerNetwork | undefined;

  constructor(readonly upstream: UpstreamCounter, tokens: string[] = []) {
    for (const token of tokens) this.tokens.set(scopeIdOf(token), token);
  }

  readonly scopes = {
    entryKey: (scopeId: string): Uint8Array | undefined => {
      const token = this.tokens.get(scopeId);
      return token === undefined ? undefined : entryKeyOf(token);
    },
    heldScopes: (): readonly string[] => [ANONYMOUS_SCOPE, ...this.tokens.keys()],
    onScopeAdded: (): (() => void) => () => {},
  };

  heldEntry(key: string): CacheEntry | undefined {
    return this.local(key);
  }

  /** Peers' invalidation notices, as applied. */
  readonly invalidated: Array<{ resource: string; scopeIds: readonly string[] }> = [];

  invalidateFromPeer(resource: string, scopeIds: readonly string[]): number {
    this.invalidated.push({ resource, scopeIds });
    return 0;
  }

  async serveAsOwner(key: string, _signal?: AbortSignal): Promise<CacheEntry | undefined> {
    return this.local(key) ?? this.singleflight(key);
  }

  /** What a caller of the cache does: local, else the owner, else upstream. */
  async get(key: string, scopeId: string): Promise<CacheEntry> {
    const local = this.local(key);
    if (local !== undefined) {
      this.sources.local++;
      return local;
    }
    const answer = await this.network!.fetch(key, scopeId);
    if (answer.kind === 'entry') {
      this.sources.peer++;
      this.store.set(key, answer.entry);
      return answer.entry;
    }
    // The real cache asks the fleet inside its flight for the key, so an owner's serving joins it; here the
    // entry a peer's ask made this node fetch meanwhile is taken instead.
    const stored = this.local(key);
    if (stored !== undefined) {
      this.sources.local++;
      return stored;
    }
    this.sources.upstream++;
    if (answer.kind !== 'self' || answer.lease === undefined) return this.singleflight(key);
    // Under a blind owner's lease, as the read-through does: ended on every path, with the entry fetched or nothing.
    let fetched: CacheEntry | undefined;
    try {
      fetched = await this.singleflight(key);
      return fetched;
    } finally {
      answer.lease.end(fetched);
    }
  }

  private local(key: string): CacheEntry | undefined {
    return this.store.get(key);
  }

  private singleflight(key: string): Promise<CacheEntry> {
    let flight = this.inFlight.get(key);
    if (flight === undefined) {
      flight = this.upstream.fetch(key).then((entry) => {
        this.store.set(key, entry);
        return entry;
      }).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, flight);
    }
    return flight;
  }
}

const tmpDirs: string[] = [];

/** A fresh cache directory, removed by removeTmpDirs(). */
export function tmpCacheDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-spec-'));
  tmpDirs.push(dir);
  return dir;
}

export function removeTmpDirs(): void {
  for (const dir of tmpDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export interface SpecNode {
  network: PeerNetwork;
  backend: MemoryBackend;
  logger: RecordingLogger;
  cacheDir: string;
}

/** Starts a PeerNetwork on loopback with a MemoryBackend. */
export async function startNode(options: {
  upstream?: UpstreamCounter; tokens?: string[]; p2p?: Partial<ResolvedP2POptions>; cacheDir?: string; limits?: Partial<PeerNetworkLimits>; now?: () => number;
  logger?: RecordingLogger;
} = {}): Promise<SpecNode> {
  const backend = new MemoryBackend(options.upstream ?? new UpstreamCounter(), options.tokens ?? []);
  const logger = options.logger ?? new RecordingLogger();
  const cacheDir = options.cacheDir ?? tmpCacheDir();
  const network = await PeerNetwork.start({
    p2p: p2pOptions(options.p2p), cacheDir, host: backend, logger, ...(options.limits ? { limits: options.limits } : {}), ...(options.now ? { now: options.now } : {}),
  });
  backend.network = network;
  return { network, backend, logger, cacheDir };
}

/** The /p2p/ address of a node to give others as a bootstrap peer. */
export function addressOf(node: SpecNode): string {
  const addr = node.network.stats().listenAddrs.find((a) => a.includes('/127.0.0.1/'));
  if (addr === undefined) throw new Error('the node has no loopback address');
  return addr;
}

/** Whether every node sees all the others as peers holding at least `scopes` shared scopes. */
export function fullyConnected(nodes: SpecNode[], scopes = 1): boolean {
  return nodes.every((node) => {
    const peers = node.network.stats().peers.filter((p) => p.scopes >= scopes);
    return nodes.every((other) => other === node || peers.some((p) => p.id === other.network.peerId));
  });
}
