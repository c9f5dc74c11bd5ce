/**
 * The concurrent-server demo: the Node form of the original's Flask `threaded=True` scenario.
 *
 * An HTTP server handles many requests at once; every handler resolves the process's cache (half through an
 * Inversify container, half through getGlobalCache) and does a put and a get. With the double-checked promise
 * lock there is one instance however the requests interleave. Run it with `npm run demo:concurrent-server`; it exits non-zero
 * if more than one instance was ever created or a request read back something it did not write.
 *
 *   node dist/examples/concurrent-server.js [--requests 20]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import {
  createCacheContainer,
  getCacheProvider,
  getGlobalCache,
  shutdownGlobalCache,
  TYPES,
  type GitHubAPICache,
} from '../index.js';

export interface DemoResult {
  requests: number;
  instancesCreated: number;
  factoryCalls: number;
  distinctInstancesSeen: number;
  mismatches: number;
  rows: Array<{ request: number; via: string; wrote: string; read: string; ok: boolean }>;
}

/** Starts the server, fires `requests` concurrent requests at it, and reports what happened. */
export async function runConcurrentServerDemo(options: { requests?: number } = {}): Promise<DemoResult> {
  const requests = options.requests ?? 20;
  const container = createCacheContainer({ persistence: 'off' });
  const before = getCacheProvider().stats();
  const seen = new Set<GitHubAPICache>();

  const server = http.createServer((req, res) => {
    void (async () => {
      const id = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('id'));
      const via = id % 2 === 0 ? 'container.getAsync' : 'getGlobalCache';
      const cache = via === 'getGlobalCache' ? await getGlobalCache() : await container.getAsync<GitHubAPICache>(TYPES.GitHubAPICache);
      seen.add(cache);
      const wrote = `request-${id}-${Math.random().toString(36).slice(2, 8)}`;
      await cache.put(`demo:${id}`, wrote);
      const read = await cache.get<string>(`demo:${id}`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ request: id, via, wrote, read }));
    })().catch((err: unknown) => {
      res.statusCode = 500;
      res.end(JSON.stringify({ error: (err as Error).message }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  try {
    const rows = await Promise.all(
      Array.from({ length: requests }, async (_, id) => {
        const response = await fetch(`http://127.0.0.1:${port}/?id=${id}`);
        const body = (await response.json()) as { request: number; via: string; wrote: string; read: string };
        return { ...body, ok: body.read === body.wrote };
      }),
    );
    const after = getCacheProvider().stats();
    return {
      requests,
      instancesCreated: after.created - before.created,
      factoryCalls: after.factoryCalls - before.factoryCalls,
      distinctInstancesSeen: seen.size,
      mismatches: rows.filter((r) => !r.ok).length,
      rows,
    };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function main(): Promise<void> {
  const flag = process.argv.indexOf('--requests');
  const requests = flag >= 0 ? Number(process.argv[flag + 1]) : 20;
  const result = await runConcurrentServerDemo({ requests });
  console.log(`concurrent-server demo: ${result.requests} concurrent requests\n`);
  console.table(result.rows.map((r) => ({ request: r.request, via: r.via, ok: r.ok ? 'yes' : 'NO' })));
  console.log();
  console.table([
    { invariant: 'instances created', value: result.instancesCreated, expected: 1 },
    { invariant: 'factory calls', value: result.factoryCalls, expected: 1 },
    { invariant: 'distinct instances seen by handlers', value: result.distinctInstancesSeen, expected: 1 },
    { invariant: 'requests that read back another value', value: result.mismatches, expected: 0 },
  ]);
  await shutdownGlobalCache();
  const ok = result.instancesCreated === 1 && result.distinctInstancesSeen === 1 && result.mismatches === 0;
  console.log(ok ? '\nOK: one instance served every request.' : '\nFAILED: an invariant broke.');
  process.exitCode = ok ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
