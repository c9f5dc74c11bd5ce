import type { FleetStats } from '../cache/ports.js';
import type { PeerEntryRejected } from './envelope.js';
import type { FrameViolation } from './frame-channel.js';

/**
 * The counters of the cache protocol, behind `FleetStats`.
 *
 * Guarantee: counters only grow, one step per event, and a snapshot is a copy: what a caller does with it
 * never changes the counters.
 */

/**
 * Why data from a peer was refused: envelope reasons, framing violations, protocol-level refusals, and 'withheld'
 * (an owner said it was working on a request until the asker's max wait ran out, and never answered).
 */
export type RejectionKind = PeerEntryRejected['reason'] | FrameViolation | 'proof' | 'request' | 'protocol' | 'withheld'
  | 'notice' | 'notice-scope' | 'notice-rate';

export type ProtocolCounterName = 'requestsSent' | 'entriesReceived' | 'requestsServed' | 'timeouts' | 'disconnectedForAbuse'
  | 'handoffsSent' | 'handoffEntries' | 'invalidationsSent' | 'invalidationsReceived' | 'invalidationsDropped'
  | 'leasesGranted' | 'blindServed' | 'leasesTaken';

export class ProtocolCounters {
  readonly #counts: Record<ProtocolCounterName, number> = {
    requestsSent: 0, entriesReceived: 0, requestsServed: 0, timeouts: 0, disconnectedForAbuse: 0, handoffsSent: 0, handoffEntries: 0,
    invalidationsSent: 0, invalidationsReceived: 0, invalidationsDropped: 0, leasesGranted: 0, blindServed: 0, leasesTaken: 0,
  };
  readonly #rejected: Record<string, number> = {};

  count(name: ProtocolCounterName, n = 1): void {
    this.#counts[name] += n;
  }

  countRejected(kind: RejectionKind): void {
    this.#rejected[kind] = (this.#rejected[kind] ?? 0) + 1;
  }

  snapshot(): Pick<FleetStats, ProtocolCounterName | 'rejected'> {
    return { ...this.#counts, rejected: { ...this.#rejected } };
  }
}
