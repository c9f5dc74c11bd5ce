/**
 * The floor of the proxy-floor benchmark, run as a child process: a bare node:http server answering every
 * path from a Map of what the proxy itself answered (status, headers and body bytes, fetched once through the
 * proxy at start-up), so it sends the same bytes the proxy sends with no cache behind it. Prints
 * `{"event":"listening","url":…}` once it listens. Usage: `node floor-server.js <proxy url> <path>...`
 * (the token in BENCH_FLOOR_TOKEN).
 */
import { createServer } from 'node:http';

const [source, ...paths] = process.argv.slice(2);
const token = process.env['BENCH_FLOOR_TOKEN'] ?? '';
const answers = new Map<string, { status: number; headers: Record<string, string>; body: Buffer }>();
for (const path of paths) {
  const response = await fetch(source + path, { headers: { authorization: `token ${token}`, accept: 'application/vnd.github+json' } });
  const body = Buffer.from(await response.arrayBuffer());
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'connection' && name !== 'keep-alive' && name !== 'transfer-encoding' && name !== 'date') headers[name] = value;
  });
  answers.set(path, { status: response.status, headers, body });
}
const missing = Buffer.from('{"message":"Not Found"}');
const server = createServer({ keepAlive: true }, (req, res) => {
  req.resume();
  const answer = answers.get(req.url ?? '/');
  if (answer === undefined) res.writeHead(404, { 'content-type': 'application/json' }).end(missing);
  else res.writeHead(answer.status, answer.headers).end(answer.body);
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ event: 'listening', url: `http://127.0.0.1:${port}` })}\n`);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
