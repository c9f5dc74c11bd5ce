/**
 * `npm run bench [-- name ...]`: runs the named benchmarks (default: all), prints their tables and writes them
 * into docs/benchmarks.md.
 */
import { benchBlindOwner } from './blind-owner.js';
import { benchCompare } from './compare/index.js';
import { benchProxyFloor } from './compare/proxy-floor.js';
import { benchProxyLoad } from './compare/proxy-load.js';
import { benchHitLatency, benchZipfWorkload } from './github-cache.js';
import { benchHotPath } from './hot-path.js';
import { benchJoin } from './join.js';
import { benchLargeEntries } from './large-entries.js';
import { benchInvalidation } from './invalidation.js';
import { benchLock } from './lock.js';
import { benchStore } from './store.js';
import { benchFleetSize } from './fleet.js';
import { benchFleetRatio, benchPeerLatency } from './p2p.js';
import { benchP2pCodec } from './p2p-codec.js';
import { benchMemory } from './memory.js';
import { benchMiss } from './miss.js';
import { benchPeerThroughput } from './peer-throughput.js';
import { benchP2pTransport } from './p2p-transport.js';
import { benchStartup } from './startup.js';
import { benchSummary } from './summary.js';

const benches: Record<string, () => Promise<string>> = {
  'hot-path': benchHotPath,
  'hit-latency': benchHitLatency,
  'zipf-workload': benchZipfWorkload,
  compare: benchCompare,
  'proxy-load': benchProxyLoad,
  'proxy-floor': benchProxyFloor,
  'peer-latency': benchPeerLatency,
  'fleet-ratio': benchFleetRatio,
  'fleet-size': benchFleetSize,
  join: benchJoin,
  'large-entries': benchLargeEntries,
  lock: benchLock,
  store: benchStore,
  miss: benchMiss,
  'p2p-codec': benchP2pCodec,
  memory: benchMemory,
  'peer-throughput': benchPeerThroughput,
  startup: benchStartup,
  'p2p-transport': benchP2pTransport,
  invalidation: benchInvalidation,
  'blind-owner': benchBlindOwner,
  // Last: it gathers the figures the others wrote.
  summary: benchSummary,
};

// Names are the arguments that are not options, nor an option's value (`--entries 100000`).
const args = process.argv.slice(2);
const wanted = args.filter((a, i) => !a.startsWith('-') && (a in benches || !(args[i - 1]?.startsWith('--') ?? false)));
const names = wanted.length > 0 ? wanted : Object.keys(benches);
for (const name of names) {
  const bench = benches[name];
  if (bench === undefined) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
  console.error(`running ${name}...`);
  console.log(await bench());
  console.log();
}
