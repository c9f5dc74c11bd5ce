/**
 * `npm run bench [-- name ...]`: runs the named benchmarks (default: all), prints their tables and writes them
 * into docs/benchmarks.md.
 */
import { benchHitLatency, benchZipfWorkload } from './github-cache.js';
import { benchHotPath } from './hot-path.js';

const benches: Record<string, () => Promise<string>> = {
  'hot-path': benchHotPath,
  'hit-latency': benchHitLatency,
  'zipf-workload': benchZipfWorkload,
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
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
