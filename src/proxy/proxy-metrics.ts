import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheStats } from '../cache/counters.js';
import { p2pStatsOf } from './p2p-stats.js';

/**
 * ProxyMetrics: the proxy's Prometheus metrics in a registry of its own (never prom-client's global default
 * registry, so an application embedding the proxy keeps its own metrics apart). Requests are counted as they
 * finish in plain integers here (a count per source and status, a latency bucket array per source, the number in
 * flight), which the prom-client metrics read at scrape time through their `collect()` callbacks: a scrape shows
 * exactly what prom-client's own inc/observe would have shown (same names, types, labels, values and order), and a
 * request costs no label hashing. The cache's counters, the rate limit per scope and the peer counts are read from
 * one `getStats()` snapshot per scrape. Labels hold one-way scope ids, never tokens.
 */

/** Cache counters exported as Prometheus counters: metric name suffix, help, CacheStats field. */
const CACHE_COUNTERS: ReadonlyArray<readonly [string, string, keyof CacheStats]> = [
  ['upstream_requests_total', 'Requests the cache sent to GitHub (writes, misses and revalidations).', 'apiCallsMade'],
  ['api_calls_saved_total', 'GitHub calls avoided: fresh hits, peer hits, coalesced callers, stale answers and free 304s.', 'apiCallsSaved'],
  ['hits_total', 'Reads answered with a fresh entry (memory, disk or peer).', 'hits'],
  ['misses_total', 'Reads that found no fresh entry.', 'misses'],
  ['peer_hits_total', 'Reads answered by a peer.', 'peerHits'],
  ['coalesced_total', 'Callers that joined another caller\'s upstream request for the same key.', 'coalesced'],
  ['not_modified_total', 'Revalidations GitHub answered 304 Not Modified (free of rate limit).', 'notModified'],
  ['stale_served_total', 'Answers served past their TTL because GitHub failed or rate-limited.', 'staleServed'],
  ['rate_limited_total', 'Requests refused because the token scope was rate-limited.', 'rateLimited'],
  ['upstream_errors_total', 'Upstream 5xx, resets and timeouts.', 'upstreamErrors'],
  ['writes_total', 'Writes passed through to GitHub.', 'writes'],
  ['evictions_total', 'Entries evicted to stay within maxEntries / maxBytes.', 'evictions'],
  ['evicted_for_bytes_total', 'Entries evicted because of maxBytes alone (raise maxBytes if this grows).', 'evictedForBytes'],
  ['persistence_errors_total', 'Failed SQLite reads or writes.', 'persistenceErrors'],
];

/** Seconds; from a memory hit (~0.1 ms) to a slow origin answer. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The requests answered with one source and status, counted since the proxy started. */
interface AnsweredCount {
  readonly source: string;
  readonly status: string;
  count: number;
}

/** The latency of one source's requests, as prom-client's histogram keeps it (a count per bucket, not cumulative). */
interface LatencySeries {
  readonly source: string;
  /** buckets[i]: observations in (LATENCY_BUCKETS[i-1], LATENCY_BUCKETS[i]]; above the last bound only in count. */
  readonly buckets: number[];
  sum: number;
  count: number;
}

