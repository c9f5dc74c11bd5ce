/**
 * Polling until something holds, for code that has no event to wait on (peers meshing, a child's stats).
 * Guarantees a bounded wait: it throws after `timeoutMs` with what it was waiting for, and leaves no timer
 * behind either way.
 */

/**
 * Polls `condition` (sync or async) every `intervalMs` until it holds; resolves with the ms it took, or
 * throws `timed out after … waiting for <what>` after `timeoutMs`.
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 8_000, intervalMs = 10): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${(timeoutMs / 1000).toFixed(1)} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return Date.now() - started;
}
