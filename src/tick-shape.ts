import { executionAsyncResource } from 'node:async_hooks';

/**
 * One of Node's nextTick objects, held for the life of the process, so that their shape outlives every GC.
 *
 * Guarantee: after `holdTickShape()` (idempotent; `GitHubAPICache.create` calls it), the chain of hidden classes
 * V8 built for Node's tick objects (the `{ [async_id_symbol], [trigger_async_id_symbol], callback, args }` literal
 * of `process.nextTick`) stays alive, so a major GC never clears it. Nothing else changes: the object held is the
 * resource of one spent no-op tick (its callback and no arguments, a few dozen bytes), read through the documented
 * `executionAsyncResource()`; no hook is installed and nothing of Node's is patched.
 *
 * Why: a tick object lives from its `process.nextTick` to the end of that turn. A major GC that finds none alive
 * clears their hidden classes (V8 holds the transitions to them weakly), and the next tick builds new ones through
 * V8's runtime; each GC makes the literal in `nextTick` meet yet another class, its feedback goes megamorphic, and
 * from then on every tick object is built in the runtime (`Runtime_DefineKeyedOwnPropertyInLiteral`,
 * `JSObject::MigrateToMap`): about 9% of the proxy's CPU under load in `perf` samples, on every request, since
 * Node's HTTP server takes several ticks per request. A bare server that runs no major GC under steady load never
 * pays it; a process that holds a cache, whose heap grows, does. With the shape held, those runtime calls were gone
 * from the same samples (docs/benchmarks.md, "The proxy against a bare node:http floor").
 */

let held: object | undefined;
let asked = false;

export function holdTickShape(): void {
  if (asked) return;
  asked = true;
  process.nextTick(() => {
    held = executionAsyncResource();
  });
}

/** The tick object held, once the first tick after `holdTickShape()` has run (for tests). */
export function heldTickObject(): object | undefined {
  return held;
}
