/**
 * A miss as the caller meets it: fetch + store, filling a cache to 100,000 distinct entries, beside undici 7's
 * cache (`interceptors.cache` over its SqliteCacheStore) doing the same requests, and a no-cache undici `request`
 * as the floor. It measures what the caller's process pays per miss, end to end (building the request, the HTTP
 * exchange, hashing, storing in memory and SQLite, parsing), not only the storage side (bench/store.ts).
 *
 *   node dist/bench/miss.js [--entries 100000] [--rounds 3] [--in-flight 32] [--baseline <dist>] [--label <text>]
 *                           [--only name,name] [--no-write]
 *
 * `--baseline <dist>`: the `dist/` of an earlier build (e.g. /work/main/dist); its library runs in this harness as
 * the "before" row, as bench/hit-ab.ts does.
 *
 * Method:
 * - The fake GitHub (support/fake-github) runs in a child process of its own, so its CPU is not the client's; it
 *   serves `/repos/o/r{i}` (entries + warm-up of them), each a distinct 4 KB JSON body with an ETag and
 *   GitHub's `cache-control: private, max-age=60, s-maxage=60`, to one token. (Without `s-maxage` undici's cache
 *   stores no answer to a request carrying Authorization, RFC 9111 §3.5: it would be measured storing nothing.
 *   Each child checks that its cache directory holds at least 90% of the bodies' bytes after the fill.) Its CPU per request is reported on its own line.
 * - Each contender runs in a fresh process (its own heap, JIT and SQLite file), rounds interleaved, medians.
 *   A contender first makes WARM untimed misses (other keys), then `entries` timed misses of distinct keys,
 *   `in-flight` at once. CPU is process.cpuUsage (user + system) of that process over the timed part: per miss
 *   over the whole fill, and over its last tenth (at ~100k entries). RSS after the fill.
 * - What the caller gets: ours, `cache.request` resolves with `data` parsed (JSON.parse and a deep freeze, at
 *   once) and the bytes; undici's `request` with the bytes (read whole with `body.arrayBuffer()`). So undici is
 *   measured twice: the bytes alone, and the bytes plus `JSON.parse` (what a caller needing the object adds).
 * - Ours with SQLite persistence on and the default options except the sizes, so that every entry fits
 *   (maxEntries, maxParsedValues 120,000; maxBytes 1 GiB), and once more with the defaults (10,000 entries,
 *   256 MiB: past 10,000 entries every miss also evicts). undici's store is unbounded by default (no eviction).
 * - undici's store needs `node:sqlite` (Node 22.5+); on an older Node its own code runs over better-sqlite3
 *   through bench/node-sqlite-shim.ts, as bench/store.ts does (same SQL, a different binding), said under the table.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { argValue as arg, fmt, machineLine, median, table, writeSection } from './report.js';
import { loadLine, repoBody } from './workload.js';
import { shimNodeSqlite } from './node-sqlite-shim.js';

const SELF = fileURLToPath(import.meta.url);
const THIS_DIST = path.resolve(path.dirname(SELF), '..');
const TOKEN = `bench_${'m'.repeat(34)}`;
const BODY_BYTES = 4096;
const WARM = 2000;
const ACCEPT = 'application/vnd.github+json';

type Contender = 'ours' | 'ours-defaults' | 'before' | 'undici-cache' | 'undici-cache-parse' | 'undici-floor';

const LABELS: Record<Contender, string> = {
  ours: 'ours: `cache.request`, SQLite on, sized to fit (`data` parsed)',
  'ours-defaults': 'ours: `cache.request`, SQLite on, default sizes (evicts past 10,000)',
  before: 'before (baseline build), sized to fit',
  'undici-cache': 'undici 7 `request` + `interceptors.cache` (SqliteCacheStore), bytes',
  'undici-cache-parse': 'undici 7 + cache, bytes + `JSON.parse`',
  'undici-floor': 'floor: undici 7 `request`, no cache, bytes',
};

interface ChildResult {
  fillCpuUs: number;
  lastTenthCpuUs: number;
  wallS: number;
  rssMb: number;
  /** MiB of files in the cache directory after close: proof that a cache stored what it fetched. */
  storedMb: number;
  note: string;
}

/** GitHub's repository shape, padded to exactly BODY_BYTES of JSON. */
function body4k(i: number): Record<string, unknown> {
  const base = repoBody('o', `r${i}`, i);
  const pad = BODY_BYTES - JSON.stringify({ ...base, description: '' }).length;
  return { ...base, description: 'x'.repeat(Math.max(0, pad)) };
}

