/**
 * One start-up sample of `npm run bench -- startup`, run as a fresh process: loads a client, makes one GET
 * against the fake GitHub (argv: kind, base URL, cache dir, token env name, extra JSON), and prints one JSON line
 * with the times since the process started (performance.now()): client loaded, created, first answer, and for
 * P2P the time the host listened. Fleet members (kind `fleet`) run a short workload first and report its sources.
 */
const [kind = 'off', baseUrl = '', cacheDir = '', extraJson = '{}'] = process.argv.slice(2);
const extra = JSON.parse(extraJson) as { startWaitMs?: number; listenPort?: number; bootstrapPeers?: string[]; repos?: number; inFlight?: number };
const token = process.env['BENCH_TOKEN'] ?? '';
const secret = 'bench-startup-shared-secret-0123456789';
const url = `${baseUrl}/repos/octo/hello`;

async function main(): Promise<Record<string, unknown>> {
  if (kind === 'undici') {
    const { Agent, interceptors, request } = await import('undici');
    const loadedMs = performance.now();
    const dispatcher = new Agent().compose(interceptors.deduplicate(), interceptors.cache({ type: 'private' }));
    const createdMs = performance.now();
    const response = await request(url, { dispatcher, headers: { authorization: `token ${token}`, accept: 'application/vnd.github+json' } });
    await response.body.json();
    const firstMs = performance.now();
    await dispatcher.close();
    return { loadedMs, createdMs, firstMs, source: 'origin' };
  }
  const { GitHubAPICache } = await import('../index.js');
  const loadedMs = performance.now();
  const p2p = kind === 'off' ? { enabled: false } : {
    enabled: true, sharedSecret: secret, listenHost: '127.0.0.1', listenPort: extra.listenPort ?? 0,
    bootstrapPeers: extra.bootstrapPeers ?? [], ...(extra.startWaitMs !== undefined ? { startWaitMs: extra.startWaitMs } : {}),
  };
  const cache = await GitHubAPICache.create({ persistence: 'off', cacheDir, githubApiUrl: baseUrl, p2p });
  const createdMs = performance.now();
  let readyMs: number | undefined;
  const ready = cache.p2pReady().then(() => {
    if (kind !== 'off') readyMs = performance.now();
  });
  if (kind === 'on-await') await ready; // as create() behaved before the host started in the background
  if (kind === 'fleet') {
    // Every member runs the same list at once, right after create(), as services started together would.
    const repos = extra.repos ?? 60;
    const sources: Record<string, number> = {};
    let next = 0;
    let firstMs: number | undefined;
    await Promise.all(Array.from({ length: extra.inFlight ?? 10 }, async () => {
      while (next < repos) {
        const i = next++;
        const r = await cache.request(`GET /repos/octo/r${i}`, {}, { token });
        firstMs ??= performance.now();
        sources[r.source] = (sources[r.source] ?? 0) + 1;
      }
    }));
    await ready.catch(() => undefined);
    // Members close together, once every one is done (a member that closed early would turn peer hits into misses).
    process.send?.({ loadedMs, createdMs, firstMs, readyMs, sources });
    await new Promise((resolve) => process.once('message', resolve));
    await cache.close();
    process.disconnect?.();
    return {};
  }
  const response = await cache.request('GET /repos/octo/hello', {}, { token });
  const firstMs = performance.now();
  await ready;
  await cache.close();
  return { loadedMs, createdMs, firstMs, readyMs, source: response.source };
}

const result = await main();
if (kind !== 'fleet') process.stdout.write(`${JSON.stringify(result)}\n`);
