/**
 * The little of make-fetch-happen 15 and autocannon 9 that bench/compare uses: neither ships types, and
 * their @types packages are not installed. Shapes checked against their sources in node_modules.
 */

declare module 'make-fetch-happen' {
  interface MfhResponse {
    readonly status: number;
    readonly headers: { get(name: string): string | null };
    json(): Promise<unknown>;
    text(): Promise<string>;
  }
  interface MfhOptions {
    /** Directory of the cacache store; without it nothing is cached. */
    cachePath?: string;
    /** 'default', 'no-store', 'reload', 'no-cache', 'force-cache', 'only-if-cached'. */
    cache?: string;
    headers?: Record<string, string>;
    retry?: false | { retries?: number };
  }
  type MfhFetch = ((url: string, options?: MfhOptions) => Promise<MfhResponse>) & {
    defaults(options: MfhOptions): MfhFetch;
  };
  const fetch: MfhFetch;
  export default fetch;
}

declare module 'autocannon' {
  interface AutocannonRequest {
    method?: string;
    path: string;
    headers?: Record<string, string>;
  }
  interface AutocannonOptions {
    url: string;
    connections?: number;
    duration?: number;
    pipelining?: number;
    workers?: number;
    headers?: Record<string, string>;
    requests?: AutocannonRequest[];
    timeout?: number;
  }
  interface Histogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
    total: number;
    sent?: number;
  }
  interface AutocannonResult {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    resets: number;
    mismatches: number;
    '2xx': number;
    statusCodeStats: Record<string, { count: number }>;
    latency: Histogram;
    requests: Histogram;
    throughput: Histogram;
  }
  function autocannon(options: AutocannonOptions): Promise<AutocannonResult>;
  export default autocannon;
}
