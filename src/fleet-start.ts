import type { Fleet, FleetHost } from './cache/ports.js';
import { createLogger } from './log.js';
import type { ResolvedCacheOptions } from './options.js';

/**
 * Starting the fleet for the composition root (src/github-api-cache.ts): the default starter loads libp2p only
 * when called (a cache without P2P never loads it) and resolves once the host listens or rejects with why it
 * did not start; `meshed` waits (bounded) for the sessions a member's bootstrap list promises; `settlesWithin`
 * bounds a wait on a start without leaving a timer behind.
 */

/** What starts the fleet's host: by default the libp2p PeerNetwork, loaded on demand. */
export type FleetStarter = (init: {
  p2p: ResolvedCacheOptions['p2p'];
  cacheDir: string;
  logSink: ResolvedCacheOptions['logSink'];
  now: () => number;
  host: FleetHost;
}) => Promise<Fleet>;

/** @internal Parts a spec may replace (a slow or failing fleet start). */
export interface CreateInternals {
  readonly startFleet?: FleetStarter | undefined;
}

/** The libp2p host with the cache protocol in it. */
export async function startPeerNetwork(init: Parameters<FleetStarter>[0]): Promise<Fleet> {
  // Loaded on demand: a cache without P2P never loads libp2p. The polyfill goes first (Node 20 lacks
  // Promise.withResolvers, which libp2p 3 calls).
  await import('./polyfills.js');
  const { PeerNetwork } = await import('./p2p/peer-network.js');
  return PeerNetwork.start({ p2p: init.p2p, cacheDir: init.cacheDir, logger: createLogger('p2p', init.logSink), now: init.now, host: init.host });
}

/** How often a starting fleet's sessions are counted while reads wait for them. */
const MESH_POLL_MS = 20;

/**
 * Resolves once `fleet` is in session with as many peers as `bootstrapPeers` names (its own address, when named
 * with its own peer id, not counted), or at `until` (by `now`), or when `signal` aborts; at once without bootstrap
 * peers. Never rejects; its timers do not keep the process alive.
 */
export async function meshed(fleet: Fleet, bootstrapPeers: readonly string[], until: number, now: () => number, signal: AbortSignal): Promise<void> {
  const wanted = meshTarget(fleet, bootstrapPeers);
  while (wanted > 0 && !signal.aborted && now() < until && fleet.stats().peers.length < wanted) {
    await new Promise<void>((resolve) => setTimeout(resolve, MESH_POLL_MS).unref());
  }
}

/** How many peers a member's bootstrap list promises: its distinct entries, less one naming this node itself. */
export function meshTarget(fleet: Fleet, bootstrapPeers: readonly string[]): number {
  const selfId = fleet.stats().peerId;
  return new Set(bootstrapPeers.filter((addr) => !addr.endsWith(`/p2p/${selfId}`))).size;
}

/** Whether `promise` settles (either way) within `ms`; leaves no timer behind. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    promise.then(() => true, () => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return outcome;
}
