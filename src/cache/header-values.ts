/**
 * One string per repeated header value, shared by the entries that hold it.
 *
 * Guarantee: `sharedHeaderValue(name, value)` returns a string equal to `value` (`===`): either `value` itself or
 * an equal string returned before, never anything else. The table it keeps is bounded (MAX_VALUES strings of at
 * most MAX_VALUE_CHARS characters; emptied when full), so what a peer or an upstream sends can grow it by no more.
 *
 * Why: GitHub sends some 25 headers on every answer, and most of their values are the same on every answer (CORS,
 * security policy, content type, the token's OAuth scopes, the rate limit's resource). Each entry held its own
 * copy of each: about 1,000 of the ~1,570 bytes of an entry's headers object. Values that differ on every answer
 * (ANSWER_SPECIFIC) are left as they are, so they never push the shared ones out of the table.
 * docs/benchmarks.md, "Memory per entry", has the rows.
 */

/** Headers whose value differs from one answer to the next: kept as they are. */
export const ANSWER_SPECIFIC = new Set([
  'date', 'etag', 'last-modified', 'expires', 'age', 'content-length', 'link', 'x-github-request-id',
  'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-ratelimit-used',
]);

/** Longer values are kept as they are (a repeated value of GitHub's is a few hundred characters at most). */
const MAX_VALUE_CHARS = 1024;
/** Distinct values kept at most; the table starts over when it is full. */
const MAX_VALUES = 2048;

const shared = new Map<string, string>();

/** `value`, or an equal string already held by other entries (see the module guarantee). */
export function sharedHeaderValue(name: string, value: string): string {
  if (value.length > MAX_VALUE_CHARS || ANSWER_SPECIFIC.has(name)) return value;
  const kept = shared.get(value);
  if (kept !== undefined) return kept;
  if (shared.size >= MAX_VALUES) shared.clear();
  shared.set(value, value);
  return value;
}

/** Replaces each value of `headers` (a mutable object of the caller's own) by its shared string; returns `headers`. */
export function shareHeaderValues(headers: Record<string, string>): Record<string, string> {
  for (const name in headers) {
    const value = headers[name];
    if (typeof value === 'string') headers[name] = sharedHeaderValue(name, value);
  }
  return headers;
}

/** How many values the table holds (specs). */
export function sharedHeaderValueCount(): number {
  return shared.size;
}

/** Empties the table (specs: each starts from a known count). */
export function clearSharedHeaderValues(): void {
  shared.clear();
}
