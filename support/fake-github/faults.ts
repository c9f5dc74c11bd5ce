/**
 * What the fake GitHub does wrong on purpose: 5xx answers, connection resets, hangs, secondary limits on
 * the next N matching requests (oldest fault first, each consumed by one request), latency (a path rule
 * wins over the global delay; the last matching path rule wins), and a pause that holds every request in
 * flight until resumed. A fault never charges the caller's rate limit.
 */

/** Which requests a fault applies to. */
export interface FaultTarget {
  /**
   * A string matches the request's path exactly (the path with its query when the string holds a `?`,
   * else the path without it); a RegExp is tested against the path with its query. Default: every request.
   */
  path?: string | RegExp;
}

export interface Fault {
  kind: 'fail' | 'reset' | 'hang' | 'secondary';
  remaining: number;
  target: FaultTarget;
  status: number;
  retryAfterSeconds: number;
}

interface LatencyRule {
  ms: number;
  target: FaultTarget;
}

/** Roughly what GitHub's front end says with each 5xx. */
export const FAULT_MESSAGES: Record<number, string> = {
  500: 'Server Error',
  502: 'Server Error',
  503: 'Service Unavailable',
  504: 'We couldn\'t respond to your request in time. Sorry about that.',
};

export function matchesTarget(target: FaultTarget, path: string, fullPath: string): boolean {
  const { path: want } = target;
  if (want === undefined) return true;
  if (typeof want === 'string') return want.includes('?') ? want === fullPath : want === path;
  want.lastIndex = 0;
  return want.test(fullPath);
}

/** The pending faults, latency rules and pause of one fake GitHub. */
export class FaultPlan {
  #faults: Fault[] = [];
  #latencyMs: number;
  #latencyRules: LatencyRule[] = [];
  #paused: { promise: Promise<void>; release: () => void } | undefined;

  constructor(latencyMs: number) {
    this.#latencyMs = latencyMs;
  }

  add(kind: Fault['kind'], count: number, target: FaultTarget, status: number, retryAfterSeconds: number): void {
    if (!(count > 0)) return;
    this.#faults.push({ kind, remaining: count, target: { path: target.path }, status, retryAfterSeconds });
  }

  clear(): void {
    this.#faults = [];
  }

  /** The first fault matching this request, consumed by it; undefined when none does. */
  take(path: string, fullPath: string): Fault | undefined {
    const fault = this.#faults.find((f) => matchesTarget(f.target, path, fullPath));
    if (fault === undefined) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.#faults = this.#faults.filter((f) => f !== fault);
    return fault;
  }

  setLatency(ms: number, target: FaultTarget): void {
    if (target.path === undefined) {
      this.#latencyMs = ms;
      return;
    }
    this.#latencyRules = this.#latencyRules.filter((rule) => String(rule.target.path) !== String(target.path));
    if (ms > 0) this.#latencyRules.push({ ms, target: { path: target.path } });
  }

  latencyFor(path: string, fullPath: string): number {
    for (let i = this.#latencyRules.length - 1; i >= 0; i -= 1) {
      const rule = this.#latencyRules[i];
      if (rule !== undefined && matchesTarget(rule.target, path, fullPath)) return rule.ms;
    }
    return this.#latencyMs;
  }

  pause(): void {
    if (this.#paused !== undefined) return;
    let release!: () => void;
    const promise = new Promise<void>((resolve) => { release = resolve; });
    this.#paused = { promise, release };
  }

  resume(): void {
    const paused = this.#paused;
    this.#paused = undefined;
    paused?.release();
  }

  /** While paused, what a held request waits on (settled by resume or close); undefined when not paused. */
  get pausedUntil(): Promise<void> | undefined {
    return this.#paused?.promise;
  }
}
