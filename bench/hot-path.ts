/**
 * Hot path of the singleton provider, side by side with what it is measured against:
 * - `await getGlobalCache()` vs awaiting an already-resolved promise (target ≤ 1.5x)
 * - `container.get(TYPES.GitHubAPICache)` vs Inversify's own resolved singleton `get` (target ≤ 1.5x)
 * - `await container.getAsync(...)` vs Inversify's singleton `getAsync`
 * - a module variable and an Inversify constant binding as floors
 * - 10,000 concurrent cold callers: wall time minus the factory's own time (target ≤ 20 ms)
 */
import 'reflect-metadata';
import { Container } from 'inversify';
import { cacheModule, createCacheContainer, getCacheProvider, getGlobalCache, shutdownGlobalCache, TYPES } from '../index.js';
import { GitHubAPICache } from '../src/github-api-cache.js';
import { compare, fmt, machineLine, median, table, writeSection } from './report.js';

export async function benchHotPath(): Promise<string> {
  await shutdownGlobalCache();
  getCacheProvider().useFactory((options) => GitHubAPICache.create(options));
  getCacheProvider().preferOptions({ persistence: 'off' });
  const cache = await getGlobalCache();

  const ours = createCacheContainer();
  const plain = new Container();
  plain.load(cacheModule);
  const SINGLETON = Symbol('singleton');
  const CONSTANT = Symbol('constant');
  const inversify = new Container();
  inversify.bind(SINGLETON).toDynamicValue(() => ({ cache })).inSingletonScope();
  inversify.bind(CONSTANT).toConstantValue(cache);
  inversify.get(SINGLETON);
  await ours.getAsync(TYPES.GitHubAPICache);

  const resolved = Promise.resolve(cache);
  let moduleVariable: unknown = cache;
  let sink: unknown;

  const sync = await compare(
    [
      { name: 'module variable', run: (n) => { for (let i = 0; i < n; i++) sink = moduleVariable; } },
      { name: 'Inversify constant binding: container.get', run: (n) => { for (let i = 0; i < n; i++) sink = inversify.get(CONSTANT); } },
      { name: 'Inversify resolved singleton: container.get', run: (n) => { for (let i = 0; i < n; i++) sink = inversify.get(SINGLETON); } },
      { name: 'ours: createCacheContainer().get', run: (n) => { for (let i = 0; i < n; i++) sink = ours.get(TYPES.GitHubAPICache); } },
      { name: 'ours: any Container + cacheModule .get', run: (n) => { for (let i = 0; i < n; i++) sink = plain.get(TYPES.GitHubAPICache); } },
      { name: 'ours: getCacheProvider().current', run: (n) => { const p = getCacheProvider(); for (let i = 0; i < n; i++) sink = p.current; } },
    ],
    { iterations: 1_000_000, rounds: 9 },
  );
  const asyncResults = await compare(
    [
      { name: 'await an already-resolved promise', run: async (n) => { for (let i = 0; i < n; i++) sink = await resolved; } },
      { name: 'ours: await getGlobalCache()', run: async (n) => { for (let i = 0; i < n; i++) sink = await getGlobalCache(); } },
      { name: 'Inversify resolved singleton: await getAsync', run: async (n) => { for (let i = 0; i < n; i++) sink = await inversify.getAsync(SINGLETON); } },
      { name: 'ours: await container.getAsync', run: async (n) => { for (let i = 0; i < n; i++) sink = await ours.getAsync(TYPES.GitHubAPICache); } },
    ],
    { iterations: 200_000, rounds: 9 },
  );
  void sink;
  moduleVariable = undefined;

  // Cold start: 10,000 concurrent first callers. The factory's own time is measured inside it and subtracted.
  const cold: Array<{ total: number; factory: number }> = [];
  for (let round = 0; round < 7; round++) {
    await shutdownGlobalCache();
    let factoryMs = 0;
    getCacheProvider().useFactory(async (options) => {
      const t = performance.now();
      const c = await GitHubAPICache.create(options);
      factoryMs = performance.now() - t;
      return c;
    });
    const containers = [createCacheContainer(), createCacheContainer(), createCacheContainer()];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 10_000 }, (_, i) => (i % 4 === 0 ? getGlobalCache() : containers[i % 3]!.getAsync(TYPES.GitHubAPICache))),
    );
    cold.push({ total: performance.now() - t0, factory: factoryMs });
  }
  await shutdownGlobalCache();
  getCacheProvider().useFactory((options) => GitHubAPICache.create(options));

  const syncBase = sync.get('Inversify resolved singleton: container.get')!;
  const asyncBase = asyncResults.get('await an already-resolved promise')!;
  const coldTotal = median(cold.map((c) => c.total));
  const coldFactory = median(cold.map((c) => c.factory));
  const coldOverhead = median(cold.map((c) => c.total - c.factory));

  const md = [
    '## Provider hot path',
    '',
    `\`npm run bench -- hot-path\` · ${machineLine()} · median of 9 interleaved rounds.`,
    '',
    '### Synchronous resolution (1,000,000 calls per round)',
    '',
    table(['candidate', 'ns/op', 'vs Inversify resolved singleton'], [...sync].map(([name, ns]) => [name, fmt(ns, 1), `${fmt(ns / syncBase, 2)}x`])),
    '',
    '### Awaited resolution (200,000 calls per round)',
    '',
    table(['candidate', 'ns/op', 'vs awaiting a resolved promise'], [...asyncResults].map(([name, ns]) => [name, fmt(ns, 1), `${fmt(ns / asyncBase, 2)}x`])),
    '',
    '### 10,000 concurrent cold callers (getGlobalCache and getAsync from three containers)',
    '',
    table(['measure', 'ms (median of 7)'], [
      ['wall time until all 10,000 have the instance', fmt(coldTotal, 2)],
      ['of which the factory itself (GitHubAPICache.create, memory-only)', fmt(coldFactory, 2)],
      ['provider overhead (wall − factory)', fmt(coldOverhead, 2)],
    ]),
    '',
    'Targets: `container.get` on the fast path within 1.5x of Inversify\'s resolved-singleton `get`; awaited',
    '`getGlobalCache()` within 1.5x of awaiting a resolved promise; cold overhead under 20 ms.',
    `This run: container.get ${fmt(sync.get('ours: createCacheContainer().get')! / syncBase, 2)}x,`,
    `getGlobalCache ${fmt(asyncResults.get('ours: await getGlobalCache()')! / asyncBase, 2)}x, cold overhead ${fmt(coldOverhead, 2)} ms.`,
  ].join('\n');
  writeSection('hot-path', md);
  return md;
}
