/**
 * `proxy-floor`: the proxy's memory hits against a bare node:http server answering the same bytes from a Map
 * (floor-server.ts), side by side in one run. Both servers run in child processes (the proxy as users run it:
 * `github-p2p-cache serve --no-p2p`), the load generator (autocannon, load-client.ts) in a third, so none of
 * them shares a process with another. Each server first takes WARM_UP_SECONDS of the same load, unmeasured: a
 * fresh server process on this machine costs up to 1.6x more CPU per request in its first 20 to 30 s than once
 * warm (a bare node:http server measured in 4 s windows: 62 → 39 µs), and a user's proxy runs for hours. Rounds
 * then alternate bare and proxy (the order flips every round); each reports requests/s and the server's CPU time
 * per request (user + system, from /proc), which depends less on what else the machine runs than requests/s do.
 * Target: the proxy at ≥ 0.7x of the floor's requests/s.
 * `BENCH_PROXY_FLOOR_SECONDS` / `BENCH_PROXY_FLOOR_ROUNDS` shorten it while developing; `BENCH_PROXY_FLOOR_PROFILE=<dir>`
 * writes CPU profiles there (node --cpu-prof): the proxy's under proxy/, the floor's under floor/, to compare.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FakeGitHub } from '../../support/fake-github/index.js';
import { makeTempDir } from '../../support/temp-dir.js';
import { pool } from '../../support/workload.js';
import { OWNER, TOKEN, WORKLOAD_LATENCY_MS } from '../github-cache.js';
import { fmt, machineLine, median, table, writeSection } from '../report.js';
import { startListening, stopChild } from './listening-child.js';
import { loadLine, repoBody } from '../workload.js';

const CLI = fileURLToPath(new URL('../../bin/cli.js', import.meta.url));
const FLOOR = fileURLToPath(new URL('./floor-server.js', import.meta.url));
const LOADER = fileURLToPath(new URL('./load-client.js', import.meta.url));
const CONNECTIONS = 50;
const SECONDS = Number(process.env['BENCH_PROXY_FLOOR_SECONDS'] ?? 8);
const ROUNDS = Number(process.env['BENCH_PROXY_FLOOR_ROUNDS'] ?? 6);
const WARM_UP_SECONDS = Number(process.env['BENCH_PROXY_FLOOR_WARM_UP_SECONDS'] ?? 20);
const RESOURCES = 100;
const TARGET = 0.7;
const PROFILE_DIR = process.env['BENCH_PROXY_FLOOR_PROFILE'];
const TICK_US = 1e6 / 100; // /proc/<pid>/stat counts CPU in clock ticks (USER_HZ, 100 on Linux)

interface Round {
  server: 'floor' | 'proxy';
  requests: number;
  reqPerSec: number;
  cpuUsPerRequest: number;
  /** Of the CPU time, the share spent in the kernel (system time: mostly the socket writes and reads). */
  systemShare: number;
  latencyP50: number;
  latencyP99: number;
  errors: number;
}

