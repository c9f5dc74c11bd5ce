/**
 * `proxy-load` (issue 5): the proxy as users run it (`github-p2p-cache serve`, the CLI in a child process)
 * under autocannon on loopback: 200 connections, 30 s of cached GETs with a token, cycling over 100 warm
 * resources. Reports requests/s, latency, errors (target 0), upstream requests during the load (target 0),
 * the proxy's RSS sampled before, during and after (target: steady), and a graceful SIGTERM at the end.
 * `BENCH_PROXY_LOAD_SECONDS` shortens the load while developing.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { FakeGitHub } from '../../support/fake-github/index.js';
import { scanForToken } from '../../support/leak-scan.js';
import { makeTempDir } from '../../support/temp-dir.js';
import { pool } from '../../support/workload.js';
import { OWNER, TOKEN, WORKLOAD_LATENCY_MS } from '../github-cache.js';
import { fmt, machineLine, median, table, writeSection } from '../report.js';
import { startListening, stopChild } from './listening-child.js';
import { loadLine, repoBody } from '../workload.js';
import { lineChart, writeChart } from './charts.js';

const CLI = fileURLToPath(new URL('../../bin/cli.js', import.meta.url));
const CONNECTIONS = 200;
const DURATION_S = Number(process.env['BENCH_PROXY_LOAD_SECONDS'] ?? 30);
const WARM_RESOURCES = 100;
const SAMPLE_MS = 500;
const BEFORE_MS = 3_000;
const AFTER_MS = 5_000;
/** Steady: the RSS floor of the load's last third within this factor of its middle third's. */
const STEADY_FACTOR = 1.1;
const MIB = 1024 * 1024;

