/**
 * The storage side of a miss, side by side: this library's tiers (memory LRU over SQLite) as built now, the same
 * tiers as built by an earlier commit ("before", when given), and undici 7's SqliteCacheStore, in fresh child
 * processes, interleaved rounds, medians.
 *
 *   node dist/bench/store.js [--entries 100000] [--rounds 3] [--baseline <dir>] [--baseline-label <text>] [--no-write]
 *
 * `--baseline <dir>`: a build of an earlier commit (its `dist/src`), e.g.
 *   git worktree add /tmp/base <commit> && ln -s <repo>/node_modules /tmp/base/ && (cd /tmp/base && npx tsc -p .)
 *
 * Rows:
 * - CPU per miss (user + system, the whole process) while filling to `entries` entries of 4 KB, 16 misses per
 *   turn of the event loop (a busy server), overall and over the last tenth (at ~100k entries); then 20,000
 *   more misses one per turn on the full cache (our tiers evict in batches, see eviction.ts; undici's store,
 *   unbounded by default, evicts nothing). A miss is what the storage side does: build the entry (hashing the body; undici's
 *   store does not hash) and store it.
 * - RSS per entry after the fill (memory tier holding every entry, bodies as bytes).
 * - Longest event-loop stall (a setImmediate gap probe) in the 2.5 s after 100k random memory hits followed by
 *   one miss: the recency of those hits is written to SQLite in the background.
 *
 * undici's store needs `node:sqlite` (Node 22.5+). On an older Node its own code runs over better-sqlite3's
 * SQLite through a small `node:sqlite` shim (same SQL, same statements, a different binding), said in the table.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { argValue as arg, fmt, machineLine, median, table, writeSection } from './report.js';
import { shimNodeSqlite } from './node-sqlite-shim.js';
import { longestStall, loopCpuSource } from './workload.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BODY_BYTES = 4096;
const PER_TURN = 16;
// Enough that one child spends seconds in the full-cache phase: on a loaded machine a shorter phase is mostly noise.
const FULL_MISSES = 20_000;
const HITS = 100_000;
const PROBE_MS = 2500;

type Contender = 'after' | 'before' | 'undici';

interface ChildResult {
  contender: Contender;
  fillCpuUs: number;
  lastTenthCpuUs: number;
  fullCpuUs: number;
  /**
   * The 99th percentile turn of the event loop in the full-cache phase, CPU ms: a miss and its commit. Our batch
   * evictions fall on one turn in 64 (1.6%), so this is such a turn. (The longest turn is a garbage collection or
   * a checkpoint on its thread, in every contender.)
   */
  fullTurnP99CpuMs: number;
  rssPerEntry: number;
  stallMs: number;
  stallCpuMs: number;
  /** The longest stall in on-CPU ms of the event loop's own thread (`longestStall`'s `loopCpu`). */
  stallLoopCpuMs: number;
  note: string;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Distinct 4 KB JSON-ish bodies: a shared random pool with the index written into each. */
function bodyMaker(): (i: number) => Buffer {
  const pool = Array.from({ length: 256 }, () => Buffer.from(createHash('sha512').update(String(Math.random())).digest('hex').repeat(32).slice(0, BODY_BYTES)));
  return (i) => {
    const body = Buffer.from(pool[i & 255]!);
    body.write(`{"id":${i},"x":"`, 0, 'latin1');
    body.write('"}', BODY_BYTES - 2, 'latin1');
    return body;
  };
}

const HEADERS: Record<string, string> = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'private, max-age=60, s-maxage=60',
  vary: 'Accept, Authorization, Cookie, X-GitHub-OAuth-Scopes',
  'x-github-media-type': 'github.v3; format=json',
  'x-ratelimit-limit': '5000',
  'x-ratelimit-remaining': '4999',
  'x-ratelimit-reset': '1767225600',
  'x-ratelimit-resource': 'core',
  'x-github-api-version-selected': '2022-11-28',
};

interface Harness {
  miss(i: number): void;
  hit(i: number): void;
  /** Resolves when background writes are done. */
  settle(): Promise<void>;
  close(): void;
  note: string;
}

