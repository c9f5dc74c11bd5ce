/**
 * What the offline demo (examples/p2p-demo.ts) and its fleet members (examples/demo-node.ts) say to each
 * other over IPC. Types and constants only: importing it starts nothing.
 */
import type { CacheStats, ResponseSource, SingletonProviderStats } from '../index.js';

/** The work of one phase, as the demo sends it. */
export interface PhaseWork {
  /** Resource indices to request, in order (repo `${repoPrefix}${index}` of `owner`). */
  indices: number[];
  owner: string;
  repoPrefix: string;
  /** Requests in flight at once. */
  concurrency: number;
}

export const SOURCES: readonly ResponseSource[] = ['memory', 'disk', 'peer', 'origin', 'revalidated', 'coalesced', 'stale'];

export type SourceCounts = Record<ResponseSource, number>;

/** What a node reports after a phase. */
export interface PhaseResult {
  requests: number;
  answered: number;
  /** Answers whose data was not the requested repository. */
  wrong: number;
  errors: number;
  /** The first few error messages (the library never puts a token in one). */
  errorSamples: string[];
  sources: SourceCounts;
  /** Requests by the way their client reached the cache. */
  via: { getGlobalCache: number; 'container.getAsync': number };
  distinctResources: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  elapsedMs: number;
  /** CPU time this process spent during the phase (user + system). */
  cpuMs: number;
}

export type NodeMessage =
  | { type: 'stats' }
  | { type: 'warmup' }
  | { type: 'run'; phase: string; work: PhaseWork }
  | { type: 'advance'; ms: number }
  | { type: 'close' };


/** What a node sends back. */
export type NodeReply =
  | {
    type: 'ready';
    name: string;
    pid: number;
    startedMs: number;
    /** Clients that asked for the cache at once before it existed. */
    firstCallers: number;
    distinctInstancesSeen: number;
    provider: SingletonProviderStats;
    persistence: CacheStats['persistence'];
    p2p: CacheStats['p2p'];
  }
  | { type: 'failed'; message: string }
  | { type: 'stats'; stats: CacheStats; provider: SingletonProviderStats; distinctInstancesSeen: number }
  | { type: 'warmed' }
  | { type: 'progress'; phase: string; done: number; total: number; errors: number; sources: SourceCounts }
  | { type: 'done'; phase: string; result: PhaseResult }
  | { type: 'advanced'; offsetMs: number }
  | { type: 'closed'; provider: SingletonProviderStats };
