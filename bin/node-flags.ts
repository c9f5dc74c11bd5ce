/**
 * The Node flags the service is started with: package.json's `start` script, the Dockerfile's ENTRYPOINT and the
 * systemd unit of docs/operations.md carry exactly these (test/service-node-flags.spec.ts), benchmarks start
 * the processes that stand for a deployed member (and the plain-HTTP server beside them) with them too, and `serve`
 * warns when it runs a P2P member without them (`missingNodeFlags`).
 *
 * `--min-semi-space-size=16`: V8's young generation stays at 16 MB per semi-space (the size it grows to under
 * load anyway) instead of shrinking to 1 MB while the process is idle. A member that went quiet and then serves a
 * burst of peer hits otherwise promotes the answers it holds in flight to the old generation scavenge after
 * scavenge, and ran a full GC every 100–400 ms for the rest of the burst: its CPU per peer hit tripled at 100 and
 * 500 in flight in 11 of 16 runs of `peer-throughput`, and in 3 of 27 with the flag (docs/operations.md, "Node
 * flags"). The flag cannot be set from inside a running process (V8 sizes the heap at start-up) and Node
 * refuses it in NODE_OPTIONS, so it is on the command line.
 *
 * `--heap-growing-percent=100`: after each full GC, V8 lets the old generation grow to twice what survived before the
 * next one. Left to itself, V8 picks that factor from how fast the process allocates; a member that serves peer hits
 * one at a time allocates slowly, so V8 chose the least factor (1.1) and the owner ran a full GC every 250–400 ms
 * while it served (13 to 15 full GCs in a `peer-throughput` run against 4 with the flag; its CPU per hit 1.4 to 2
 * times higher). Node refuses this flag in NODE_OPTIONS too.
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16', '--heap-growing-percent=100'];

/** The service's flags this process was not started with (`execArgv`: the flags given to node before the script). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return SERVICE_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}
