/**
 * `stats`: cache statistics as one JSON document on stdout, exit 0. With --url, those of the proxy running
 * there (its /_cache/stats, counters included); unreachable or answering an error, it names the address and
 * exits 1. Without --url, those of a cache opened here on the given options: its entries and disk bytes are
 * real, its counters start at zero; the cache is closed before the process exits.
 */
import type { Command } from 'commander';
import type { CacheStats } from '../../src/cache/counters.js';
import { getGlobalCache, shutdownGlobalCache } from '../../providers/global-cache.js';
import { addCacheOptions, cacheOptionsFromFlags, type CacheFlags } from '../cache-flags.js';
import { CommandFailed, numberArg, printJson } from '../cli-support.js';

/** The flags of `stats` and `peers`. */
export type StatsFlags = CacheFlags & {
  url?: string;
  wait?: number;
};

/** The stats of the proxy at `url`. */
export async function statsFromProxy(url: string): Promise<CacheStats & { proxy?: unknown }> {
  const target = `${url.replace(/\/+$/, '')}/_cache/stats`;
  let response: Response;
  try {
    response = await fetch(target, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new CommandFailed(`cannot reach the proxy at ${target}: ${cause ?? (err instanceof Error ? err.message : String(err))} (is \`github-p2p-cache serve\` running there?)`);
  }
  if (!response.ok) throw new CommandFailed(`the proxy at ${target} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as CacheStats & { proxy?: unknown };
}

/** The stats of a cache opened in this process on the flags' options, after --wait seconds. */
export async function localStats(flags: StatsFlags): Promise<CacheStats> {
  const options = cacheOptionsFromFlags(flags);
  const cache = await getGlobalCache(options);
  try {
    await cache.p2pReady(); // the stats name the P2P host's address: wait until it listens
    if (flags.wait !== undefined && flags.wait > 0) await new Promise((resolve) => setTimeout(resolve, flags.wait! * 1000));
    return await cache.getStats();
  } finally {
    await shutdownGlobalCache();
  }
}

async function stats(flags: StatsFlags): Promise<void> {
  await printJson(flags.url !== undefined ? await statsFromProxy(flags.url) : await localStats(flags));
}

/** Adds `stats` to `program`. */
export function registerStats(program: Command): void {
  addCacheOptions(program.command('stats')
    .description('print cache statistics as JSON')
    .option('--url <proxy-url>', 'read the stats of the proxy running at this URL (its /_cache/stats) instead')
    .option('--wait <seconds>', 'seconds to wait before reading (lets a P2P host connect)', numberArg('--wait')))
    .addHelpText('after', `
Without --url this opens the cache with the given options and prints that process's stats: the entries and
disk bytes of the cache directory are real, but the counters start at zero. To see a running proxy's counters,
pass --url http://127.0.0.1:8787.`)
    .action(async (flags: StatsFlags) => stats(flags));
}