// ---------------------------------------------------------------- the fake GitHub, in its own process

async function server(count: number): Promise<void> {
  const { FakeGitHub } = await import('../support/fake-github/index.js');
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 1_000_000_000 } } });
  // GitHub's own cache-control for a token's answer (`private, max-age=60, s-maxage=60`, the fake's default): without
  // s-maxage undici's cache stores no answer to a request with Authorization (RFC 9111 §3.5), whatever its type.
  for (let i = 0; i < count; i++) fake.setResource(`/repos/o/r${i}`, body4k(i));
  process.on('message', (m: { cpu?: boolean }) => {
    if (m.cpu) { const u = process.cpuUsage(); process.send!({ cpuUs: u.user + u.system }); }
  });
  process.once('disconnect', () => void fake.close().then(() => process.exit(0)));
  process.send!({ url: fake.url });
}

// ---------------------------------------------------------------- one contender, in its own process

interface Client {
  /** One miss of repository i; throws when the answer is not what a miss gives. */
  get(i: number): Promise<void>;
  close(): Promise<void>;
  note: string;
}

async function client(contender: Contender, url: string, dir: string, sized: number): Promise<Client> {
  if (contender === 'ours' || contender === 'ours-defaults' || contender === 'before') {
    const dist = contender === 'before' ? process.env.BENCH_BASELINE_DIST! : THIS_DIST;
    const { GitHubAPICache } = await import(pathToFileURL(path.join(dist, 'index.js')).href) as typeof import('../index.js');
    const sizes = contender === 'ours-defaults' ? {} : { maxEntries: sized, maxParsedValues: sized, maxBytes: 1024 * 1024 * 1024 };
    const cache = await GitHubAPICache.create({ cacheDir: dir, githubApiUrl: url, p2p: { enabled: false }, persistence: 'required', ...sizes });
    return {
      async get(i) {
        const answer = await cache.request('GET /repos/{owner}/{repo}', { owner: 'o', repo: `r${i}` }, { token: TOKEN });
        if (answer.source !== 'origin' || (answer.data as { name?: string }).name !== `r${i}`) throw new Error(`r${i}: not a miss answered by GitHub (${answer.source})`);
      },
      close: () => cache.close(),
      note: '',
    };
  }
  const note = contender === 'undici-floor' ? '' : shimNodeSqlite();
  const require = createRequire(import.meta.url);
  const { Agent, interceptors, request, cacheStores } = require('undici') as typeof import('undici');
  const agent = new Agent();
  const dispatcher = contender === 'undici-floor' ? agent
    : agent.compose(interceptors.cache({ type: 'private', store: new cacheStores.SqliteCacheStore({ location: path.join(dir, 'undici.sqlite') }) }));
  const headers = { authorization: `token ${TOKEN}`, accept: ACCEPT, 'user-agent': 'bench-miss' };
  const parse = contender === 'undici-cache-parse';
  return {
    async get(i) {
      const response = await request(`${url}/repos/o/r${i}`, { dispatcher, headers });
      const bytes = new Uint8Array(await response.body.arrayBuffer());
      if (response.statusCode !== 200 || bytes.byteLength !== BODY_BYTES) throw new Error(`r${i}: status ${response.statusCode}, ${bytes.byteLength} bytes`);
      if (parse && (JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as { name?: string }).name !== `r${i}`) {
        throw new Error(`r${i}: wrong body`);
      }
    },
    close: () => dispatcher.close(),
    note,
  };
}

