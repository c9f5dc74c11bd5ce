/**
 * The load generator of the proxy-floor benchmark, in a process of its own (so its CPU is not the server's):
 * autocannon against one URL, cycling over paths with the token, printing its result as one JSON line.
 * Usage: `node load-client.js <url> <connections> <seconds> <path>...` (the token in BENCH_FLOOR_TOKEN).
 */
import autocannon from 'autocannon';

const [url, connections, seconds, ...paths] = process.argv.slice(2);
const token = process.env['BENCH_FLOOR_TOKEN'] ?? '';
const result = await autocannon({
  url: url!,
  connections: Number(connections),
  duration: Number(seconds),
  headers: { authorization: `token ${token}`, accept: 'application/vnd.github+json' },
  requests: paths.map((path) => ({ method: 'GET', path })),
});
process.stdout.write(`${JSON.stringify({
  total: result.requests.total, mean: result.requests.mean, latencyP50: result.latency.p50, latencyP99: result.latency.p99,
  errors: result.errors + result.timeouts + result.non2xx,
})}\n`);
