/**
 * `peers`: this node's P2P identity, listen addresses, peers and counters as one JSON document on stdout, or
 * the line "P2P disabled ..." when no P2P host runs; exit 0 either way. With --url, those of the proxy running
 * there (exit 1 naming the address if it cannot be read); without, those of a P2P host started here for the
 * occasion (with --wait seconds to connect), closed before the process exits.
 */
import type { Command } from 'commander';
import { p2pStatsOf } from '../../src/proxy/p2p-stats.js';
import { addCacheOptions } from '../cache-flags.js';
import { numberArg, printJson, writeOut } from '../cli-support.js';
import { localStats, statsFromProxy, type StatsFlags } from './stats.js';

async function peers(flags: StatsFlags): Promise<void> {
  const snapshot = flags.url !== undefined ? await statsFromProxy(flags.url) : await localStats(flags);
  const p2p = p2pStatsOf(snapshot);
  if (p2p === undefined) {
    await writeOut('P2P disabled (enable it with --p2p and a shared secret in CACHE_P2P_SHARED_SECRET)\n');
    return;
  }
  await printJson({
    peerId: p2p.peerId,
    membership: p2p.membership,
    listenAddrs: p2p.listenAddrs,
    connectedPeers: p2p.connectedPeers,
    peers: p2p.peers,
    counters: p2p.counters,
    rejected: p2p.rejected,
  });
}

/** Adds `peers` to `program`. */
export function registerPeers(program: Command): void {
  addCacheOptions(program.command('peers')
    .description('print this node\'s P2P identity and its peers as JSON, or "P2P disabled"')
    .option('--url <proxy-url>', 'read the peers of the proxy running at this URL instead')
    .option('--wait <seconds>', 'seconds to let the P2P host connect before reading', numberArg('--wait')))
    .addHelpText('after', `
Without --url this starts a P2P host of its own (when enabled) and reports what it sees; to see a running
proxy's peers, pass --url http://127.0.0.1:8787.`)
    .action(async (flags: StatsFlags) => peers(flags));
}
