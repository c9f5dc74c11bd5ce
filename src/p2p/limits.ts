import { DEFAULT_MAX_CLOCK_SKEW_MS } from './envelope.js';

/**
 * The protocol limits of the P2P layer, with their defaults. Guarantee: every field has a default here, so a
 * caller overrides only what it names and every module reads one complete, frozen set.
 */

/** Protocol limits of a PeerNetwork; every field has a default. */
export interface PeerNetworkLimits {
  /** Requests served at once for one peer; more are answered `miss busy`. Default: 256. */
  maxConcurrentServesPerPeer: number;
  /** Verification failures (bad frames, bad entries, bad proofs) within `strikeWindowMs` that get a peer disconnected. Default: 5. */
  maxStrikes: number;
  /** Window in which strikes count, in ms. Default: 60 000. */
  strikeWindowMs: number;
  /** How long a peer disconnected for abuse is refused, in ms. Default: 60 000. */
  banMs: number;
  /** Most peers dialled through peer exchange (connections beyond are not sought). Default: 64. */
  maxPeers: number;
  /** Streams of the protocol per connection and direction. One long-lived stream is used per direction; the rest is room for reconnects. Default: 32. */
  maxStreamsPerConnection: number;
  /** How far in the future a peer's storedAt may be, in ms. Default: 30 000. */
  maxClockSkewMs: number;
  /** Longest an asker waits for an owner that keeps saying it is working (a `working` frame every half
   *  request timeout), in ms. Default: 30 000 (GitHub's own answers are bounded by upstreamTimeoutMs). */
  maxOwnerWaitMs: number;
  /** Creation completes or fails within this many ms. Default: 10 000. */
  startTimeoutMs: number;
  /** Delay that batches peer-exchange updates after peers join or leave, in ms. Default: 25. */
  peerExchangeDelayMs: number;
  /** A sealed entry above this many bytes is sent in `part`s of this size (each sent once the stream has room), not as one `entry`. Default: 256 KiB. */
  largeEntryBytes: number;
  /** Largest sealed entry sent or accepted in parts, in bytes (above: `miss too-large`; a peer announcing more gets a strike). Default: 16 MiB (room for `maxEntryBytes`, 10 MiB by default). */
  maxPartedEntryBytes: number;
  /** Large answers sent at once to one peer; more are answered `miss busy`. Default: 4. */
  maxLargeTransfersPerPeer: number;
  /** Bytes of large answers being received at once from one peer; an answer that would exceed it is given up (the caller goes upstream). Default: 64 MiB. */
  maxPartedBytesPerPeer: number;
}

export const DEFAULT_PEER_NETWORK_LIMITS: Readonly<PeerNetworkLimits> = Object.freeze({
  maxConcurrentServesPerPeer: 256,
  maxStrikes: 5,
  strikeWindowMs: 60_000,
  banMs: 60_000,
  maxPeers: 64,
  maxStreamsPerConnection: 32,
  maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS,
  maxOwnerWaitMs: 30_000,
  startTimeoutMs: 10_000,
  peerExchangeDelayMs: 25,
  largeEntryBytes: 256 * 1024,
  maxPartedEntryBytes: 16 * 1024 * 1024,
  maxLargeTransfersPerPeer: 4,
  maxPartedBytesPerPeer: 64 * 1024 * 1024,
});

/** The defaults with `overrides` applied, frozen. */
export function resolveLimits(overrides: Partial<PeerNetworkLimits> | undefined): Readonly<PeerNetworkLimits> {
  return Object.freeze({ ...DEFAULT_PEER_NETWORK_LIMITS, ...overrides });
}

/** The first line of an error's message, for logs and `error` frames (never a stack). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] ?? err.name : String(err);
}
