import { CacheError } from '../errors.js';
import type { LogSink } from '../log.js';
import type { GitHubAPICache } from '../github-api-cache.js';
import type { ProxyMetrics } from './proxy-metrics.js';

/**
 * The proxy's public surface: its options (each with its default), its counters, the running server's
 * handle, and the one error it throws (it could not listen, with a hint of what to do).
 */

/** Options of {@link startProxy}. */
export interface ProxyOptions {
  /**
   * The cache to answer through, or a getter (e.g. `() => getGlobalCache()`), called per request except for a GET
   * answered from memory by the cache it gave last while that one is open.
   */
  cache: GitHubAPICache | (() => GitHubAPICache | Promise<GitHubAPICache>);
  /** Address to listen on. Default: '127.0.0.1' (loopback only). */
  host?: string;
  /** Port to listen on; 0 picks a free one (read it from `url`). Default: 8787. */
  port?: number;
  /** Largest request body accepted, in bytes; larger ones get 413. Default: 10 MiB. */
  maxBodyBytes?: number;
  /** Most bytes of request bodies held at once across all requests; a body that does not fit gets 503 with retry-after. Default: 64 MiB. */
  maxBufferedBodyBytes?: number;
  /** How long `close()` lets in-flight requests finish before cutting their connections, in ms. Default: 5000. */
  closeTimeoutMs?: number;
  /** Collect process metrics (CPU, memory, event loop, GC) into /metrics. Default: true. */
  processMetrics?: boolean;
  /** Where warnings and errors go. Default: stderr. */
  logSink?: LogSink;
}

/** What the proxy counted since it started. */
export interface ProxyCounters {
  /** GitHub API requests received (not /healthz, /metrics or /_cache/stats). */
  requests: number;
  /** Requests being handled now. */
  inFlight: number;
  /** Answers by source: the cache's sources, and `proxy` for answers the proxy made itself (304, 4xx, 5xx). */
  bySource: Record<string, number>;
  /** Answers by HTTP status. */
  byStatus: Record<string, number>;
  /** 304s answered locally because the client's If-None-Match matched. */
  notModified: number;
  /** 502s: GitHub could not be reached. */
  upstreamUnreachable: number;
  /** Requests whose client went away before the answer. */
  aborted: number;
  /** Request bodies refused with 503 because maxBufferedBodyBytes were already held. */
  bodiesRefused: number;
}

/** A running proxy. */
export interface ProxyServer {
  /** The base URL clients use, e.g. `http://127.0.0.1:8787` (no trailing slash). */
  readonly url: string;
  readonly host: string;
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  /** Live counters (a read-only view). */
  readonly counters: Readonly<ProxyCounters>;
  /** The proxy's own Prometheus registry (what /metrics renders, besides process metrics). */
  readonly metrics: ProxyMetrics;
  /** True once `close()` was called. */
  readonly closing: boolean;
  /**
   * Stops accepting connections, lets requests in flight finish (up to `closeTimeoutMs`, then cuts them),
   * closes idle keep-alive connections, and resolves once the port is released. Does not close the cache.
   * Idempotent.
   */
  close(): Promise<void>;
}

/** The proxy could not listen (port in use, address not available, permission denied). */
export class ProxyListenError extends CacheError {
  readonly host: string;
  readonly port: number;
  constructor(host: string, port: number, cause: unknown) {
    const code = (cause as { code?: string }).code;
    const hint = code === 'EADDRINUSE'
      ? 'the port is in use (another proxy?); stop it or choose another port'
      : code === 'EACCES'
        ? 'permission denied; choose a port above 1023'
        : code === 'EADDRNOTAVAIL'
          ? 'the address is not one of this machine\'s; use 127.0.0.1 or 0.0.0.0'
          : (cause instanceof Error ? cause.message : String(cause));
    super('ERR_PROXY_LISTEN', `Cannot listen on ${host}:${port}: ${hint}`, { cause });
    this.host = host;
    this.port = port;
  }
}

