import type { Fleet, FleetHost } from './cache/ports.js';
import { createLogger } from './log.js';
import type { ResolvedCacheOptions } from './options.js';

/**
 * Starting the fleet for the composition root (src/github-api-cache.ts): the default starter loads libp2p only
 * when called (a cache without P2P never loads it), one package per turn of the event loop when the node answers
 * requests meanwhile (they are not held up behind one long synchronous load), and resolves once the host listens or
 * rejects with why it did not start; `meshed` waits (bounded by a deadline) for the sessions a member's bootstrap
 * list promises, woken by the fleet's own session events (never a poll tick, so a wait ends in the turn the last
 * session comes up); `settlesWithin` bounds a wait on a start without leaving a timer behind.
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

/**
 * The P2P layer's own dependencies, in the order `loadP2pInStages` imports them: packages that others need first,
 * so that each import evaluates little besides its own package. Importing libp2p's graph (about 640 modules) is
 * synchronous in Node 22's loader: one `import()` of the layer held the event loop for 250-300 ms, and a request
 * answered meanwhile by GitHub (or by memory) waited for it. One package at a time, with a turn of the event loop
 * between, the longest hold measured 59-66 ms.
 */
export const P2P_LOAD_STAGES: readonly string[] = Object.freeze([
  '@libp2p/interface', '@multiformats/multiaddr', '@libp2p/crypto', '@libp2p/peer-id', '@libp2p/utils', '@chainsafe/libp2p-noise',
  '@chainsafe/libp2p-yamux', '@libp2p/tcp', '@libp2p/identify', '@libp2p/ping', '@libp2p/bootstrap', 'libp2p',
]);

/**
 * Whether this node answers requests while its host starts, so that a long synchronous load would hold them up: a
 * node without bootstrap peers, or with `p2p.startWaitMs` 0. A fleet member whose reads wait for its sessions
 * (bootstrap peers and a start wait, the default) loads the layer in one go instead: its reads wait for the host
 * anyway, and on a busy machine the staged load brought its host up later (1,069 → about 1,300 ms when three
 * members started together on two cores), and its first answers with it.
 */
export function answersWhileStarting(p2p: Pick<ResolvedCacheOptions['p2p'], 'bootstrapPeers' | 'startWaitMs'>): boolean {
  return p2p.bootstrapPeers.length === 0 || p2p.startWaitMs === 0;
}

/** Imports the P2P layer's dependencies one package at a time, letting the event loop run between them (I/O included). */
export async function loadP2pInStages(): Promise<void> {
  for (const name of P2P_LOAD_STAGES) {
    await import(name);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The libp2p host with the cache protocol in it. */
export async function startPeerNetwork(init: Parameters<FleetStarter>[0]): Promise<Fleet> {
  // Loaded on demand: a cache without P2P never loads libp2p. The polyfill goes first (Node 20 lacks
  // Promise.withResolvers, which libp2p 3 calls); then libp2p's graph, in stages (P2P_LOAD_STAGES).
  await import('./polyfills.js');
  if (answersWhileStarting(init.p2p)) await loadP2pInStages();
  const { PeerNetwork } = await import('./p2p/peer-network.js');
  return PeerNetwork.start({ p2p: init.p2p, cacheDir: init.cacheDir, logger: createLogger('p2p', init.logSink), now: init.now, host: init.host });
}

/**
 * Resolves once `fleet` is in session with as many peers as `bootstrapPeers` names (its own address, when named
 * with its own peer id, not counted), or when `deadline` settles, or when `signal` aborts; at once without bootstrap
 * peers. The sessions are counted when the fleet says they changed (`onSessionsChanged`), synchronously, so the
 * promise resolves in the turn the last one comes up. Never rejects; leaves no listener behind.
 */
export function meshed(fleet: Fleet, bootstrapPeers: readonly string[], deadline: Promise<void>, signal: AbortSignal): Promise<void> {
  const wanted = meshTarget(fleet, bootstrapPeers);
  const enough = (): boolean => fleet.stats().peers.length >= wanted;
  if (wanted === 0 || signal.aborted || enough()) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let unsubscribe = (): void => undefined;
    const finish = (): void => {
      unsubscribe();
      signal.removeEventListener('abort', finish);
      resolve();
    };
    unsubscribe = fleet.onSessionsChanged(() => {
      if (enough()) finish();
    });
    signal.addEventListener('abort', finish, { once: true });
    void deadline.then(finish, finish);
  });
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
