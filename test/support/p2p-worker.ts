import { parentPort, workerData } from 'node:worker_threads';
import { startNode } from './p2p-fixtures.js';

/**
 * A worker thread running one PeerNetwork, for the worker-thread specs. workerData: { port, cacheDir }.
 * Posts {type:'started', …} then answers 'stats' with {type:'stats', …} and 'stop' with {type:'stopped'}.
 */
const { port, cacheDir } = workerData as { port: number; cacheDir: string };
const node = await startNode({ cacheDir, p2p: { listenPort: port } });
const stats = () => node.network.stats();
parentPort!.postMessage({ type: 'started', stats: stats() });
parentPort!.on('message', (message: string) => {
  if (message === 'stats') parentPort!.postMessage({ type: 'stats', stats: stats() });
  if (message === 'stop') {
    void node.network.stop().then(() => {
      parentPort!.postMessage({ type: 'stopped' });
      parentPort!.close();
    });
  }
});