/** What prom-client's Histogram holds per label set (its `hashMap` values), which collect() rebuilds. */
interface HistogramValues {
  labels: Record<string, string>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

let processRegistry: Registry | undefined;

/**
 * Process metrics (CPU, memory, event loop lag, GC) collected once per process: prom-client's collectors
 * install observers that are never removed, so each proxy must not install its own.
 */
function sharedProcessRegistry(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly #processMetrics: boolean;
  readonly #cacheOpen: Gauge;
  readonly #cacheCounters: Array<{ counter: Counter; field: keyof CacheStats }>;
  readonly #entries: Gauge;
  readonly #diskBytes: Gauge;
  readonly #rateRemaining: Gauge<'scope' | 'resource'>;
  readonly #rateLimit: Gauge<'scope' | 'resource'>;
  readonly #rateReset: Gauge<'scope' | 'resource'>;
  readonly #p2pEnabled: Gauge;
  readonly #connectedPeers: Gauge;
  readonly #protocolPeers: Gauge;
  readonly #p2pEvents: Counter<'event'>;
  readonly #p2pRejected: Counter<'reason'>;
  /** By source, then status (status as a number: no string made per request). */
  readonly #answered = new Map<string, Map<number, AnsweredCount>>();
  /** The same counts in the order they first occurred (the order prom-client would list them in). */
  readonly #answeredInOrder: AnsweredCount[] = [];
  readonly #latency = new Map<string, LatencySeries>();
  readonly #latencyInOrder: LatencySeries[] = [];
  #inFlightCount = 0;

  constructor(options: { processMetrics?: boolean } = {}) {
    this.#processMetrics = options.processMetrics ?? true;
    const registers = [this.registry];
    const answered = this.#answeredInOrder;
    const latency = this.#latencyInOrder;
    new Counter<'source' | 'status'>({
      name: 'github_cache_proxy_requests_total',
      help: 'GitHub API requests answered by the proxy, by source (memory, disk, peer, origin, revalidated, coalesced, stale; proxy: an answer the proxy made itself) and HTTP status.',
      labelNames: ['source', 'status'],
      registers,
      collect() {
        this.reset();
        for (const { source, status, count } of answered) this.inc({ source, status }, count);
      },
    });
    new Histogram<'source'>({
      name: 'github_cache_proxy_request_duration_seconds',
      help: 'Time from request to response of GitHub API requests through the proxy, by source.',
      labelNames: ['source'],
      buckets: LATENCY_BUCKETS,
      registers,
      collect() {
        // prom-client has no call to set a histogram's counts: its per-label-set values are written as its
        // observe() leaves them (test/proxy-metrics.spec.ts compares the exposition with prom-client's own).
        const values: Record<string, HistogramValues> = {};
        for (const series of latency) {
          const bucketValues: Record<number, number> = {};
          LATENCY_BUCKETS.forEach((bound, i) => (bucketValues[bound] = series.buckets[i]!));
          values[series.source] = { labels: { source: series.source }, bucketValues, sum: series.sum, count: series.count };
        }
        (this as unknown as { hashMap: Record<string, HistogramValues> }).hashMap = values;
      },
    });
    const inFlight = () => this.#inFlightCount;
    new Gauge({
      name: 'github_cache_proxy_in_flight_requests',
      help: 'Requests the proxy is handling now.',
      registers,
      collect() {
        this.set(inFlight());
      },
    });
    this.#cacheOpen = new Gauge({ name: 'github_cache_open', help: '1 while the cache behind the proxy is open.', registers });
    this.#cacheCounters = CACHE_COUNTERS.map(([suffix, help, field]) => ({
      counter: new Counter({ name: `github_cache_${suffix}`, help, registers }),
      field,
    }));
    this.#entries = new Gauge({ name: 'github_cache_entries', help: 'Entries held by the cache.', registers });
    this.#diskBytes = new Gauge({ name: 'github_cache_disk_bytes', help: 'Bytes of bodies in the SQLite tier (0 when memory-only).', registers });
    const rateLabels = ['scope', 'resource'] as const;
    this.#rateRemaining = new Gauge({
      name: 'github_cache_rate_limit_remaining',
      help: 'What GitHub last said is left of the rate limit, per token scope (a one-way scope id, never the token) and resource.',
      labelNames: rateLabels,
      registers,
    });
    this.#rateLimit = new Gauge({
      name: 'github_cache_rate_limit_limit',
      help: 'The rate limit per window GitHub last reported, per token scope and resource.',
      labelNames: rateLabels,
      registers,
    });
    this.#rateReset = new Gauge({
      name: 'github_cache_rate_limit_reset_timestamp_seconds',
      help: 'When the rate-limit window resets (Unix seconds), per token scope and resource.',
      labelNames: rateLabels,
      registers,
    });
    this.#p2pEnabled = new Gauge({ name: 'github_cache_p2p_enabled', help: '1 when the cache runs a P2P host.', registers });
    this.#connectedPeers = new Gauge({ name: 'github_cache_p2p_connected_peers', help: 'Peers with an open connection.', registers });
    this.#protocolPeers = new Gauge({ name: 'github_cache_p2p_protocol_peers', help: 'Connected peers speaking the cache protocol.', registers });
    this.#p2pEvents = new Counter({
      name: 'github_cache_p2p_events_total',
      help: 'P2P counters by name (requestsSent, entriesReceived, requestsServed, timeouts, ...).',
      labelNames: ['event'],
      registers,
    });
    this.#p2pRejected = new Counter({
      name: 'github_cache_p2p_rejected_total',
      help: 'Data rejected from peers, by reason.',
      labelNames: ['reason'],
      registers,
    });
  }

  requestStarted(): void {
    this.#inFlightCount++;
  }

  /** Records a finished GitHub API request. */
  requestFinished(source: string, status: number, seconds: number): void {
    this.#inFlightCount--;
    this.requestAnswered(source, status, seconds);
  }

  /** Records a GitHub API request answered at once (started and finished within one call: in flight never moves). */
  requestAnswered(source: string, status: number, seconds: number): void {
    let byStatus = this.#answered.get(source);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#answered.set(source, byStatus);
    }
    let answered = byStatus.get(status);
    if (answered === undefined) {
      answered = { source, status: String(status), count: 0 };
      byStatus.set(status, answered);
      this.#answeredInOrder.push(answered);
    }
    answered.count++;
    let series = this.#latency.get(source);
    if (series === undefined) {
      series = { source, buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#latency.set(source, series);
      this.#latencyInOrder.push(series);
    }
    // As prom-client observes: the first bound at or above the value; above them all, only sum and count.
    const bucket = bucketOf(seconds);
    if (bucket >= 0) series.buckets[bucket]!++;
    series.sum += seconds;
    series.count++;
  }

  /** A request that ended without a response (the client went away). */
  requestAbandoned(): void {
    this.#inFlightCount--;
  }

  /** The Prometheus text exposition, after reading `stats` (undefined: the cache is closed or unavailable). */
  async render(stats: CacheStats | undefined): Promise<{ contentType: string; body: string }> {
    this.#refresh(stats);
    const registry = this.#processMetrics ? Registry.merge([this.registry, sharedProcessRegistry()]) : this.registry;
    return { contentType: this.registry.contentType, body: await registry.metrics() };
  }

  #refresh(stats: CacheStats | undefined): void {
    this.#cacheOpen.set(stats === undefined ? 0 : 1);
    if (stats === undefined) return;
    // Cumulative counts kept by the cache: a replaced cache restarts from 0, which Prometheus reads as a counter reset.
    for (const { counter, field } of this.#cacheCounters) setCounter(counter, stats[field]);
    this.#entries.set(stats.size);
    this.#diskBytes.set(stats.diskBytes ?? 0);

    for (const gauge of [this.#rateRemaining, this.#rateLimit, this.#rateReset]) gauge.reset();
    for (const [scope, state] of Object.entries(stats.rateLimits)) {
      const labels = { scope, resource: state.resource ?? 'core' };
      if (state.remaining !== undefined) this.#rateRemaining.set(labels, state.remaining);
      if (state.limit !== undefined) this.#rateLimit.set(labels, state.limit);
      if (state.reset !== undefined) this.#rateReset.set(labels, Math.round(state.reset / 1000));
    }

    const p2p = p2pStatsOf(stats);
    this.#p2pEnabled.set(p2p === undefined ? 0 : 1);
    this.#connectedPeers.set(p2p?.connectedPeers ?? 0);
    this.#protocolPeers.set(p2p?.peers.length ?? 0);
    this.#p2pEvents.reset();
    this.#p2pRejected.reset();
    for (const [event, value] of Object.entries(p2p?.counters ?? {})) if (value >= 0) this.#p2pEvents.inc({ event }, value);
    for (const [reason, value] of Object.entries(p2p?.rejected ?? {})) if (value >= 0) this.#p2pRejected.inc({ reason }, value);
  }
}

function bucketOf(seconds: number): number {
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]!) return i;
  return -1;
}

function setCounter(counter: Counter, value: unknown): void {
  counter.reset();
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) counter.inc(value);
}