export async function benchProxyLoad(): Promise<string> {
  const load = loadLine();
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } }, latencyMs: WORKLOAD_LATENCY_MS });
  const { dir, cleanup } = makeTempDir('gh-p2p-cache-proxy-load-');
  let child: ChildProcess | undefined;
  try {
    const paths = Array.from({ length: WARM_RESOURCES }, (_, i) => `/repos/${OWNER}/repo-${i}`);
    paths.forEach((path, i) => fake.setResource(path, repoBody(OWNER, `repo-${i}`, i)));
    const headers = { authorization: `token ${TOKEN}`, accept: 'application/vnd.github+json' };

    const started = await startCli(fake.url, dir);
    child = started.child;
    const url = started.url;
    const pid = child.pid!;

    // Warm every resource once (origin), and check a second read is a memory hit.
    await pool(paths, 10, async (path) => {
      const response = await fetch(url + path, { headers });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`proxy-load: warming ${path}: HTTP ${response.status}`);
    });
    const check = await fetch(url + paths[0]!, { headers });
    await check.arrayBuffer();
    if (check.headers.get('x-cache-source') !== 'memory') throw new Error(`proxy-load: expected a memory hit, got ${check.headers.get('x-cache-source')}`);

    const samples: Array<{ t: number; rss: number; phase: string }> = [];
    const heap: Array<{ t: number; bytes: number }> = [];
    const t0 = Date.now();
    let phase = 'before';
    let heapPending = false;
    const sample = () => {
      const t = (Date.now() - t0) / 1000;
      samples.push({ t, rss: rssOf(pid), phase });
      if (heapPending) return;
      heapPending = true;
      void heapUsedOf(url).then((bytes) => {
        if (bytes !== undefined) heap.push({ t, bytes });
      }).finally(() => {
        heapPending = false;
      });
    };
    const sampler = setInterval(sample, SAMPLE_MS);
    sample();
    try {
      await new Promise((resolve) => setTimeout(resolve, BEFORE_MS));
      const upstreamBefore = fake.stats.requests;
      phase = 'load';
      const loadFrom = (Date.now() - t0) / 1000;
      const result = await autocannon({
        url,
        connections: CONNECTIONS,
        duration: DURATION_S,
        headers,
        requests: paths.map((path) => ({ method: 'GET', path })),
      });
      const loadTo = (Date.now() - t0) / 1000;
      const upstreamDuring = fake.stats.requests - upstreamBefore;
      phase = 'after';
      await new Promise((resolve) => setTimeout(resolve, AFTER_MS));
      clearInterval(sampler);
      samples.push({ t: (Date.now() - t0) / 1000, rss: rssOf(pid), phase });

      // Graceful stop: SIGTERM, in-flight finished, cache closed, exit 0.
      const stopStarted = Date.now();
      const exit = await stopChild(child);
      const stopMs = Date.now() - stopStarted;
      child = undefined;
      const leak = scanForToken([dir], TOKEN);

      const rss = (p: string) => samples.filter((s) => s.phase === p).map((s) => s.rss);
      const before = rss('before');
      const during = rss('load');
      const after = rss('after');
      // V8 grows the heap in a sawtooth until a major GC, so RSS at one instant says little; a leak shows as a
      // rising floor. Compare the lowest RSS of the load's middle third with that of its last third.
      const third = Math.floor(during.length / 3);
      const floorMiddle = Math.min(...during.slice(third, 2 * third));
      const floorEnd = Math.min(...during.slice(2 * third));
      const growth = floorEnd / floorMiddle;
      const steady = growth <= STEADY_FACTOR;
      const errors = result.errors + result.timeouts + result.non2xx;

      const chart = await writeChart('proxy-load-rss', lineChart({
        title: `Proxy memory under autocannon (${CONNECTIONS} connections, ${DURATION_S} s of cached GETs)`,
        xTitle: 'seconds',
        yTitle: 'MiB',
        points: [
          ...samples.map((s) => ({ t: s.t, value: s.rss / MIB, series: 'RSS' })),
          ...heap.map((h) => ({ t: h.t, value: h.bytes / MIB, series: 'V8 heap used (/metrics)' })),
        ],
        phases: [{ from: loadFrom, to: loadTo, label: 'load' }],
      }));

      const mib = (bytes: number) => fmt(bytes / MIB, 1);
      const md = [
        '## The proxy under load',
        '',
        `\`npm run bench -- proxy-load\` · ${machineLine()} · ${load}`,
        '',
        `\`github-p2p-cache serve --port 0 --no-p2p\` (the CLI, in a child process, SQLite in a temp dir) in front of the fake GitHub`,
        `(${WORKLOAD_LATENCY_MS} ms latency); ${WARM_RESOURCES} repository resources warmed through it, then autocannon 9 in the benchmark process:`,
        `${CONNECTIONS} connections, keep-alive, ${DURATION_S} s, each connection cycling over the ${WARM_RESOURCES} paths with the token. Every answer is`,
        `a memory hit; the proxy's RSS is read from /proc every ${SAMPLE_MS} ms, ${BEFORE_MS / 1000} s before the load to ${AFTER_MS / 1000} s after it.`,
        '',
        table(['requests', 'req/s (mean)', 'req/s (p50 of seconds)', 'latency p50 ms', 'p99 ms', 'max ms', 'errors + timeouts + non-2xx', 'upstream during load'], [[
          result.requests.total.toLocaleString('en-US'),
          fmt(result.requests.mean, 0),
          fmt(result.requests.p50, 0),
          fmt(result.latency.p50, 1),
          fmt(result.latency.p99, 1),
          fmt(result.latency.max, 0),
          `${result.errors} + ${result.timeouts} + ${result.non2xx}`,
          upstreamDuring,
        ]]),
        '',
        table(['RSS MiB before', 'during: min', 'median', 'max', 'floor: middle → last third of load', 'after (median)', 'heap used MiB: min–max',
          'SIGTERM → exit', 'token on disk?'], [[
          mib(median(before)), mib(Math.min(...during)), mib(median(during)), mib(Math.max(...during)),
          `${mib(floorMiddle)} → ${mib(floorEnd)} (${fmt(growth, 2)}x)`, mib(median(after)),
          heap.length === 0 ? 'n/a' : `${mib(Math.min(...heap.map((h) => h.bytes)))}–${mib(Math.max(...heap.map((h) => h.bytes)))}`,
          `${stopMs} ms, exit ${exit}`,
          leak.found.length > 0 ? `**yes** (${leak.found.map((f) => f.file).join(', ')})` : `no (${leak.files} files)`,
        ]]),
        '',
        `![Proxy RSS during the load](${chart})`,
        '',
        `Targets: zero errors: ${errors === 0 ? 'met' : '**missed**'}; memory steady (the RSS floor of the load's last third within ${STEADY_FACTOR}x of`,
        'its middle third\'s; peaks between them are V8 growing its heap until a major GC):',
        `${steady ? 'met' : '**missed**'}; no upstream requests for cached GETs: ${upstreamDuring === 0 ? 'met' : '**missed**'}; exit 0 on SIGTERM: ${exit === 0 ? 'met' : '**missed**'}.`,
      ].join('\n');
      writeSection('proxy-load', md);
      return md;
    } finally {
      clearInterval(sampler);
    }
  } finally {
    if (child !== undefined) await stopChild(child);
    await fake.close();
    cleanup();
  }
}

/** Starts `serve` on a free port; resolves with its URL once it printed `{"event":"listening"}`. */
async function startCli(githubApiUrl: string, cacheDir: string): Promise<{ child: ChildProcess; url: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(CACHE_|GITHUB_)/.test(name)));
  return startListening(process.execPath, [CLI, 'serve', '--port', '0', '--cache-dir', cacheDir, '--github-api-url', githubApiUrl, '--no-p2p'],
    env, 'proxy-load: the proxy', 15_000);
}


/** V8 heap used by the proxy, from its own /metrics (prom-client's nodejs_heap_size_used_bytes). */
async function heapUsedOf(url: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
    const value = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1];
    return value === undefined ? undefined : Number(value);
  } catch {
    return undefined;
  }
}

/** Resident set size of a process, from /proc (Linux). */
function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return kb === undefined ? Number.NaN : Number(kb) * 1024;
}