export async function benchProxyFloor(): Promise<string> {
  const load = loadLine();
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } }, latencyMs: WORKLOAD_LATENCY_MS });
  const { dir, cleanup } = makeTempDir('gh-p2p-cache-proxy-floor-');
  const children: ChildProcess[] = [];
  try {
    const paths = Array.from({ length: RESOURCES }, (_, i) => `/repos/${OWNER}/repo-${i}`);
    paths.forEach((path, i) => fake.setResource(path, repoBody(OWNER, `repo-${i}`, i)));
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(CACHE_|GITHUB_)/.test(name))), BENCH_FLOOR_TOKEN: TOKEN };

    const profile = (who: string) => (PROFILE_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}/${who}`]);
    const proxy = await startListening(process.execPath, [...profile('proxy'), CLI, 'serve', '--port', '0', '--cache-dir', dir, '--github-api-url', fake.url, '--no-p2p'], env, 'proxy-floor: the proxy', 30_000);
    children.push(proxy.child);
    await pool(paths, 10, async (path) => {
      const response = await fetch(proxy.url + path, { headers: { authorization: `token ${TOKEN}` } });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`proxy-floor: warming ${path}: HTTP ${response.status}`);
    });
    // The floor answers what the proxy answers for a memory hit, byte for byte.
    const floor = await startListening(process.execPath, [...profile('floor'), FLOOR, proxy.url, ...paths], env, 'proxy-floor: the floor server', 30_000);
    children.push(floor.child);
    for (const [server, target] of [['floor', floor], ['proxy', proxy]] as const) {
      process.stderr.write(`  proxy-floor: warming the ${server} up for ${WARM_UP_SECONDS} s...\n`);
      await runLoad(server, target, paths, env, WARM_UP_SECONDS);
    }
    const upstreamBefore = fake.stats.requests;

    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? (['floor', 'proxy'] as const) : (['proxy', 'floor'] as const);
      for (const server of order) {
        const target = server === 'floor' ? floor : proxy;
        process.stderr.write(`  proxy-floor: round ${r + 1}, ${server}...`);
        rounds.push(await runLoad(server, target, paths, env, SECONDS));
        const last = rounds[rounds.length - 1]!;
        process.stderr.write(` ${fmt(last.reqPerSec, 0)} req/s, ${fmt(last.cpuUsPerRequest, 1)} µs CPU per request (${fmt(last.systemShare * 100, 0)}% kernel)\n`);
      }
    }
    const upstream = fake.stats.requests - upstreamBefore;

    const of = (server: Round['server']) => rounds.filter((r) => r.server === server);
    const medianOf = (server: Round['server'], pick: (r: Round) => number) => median(of(server).map(pick));
    const floorRps = medianOf('floor', (r) => r.reqPerSec);
    const proxyRps = medianOf('proxy', (r) => r.reqPerSec);
    const floorCpu = medianOf('floor', (r) => r.cpuUsPerRequest);
    const proxyCpu = medianOf('proxy', (r) => r.cpuUsPerRequest);
    const ratio = proxyRps / floorRps;
    const errors = rounds.reduce((sum, r) => sum + r.errors, 0);
    const md = [
      '## The proxy against a bare node:http floor',
      '',
      `\`npm run bench -- proxy-floor\` · ${machineLine()} · ${load}`,
      '',
      `Memory hits through \`github-p2p-cache serve --no-p2p\` (a child process) against a bare node:http server (another child`,
      `process) answering the same status, headers and body bytes from a Map, fetched once through the proxy. The load generator`,
      `(autocannon, ${CONNECTIONS} connections, keep-alive, cycling over ${RESOURCES} warm repository paths with the token) runs in a`,
      `third process; each server first takes ${WARM_UP_SECONDS} s of the same load, unmeasured (a fresh process costs more per request for`,
      `its first 20 to 30 s here), then ${ROUNDS} rounds of ${SECONDS} s per server, alternating, the order flipped every round. CPU per`,
      'request is the server process\'s user + system time over the round (from /proc) divided by the requests it answered.',
      '',
      table(['round', 'server', 'requests', 'req/s', 'CPU µs per request', 'of it in the kernel', 'latency p50 ms', 'p99 ms', 'errors'],
        rounds.map((r, i) => [Math.floor(i / 2) + 1, r.server === 'floor' ? 'floor: bare node:http + Map' : 'proxy (memory hits)',
          r.requests.toLocaleString('en-US'), fmt(r.reqPerSec, 0), fmt(r.cpuUsPerRequest, 1), `${fmt(r.systemShare * 100, 0)}%`, fmt(r.latencyP50, 1), fmt(r.latencyP99, 1), r.errors])),
      '',
      table(['median of rounds', 'floor: bare node:http + Map', 'proxy (memory hits)', 'proxy / floor'], [
        ['req/s', fmt(floorRps, 0), fmt(proxyRps, 0), `${fmt(ratio, 2)}x`],
        ['CPU µs per request', fmt(floorCpu, 1), fmt(proxyCpu, 1), `${fmt(floorCpu / proxyCpu, 2)}x (floor / proxy)`],
      ]),
      '',
      `Target ≥${TARGET}x of the floor's requests/s: ${ratio >= TARGET ? 'met' : '**missed**'} (${fmt(ratio, 2)}x). Errors: ${errors}; upstream requests during the load: ${upstream}`
        + ' (free revalidations: GitHub\'s max-age=60 runs out once a minute per resource, and a 304 renews the entry).',
    ].join('\n');
    writeSection('proxy-floor', md);
    return md;
  } finally {
    await Promise.all(children.map(stopChild));
    await fake.close();
    cleanup();
  }
}

async function runLoad(server: Round['server'], target: { url: string; child: ChildProcess }, paths: string[], env: NodeJS.ProcessEnv, seconds: number): Promise<Round> {
  const cpuBefore = cpuTicks(target.child.pid!);
  const loader = spawn(process.execPath, [LOADER, target.url, String(CONNECTIONS), String(seconds), ...paths], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  loader.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  const code = await new Promise<number | null>((resolve) => loader.once('exit', resolve));
  const cpuAfter = cpuTicks(target.child.pid!);
  const cpu = cpuAfter.total - cpuBefore.total;
  if (code !== 0) throw new Error(`proxy-floor: the load generator exited with ${code}`);
  const result = JSON.parse(out.trim().split('\n').pop()!) as { total: number; mean: number; latencyP50: number; latencyP99: number; errors: number };
  return {
    server, requests: result.total, reqPerSec: result.mean, cpuUsPerRequest: (cpu * TICK_US) / result.total,
    systemShare: (cpuAfter.system - cpuBefore.system) / cpu,
    latencyP50: result.latencyP50, latencyP99: result.latencyP99, errors: result.errors,
  };
}

/** user + system clock ticks of a process so far, and the system ones. */
function cpuTicks(pid: number): { total: number; system: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const user = Number(fields[11]); // utime, stime: fields 14 and 15 of the line
  const system = Number(fields[12]);
  return { total: user + system, system };
}