async function ours(root: string, dir: string, entries: number): Promise<Harness> {
  const url = (rel: string) => pathToFileURL(path.join(root, rel)).href;
  const { SqliteStore } = (await import(url('store/sqlite-store.js'))) as typeof import('../src/store/sqlite-store.js');
  const { TieredEntries } = (await import(url('cache/tiered-entries.js'))) as typeof import('../src/cache/tiered-entries.js');
  const { sha256Hex } = (await import(url('cache/entry.js'))) as typeof import('../src/cache/entry.js');
  const logger = { debug() {}, warn() {}, error() {} };
  const bounds = { maxEntries: entries, maxBytes: 1024 * 1024 * 1024 };
  const store = SqliteStore.open({ dir, ...bounds, logger });
  const tiers = new TieredEntries({ ...bounds, store, logger, counters: { evictions: 0, persistenceErrors: 0 } });
  const body = bodyMaker();
  const now = Date.now();
  return {
    miss(i) {
      const b = body(i);
      tiers.write(`h:scope GET /repos/o/r/issues/${i}`, {
        body: b, digest: sha256Hex(b), storedAt: now, expiresAt: now + 60_000, status: 200, headers: HEADERS, etag: `W/"${i}"`,
      });
    },
    hit(i) {
      if (tiers.read(`h:scope GET /repos/o/r/issues/${i}`)?.tier !== 'memory') throw new Error(`key ${i}: not a memory hit`);
    },
    async settle() {
      const pending = store as unknown as { pendingWrites?: number };
      while ((pending.pendingWrites ?? 0) > 0) await turn();
    },
    close: () => tiers.close(),
    note: '',
  };
}

async function undici(dir: string): Promise<Harness> {
  const note = shimNodeSqlite();
  const require = createRequire(import.meta.url);
  const { cacheStores } = require('undici') as typeof import('undici');
  // Its typings leave out `set`, which createWriteStream calls with the whole body.
  const store = new cacheStores.SqliteCacheStore({ location: path.join(dir, 'undici.sqlite') }) as unknown as {
    set(key: object, value: object): void;
    get(key: object): unknown;
    close(): void;
  };
  const body = bodyMaker();
  const now = Date.now();
  const key = (i: number) => ({ origin: 'https://api.github.com', path: `/repos/o/r/issues/${i}`, method: 'GET', headers: {} });
  return {
    miss(i) {
      store.set(key(i), {
        statusCode: 200, statusMessage: 'OK', headers: HEADERS, etag: `W/"${i}"`, vary: undefined,
        cacheControlDirectives: { private: true, 'max-age': 60 }, cachedAt: now, staleAt: now + 60_000, deleteAt: now + 120_000,
        body: body(i),
      });
    },
    hit(i) {
      if (store.get(key(i)) === undefined) throw new Error(`key ${i}: not a hit`);
    },
    settle: async () => {},
    close: () => store.close(),
    note,
  };
}

