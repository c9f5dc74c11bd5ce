import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { expect } from 'chai';
import type { PeerNetworkStats } from '../src/p2p/peer-network.js';
import { freePort, removeTmpDirs, tmpCacheDir, waitFor } from './support/p2p-fixtures.js';

describe('PeerNetwork in worker threads sharing a port and a cacheDir', function () {
  this.timeout(30_000);
  afterEach(() => removeTmpDirs());

  it('starts four workers at once: one binds the port, each has its own identity, all connect to each other', async () => {
    const port = await freePort();
    const cacheDir = tmpCacheDir();
    const script = fileURLToPath(new URL('./support/p2p-worker.js', import.meta.url));
    const workers = Array.from({ length: 4 }, () => new Worker(script, { workerData: { port, cacheDir } }));
    const latest = new Map<Worker, PeerNetworkStats>();
    for (const worker of workers) {
      worker.on('message', (message: { type: string; stats?: PeerNetworkStats }) => {
        if (message.stats !== undefined) latest.set(worker, message.stats);
      });
    }
    try {
      await waitFor(() => latest.size === 4, 'four workers to start', 10_000);
      const started = [...latest.values()];
      expect(started.filter((s) => !s.portFallback).map((s) => s.boundPort)).to.deep.equal([port]);
      expect(new Set(started.map((s) => s.peerId)).size).to.equal(4);
      await waitFor(() => {
        for (const worker of workers) worker.postMessage('stats');
        return [...latest.values()].every((s) => s.peers.length === 3);
      }, 'every worker to see the three others', 10_000);
    } finally {
      await Promise.all(workers.map(async (worker) => {
        const exited = once(worker, 'exit');
        worker.postMessage('stop');
        await exited;
      }));
    }
  });
});