async function child(): Promise<void> {
  const contender = process.env.BENCH_CONTENDER as Contender;
  const entries = Number(process.env.BENCH_ENTRIES);
  const inFlight = Number(process.env.BENCH_IN_FLIGHT);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-miss-${contender}-`));
  try {
    const c = await client(contender, process.env.BENCH_GITHUB_URL!, dir, Math.ceil((entries + WARM) * 1.2));
    const run = async (from: number, to: number, atTenth?: () => void) => {
      let next = from;
      const tenth = from + Math.floor((to - from) * 0.9);
      await Promise.all(Array.from({ length: inFlight }, async () => {
        while (next < to) {
          const i = next++;
          if (i === tenth) atTenth?.();
          await c.get(i);
        }
      }));
    };
    // Untimed: the JIT warms up on keys the timed part never asks for.
    await run(entries, entries + WARM);
    globalThis.gc?.();
    const cpu = () => { const u = process.cpuUsage(); return u.user + u.system; };
    const t0 = performance.now();
    const c0 = cpu();
    let c90 = c0;
    await run(0, entries, () => { c90 = cpu(); });
    const c100 = cpu();
    const wallS = (performance.now() - t0) / 1000;
    const rssMb = process.memoryUsage().rss / 1024 / 1024;
    await c.close();
    const storedMb = fs.readdirSync(dir).reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0) / 1024 / 1024;
    // What each cache keeps: every entry, but 10,000 (the default maxEntries) for ours with the default sizes.
    const kept = contender === 'ours-defaults' ? Math.min(entries, 10_000) : entries;
    if (contender !== 'undici-floor' && storedMb * 1024 * 1024 < kept * BODY_BYTES * 0.9) throw new Error(`${contender}: only ${storedMb.toFixed(1)} MiB stored for ${kept} entries`);
    const last = entries - Math.floor(entries * 0.9);
    process.send!({ fillCpuUs: (c100 - c0) / entries, lastTenthCpuUs: (c100 - c90) / last, wallS, rssMb, storedMb, note: c.note } satisfies ChildResult);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the parent

function startServer(count: number): Promise<{ proc: ChildProcess; url: string }> {
  const proc = fork(SELF, ['--server', String(count)], { execArgv: ['--max-old-space-size=8192'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    proc.once('message', (m: { url: string }) => resolve({ proc, url: m.url }));
    proc.once('exit', (code) => reject(new Error(`fake GitHub exited with ${code}`)));
  });
}

function serverCpuUs(proc: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    proc.once('message', (m: { cpuUs: number }) => resolve(m.cpuUs));
    proc.send({ cpu: true });
  });
}

function runChild(contender: Contender, env: Record<string, string>, execArgv: string[]): Promise<ChildResult> {
  const proc = fork(SELF, ['--child'], { execArgv, env: { ...process.env, ...env, BENCH_CONTENDER: contender }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let report: ChildResult | undefined;
    proc.on('message', (m) => { report = m as ChildResult; });
    proc.on('exit', (code) => (report !== undefined ? resolve(report) : reject(new Error(`${contender} exited with ${code} and no report`))));
  });
}

export async function benchMiss(): Promise<string> {
  const entries = Number(arg('entries') ?? 100_000);
  const rounds = Number(arg('rounds') ?? 3);
  const inFlight = Number(arg('in-flight') ?? 32);
  const baseline = arg('baseline');
  const only = arg('only')?.split(',') as Contender[] | undefined;
  const contenders: Contender[] = only ?? ['ours', ...(baseline ? ['before' as const] : []), 'ours-defaults', 'undici-cache', 'undici-cache-parse', 'undici-floor'];
  const load = loadLine();
  const { proc, url } = await startServer(entries + WARM);
  const results = new Map<Contender, ChildResult[]>(contenders.map((c) => [c, []]));
  const serverPerRequest: number[] = [];
  const execArgv = process.env.BENCH_MISS_CPU_PROF ? ['--expose-gc', '--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_MISS_CPU_PROF}`] : ['--expose-gc'];
  try {
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? contenders : [...contenders].reverse();
      for (const c of order) {
        const s0 = await serverCpuUs(proc);
        const result = await runChild(c, {
          BENCH_GITHUB_URL: url, BENCH_ENTRIES: String(entries), BENCH_IN_FLIGHT: String(inFlight), BENCH_BASELINE_DIST: baseline ? path.resolve(baseline) : '',
        }, execArgv);
        serverPerRequest.push((await serverCpuUs(proc) - s0) / (entries + WARM));
        console.error(`round ${r + 1} ${c}: ${JSON.stringify(result)} (load ${os.loadavg()[0]!.toFixed(1)})`);
        results.get(c)!.push(result);
      }
    }
  } finally {
    proc.disconnect();
  }
  const med = (c: Contender, pick: (x: ChildResult) => number) => median(results.get(c)!.map(pick));
  const has = (c: Contender) => contenders.includes(c);
  const ref = has('undici-cache-parse') ? 'undici-cache-parse' : undefined;
  const rows = contenders.map((c) => {
    const lastTenth = med(c, (x) => x.lastTenthCpuUs);
    return [LABELS[c], fmt(lastTenth, 0), fmt(med(c, (x) => x.fillCpuUs), 0), results.get(c)!.map((x) => fmt(x.lastTenthCpuUs, 0)).join(' / '),
      fmt(med(c, (x) => x.rssMb), 0), fmt(med(c, (x) => x.storedMb), 0), fmt(med(c, (x) => x.wallS), 1),
      ref ? `${fmt(lastTenth / med(ref, (x) => x.lastTenthCpuUs), 2)}x` : '—',
      has('undici-cache') ? `${fmt(lastTenth / med('undici-cache', (x) => x.lastTenthCpuUs), 2)}x` : '—'];
  });
  const undiciNote = [...results.entries()].find(([c]) => c === 'undici-cache')?.[1][0]?.note ?? '';
  const n = entries.toLocaleString('en');
  const verdict = has('ours') && ref
    ? (() => {
      const ratio = med('ours', (x) => x.lastTenthCpuUs) / med(ref, (x) => x.lastTenthCpuUs);
      const bytesRatio = has('undici-cache') ? med('ours', (x) => x.lastTenthCpuUs) / med('undici-cache', (x) => x.lastTenthCpuUs) : Number.NaN;
      return `Target ≤ 1.5x of undici 7's cache at ~${n} entries: ours over undici + \`JSON.parse\` (what ours hands out) ${fmt(ratio, 2)}x, ` +
        `**${ratio <= 1.5 ? 'met' : 'missed'}**; over undici's bytes alone ${fmt(bytesRatio, 2)}x (${bytesRatio <= 1.5 ? 'met' : 'missed'} on that reading).`;
    })()
    : '';
  const md = [
    '## Miss as the caller meets it: fetch + store to 100k entries (bench/miss.ts)',
    '',
    `\`node dist/bench/miss.js${baseline ? ` --baseline <${arg('label') ?? baseline} dist>` : ''}\` · ${machineLine()} · ${rounds} interleaved rounds, each contender in a fresh process, medians.`,
    load,
    `Each process: ${WARM.toLocaleString('en')} untimed misses, then ${n} timed misses of distinct \`/repos/o/r{i}\` (4 KB JSON, ETag,`,
    `\`cache-control: private, max-age=60, s-maxage=60\` as GitHub sends it), ${inFlight} in flight, against the fake GitHub in a process of its own.`,
    `CPU: user + system of the client process over the timed part (process.cpuUsage); "last tenth": the last ${(entries - Math.floor(entries * 0.9)).toLocaleString('en')} misses (at ~${n} entries).`,
    'undici 7 SqliteCacheStore: ' + (undiciNote || 'node:sqlite') + '.',
    '',
    table(['client', 'CPU µs per miss, last tenth', 'CPU µs per miss, whole fill', 'last tenth per round', 'RSS MB after', 'MiB on disk after close', 'wall s',
      'over undici + cache + parse', 'over undici + cache (bytes)'], rows),
    '',
    `The fake GitHub's own CPU (its process, not counted above): ${fmt(median(serverPerRequest), 0)} µs per request (median over all runs).`,
    '',
    verdict,
    '',
    '- Like for like: ours answers with `data` parsed (JSON.parse, then deep-frozen) and the bytes; undici\'s `request` with the',
    '  bytes only, so its row with `JSON.parse` is the fair reference; the bytes-only row is shown too.',
    '- Ours also keeps each entry in its memory tier (the LRU) besides SQLite, hashes each body (sha256: identical bodies are',
    '  stored once, and a peer checks what it gets), and tracks the rate limit; undici\'s store keeps nothing in memory.',
    '- Ours sends at most `maxConcurrentPerScope` (default 10) requests of one token at once; the rest wait in its queue.',
    '- "default sizes": maxEntries 10,000, so past the first 10,000 every miss also evicts one (in batches of 65); undici\'s',
    '  store, unbounded by default, evicts nothing.',
    '- MiB on disk: the cache directory after close. Before the WAL fix of this round ours left ~1.1 GB of WAL beside',
    '  ~0.45 GB of database after 100k misses (the WAL never started over while misses kept coming).',
    '- bench/store.ts ("Storage side of a miss") times the storage calls alone; this section is what a caller pays.',
  ].join('\n');
  if (!process.argv.includes('--no-write')) writeSection('miss', md);
  return md;
}

if (process.argv.includes('--server')) {
  await server(Number(process.argv[process.argv.indexOf('--server') + 1]));
} else if (process.argv.includes('--child')) {
  await child();
} else if (process.argv[1] === SELF) {
  console.log(await benchMiss());
}