async function child(contender: Contender, entries: number, baseline: string | undefined): Promise<ChildResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-store-${contender}-`));
  try {
    const harness = contender === 'undici' ? await undici(dir)
      : await ours(contender === 'after' ? path.join(HERE, '../src') : path.join(baseline!, 'dist/src'), dir, entries);
    globalThis.gc?.();
    const rss0 = process.memoryUsage().rss;
    const cpu = () => { const u = process.cpuUsage(); return u.user + u.system; };
    const tenth = Math.floor(entries * 0.9);
    const c0 = cpu();
    let c90 = c0;
    for (let i = 0; i < entries; i += PER_TURN) {
      if (i >= tenth && c90 === c0) c90 = cpu();
      for (let j = i; j < Math.min(entries, i + PER_TURN); j++) harness.miss(j);
      await turn();
    }
    await harness.settle();
    const c100 = cpu();
    globalThis.gc?.();
    const rssPerEntry = (process.memoryUsage().rss - rss0) / entries;
    const turnsCpuMs: number[] = [];
    for (let i = entries; i < entries + FULL_MISSES; i++) {
      const t0 = cpu();
      harness.miss(i);
      // The store's commit runs on the check phase before this turn's promise resolves.
      await turn();
      turnsCpuMs.push((cpu() - t0) / 1000);
    }
    turnsCpuMs.sort((a, b) => a - b);
    const fullTurnP99CpuMs = turnsCpuMs[Math.floor(turnsCpuMs.length * 0.99)]!;
    await harness.settle();
    const cFull = cpu();
    // 100k random hits of keys still held, 1,000 per turn, then one miss: the last `entries` written but the
    // oldest 1% of them (a full cache of ours evicts in batches, so it may hold 64 fewer than maxEntries).
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff) / 0x7fffffff;
    const held = entries - Math.ceil(entries / 100);
    for (let h = 0; h < HITS; h += 1000) {
      for (let j = 0; j < 1000; j++) harness.hit(FULL_MISSES + (entries - held) + Math.floor(random() * held));
      await turn();
    }
    const stall = await longestStall(PROBE_MS, () => harness.miss(entries + FULL_MISSES));
    harness.close();
    return {
      contender,
      fillCpuUs: (c100 - c0) / entries,
      lastTenthCpuUs: (c100 - c90) / (entries - tenth),
      fullCpuUs: (cFull - c100) / FULL_MISSES,
      fullTurnP99CpuMs,
      rssPerEntry,
      stallMs: stall.wall,
      stallCpuMs: stall.cpu,
      stallLoopCpuMs: stall.loopCpu,
      note: harness.note,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function runChild(contender: Contender, entries: number, baseline: string | undefined): Promise<ChildResult> {
  const args = ['--expose-gc', fileURLToPath(import.meta.url), '--child', contender, '--entries', String(entries), ...(baseline ? ['--baseline', baseline] : [])];
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as ChildResult) : reject(new Error(`${contender} exited ${code}`))));
  });
}

export async function benchStore(): Promise<string> {
  const entries = Number(arg('entries') ?? 100_000);
  const rounds = Number(arg('rounds') ?? 3);
  const baseline = arg('baseline');
  const contenders: Contender[] = baseline ? ['before', 'after', 'undici'] : ['after', 'undici'];
  const results = new Map<Contender, ChildResult[]>(contenders.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      const result = await runChild(c, entries, baseline);
      console.error(`round ${r + 1} ${c}: ${JSON.stringify(result)}`);
      results.get(c)!.push(result);
    }
  }
  const med = (c: Contender, field: keyof Omit<ChildResult, 'contender' | 'note'>) => median(results.get(c)!.map((x) => x[field]));
  const rowsSpec: Array<[string, keyof Omit<ChildResult, 'contender' | 'note'>, number]> = [
    [`CPU per miss (µs), filling to ${entries.toLocaleString('en')} entries, ${PER_TURN} per turn`, 'fillCpuUs', 0],
    [`CPU per miss (µs), the last tenth of the fill (at ~${entries.toLocaleString('en')} entries)`, 'lastTenthCpuUs', 0],
    [`CPU per miss (µs), full cache, one miss per turn (ours evict ${Math.min(64, Math.floor(entries / 1000)) + 1} at a time)`, 'fullCpuUs', 0],
    ['99th percentile turn, CPU ms, full cache, one miss per turn (ours: a batch eviction\'s)', 'fullTurnP99CpuMs', 2],
    ['RSS per 4 KB entry after the fill (bytes)', 'rssPerEntry', 0],
    [`longest event-loop stall, CPU ms of the event loop's thread, after ${HITS.toLocaleString('en')} random hits and one miss`, 'stallLoopCpuMs', 1],
    ['the same stall, CPU ms of the whole process (adds helper threads working beside the loop)', 'stallCpuMs', 1],
    [`the same stall, wall ms (adds other processes' time slices)`, 'stallMs', 1],
  ];
  const headers = ['storage side of a miss', ...(baseline ? ['before'] : []), 'now', 'undici 7 SqliteCacheStore', ...(baseline ? ['now / before'] : []), 'now / undici'];
  const rows = rowsSpec.map(([label, field, digits]) => {
    const now = med('after', field);
    const und = med('undici', field);
    const before = baseline ? med('before', field) : Number.NaN;
    return [label, ...(baseline ? [fmt(before, digits)] : []), fmt(now, digits), fmt(und, digits), ...(baseline ? [`${fmt(now / before, 2)}x`] : []), `${fmt(now / und, 2)}x`];
  });
  const missRatio = med('after', 'lastTenthCpuUs') / med('undici', 'lastTenthCpuUs');
  const stall = med('after', 'stallLoopCpuMs');
  const undiciNote = results.get('undici')![0]!.note;
  return [
    '## Storage side of a miss, and stalls from background work (bench/store.ts)',
    '',
    `${machineLine()}; ${rounds} interleaved rounds, each contender in a fresh process, medians. Bodies are distinct 4 KB`,
    `JSON-like bytes; our tiers are bounded at ${entries.toLocaleString('en')} entries and 1 GiB. undici 7 SqliteCacheStore: ${undiciNote},`,
    `default options (unbounded, no memory tier). "before": ${arg('baseline-label') ?? 'the build given by --baseline'}.`,
    '',
    table(headers, rows),
    '',
    `Targets: CPU per miss ≤ 1.5x undici's at ~${entries.toLocaleString('en')} entries: ${fmt(missRatio, 2)}x, ${missRatio <= 1.5 ? 'met' : '**missed**'};`,
    `no stall over 10 ms from background work (the event loop's thread on a CPU between two turns, median round): ${fmt(stall, 1)} ms, ${stall <= 10 ? 'met' : '**missed**'}`,
    `(the longest round: ${fmt(Math.max(...results.get('after')!.map((r) => r.stallLoopCpuMs)), 1)} ms; the loop thread's CPU from ${loopCpuSource}).`,
    `Load average while it ran: ${os.loadavg().map((l) => fmt(l, 1)).join(', ')} on ${os.cpus().length} cores. Wall-time gaps hold the time other`,
    'processes ran, and the whole process\'s CPU the work of its other threads (V8\'s concurrent and parallel marking, the',
    'checkpointer) beside the loop: the loop thread\'s own CPU is what this process made the event loop wait for.',
    '',
    'Reading the rows:',
    '- A miss here is what the storage side pays: build the entry (our tiers hash the body once; undici\'s',
    '  store does not hash), put it in memory (ours) and commit it to SQLite, the misses of one turn together.',
    '  The CPU is the whole process\'s, the checkpoint thread included.',
    '- Full cache, one miss per turn: group commit cannot batch (one write per turn), and our store evicts',
    '  the least recently used entries (row, indexes, body, counters), which undici\'s unbounded default store',
    '  never does: not like for like. "before" evicted one entry in each miss\'s transaction; "now" a miss',
    '  that has to evict goes down to a low-water mark 64 entries below maxEntries (eviction.ts, `headroom`),',
    '  so one miss in 64 evicts 65 entries in one transaction and the others evict nothing.',
    '- RSS: our memory tier holds every entry (the body\'s bytes plus key, headers and bookkeeping); undici\'s',
    '  SQLite store keeps nothing in memory but SQLite\'s page cache, and reads every hit from disk.',
    '- Stall: the recency of the hits is written in the background in slices of 64 rows or ~4 ms, an eviction',
    '  stamps at most 32 candidates per entry it must evict (32 in all for the headroom), a batch of 65',
    '  evictions takes a few ms, and checkpoints run on a helper thread. What is left is of the size of a',
    '  garbage collection (undici\'s column, which runs no background work at all, shows the same order).',
    `- Each round\'s stalls (the loop thread\'s CPU ms), now: ${results.get('after')!.map((r) => fmt(r.stallLoopCpuMs, 1)).join(', ')};`,
    `  undici: ${results.get('undici')!.map((r) => fmt(r.stallLoopCpuMs, 1)).join(', ')}.`,
  ].join('\n');
}

if (process.argv.includes('--child')) {
  const result = await child(arg('child') as Contender, Number(arg('entries')), arg('baseline'));
  process.stdout.write(JSON.stringify(result));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const markdown = await benchStore();
  console.log(markdown);
  if (!process.argv.includes('--no-write')) writeSection('store', markdown);
}
