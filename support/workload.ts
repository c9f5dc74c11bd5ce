/**
 * Seeded randomness for workloads: the same seed gives the same sequence on every machine and Node version
 * (only 32-bit integer arithmetic), so a benchmark's request list, a demo's plan and a property spec's
 * inputs replay exactly. Also the worker pool that drives such a list with a fixed number in flight.
 */

/** A small seeded PRNG (mulberry32): numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Ranks 0..n-1 with P(k) ∝ 1/(k+1)^s (rank 0 the most popular), by inverse CDF. */
export function zipfSampler(n: number, s: number, random: () => number): () => number {
  const cdf: number[] = [];
  let sum = 0;
  for (let k = 1; k <= n; k++) cdf.push((sum += 1 / k ** s));
  return () => {
    const u = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** `count` Zipf ranks from 0..n-1 drawn with exponent `s` from a PRNG seeded with `seed`. */
export function zipfIndices(n: number, s: number, count: number, seed: number): number[] {
  const next = zipfSampler(n, s, mulberry32(seed));
  return Array.from({ length: count }, next);
}

/** A Fisher-Yates shuffle of a copy of `items`. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** `concurrency` async workers pulling items from one list in order until it is empty. */
export async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
