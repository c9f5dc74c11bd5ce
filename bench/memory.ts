/**
 * Memory per entry, and what keeping the parsed value of a body buys.
 *
 *   npm run bench -- memory            (or: node dist/bench/memory.js [--entries 100000] [--rounds 3])
 *
 * The fake GitHub runs in this process; each measurement runs in a fresh child process (`--expose-gc`), so its
 * RSS holds the cache alone. A child fills a cache (persistence off, the memory tier only) with `entries`
 * repository-shaped JSON bodies of ~3.9 KiB, then reports RSS and V8 heap growth per entry after a full GC:
 * - "bytes only": filled through `cache.exchange` (the proxy's path), which never parses a body;
 * - "bytes + parsed value": filled through `cache.request` and each answer's `data` read, as a JS caller does;
 *   the cache then holds the parsed, frozen value beside the bytes (here every one: `maxParsedValues` raised);
 * - "bounded": the same with `maxParsedValues: 1000`, so only the 1,000 read most recently keep it.
 * Then the hit cost with and without the parsed value held: `cache.request` on keys whose parsed value the
 * cache holds (a memory hit as a JS caller meets it), and on keys filled through `exchange` (the hit parses
 * and freezes the body), timed one call at a time, in alternating blocks.
 */
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '../src/options-table.js';
import { FakeGitHub } from '../support/fake-github/index.js';
import { childReport, fmt, machineLine, median, percentile, table, writeSection } from './report.js';
import { loadLine, repoBody } from './workload.js';

const SELF = fileURLToPath(import.meta.url);
const TOKEN = `bench_${'m'.repeat(34)}`;
const OWNER = 'mem';

/** bytes: filled through exchange; parsed: through cache.request, every parsed value kept; bounded: the same with maxParsedValues 1,000. */
type Mode = 'bytes' | 'parsed' | 'bounded';

interface ChildReport {
  rssPerEntry: number;
  heapPerEntry: number;
  hitParsedUs: number[];
  hitUnparsedUs: number[];
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function child(): Promise<void> {
  const { GitHubAPICache } = await import('../src/github-api-cache.js');
  const url = process.env.BENCH_GITHUB_URL!;
  const entries = Number(process.env.BENCH_ENTRIES);
  const mode = process.env.BENCH_MODE as Mode;
  const gc = (globalThis as { gc?: () => void }).gc!;
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const cache = await GitHubAPICache.create({
    persistence: 'off', githubApiUrl: url, maxEntries: entries * 2, maxBytes: 4 * 1024 ** 3,
    ...(mode === 'parsed' ? { maxParsedValues: entries * 2 } : mode === 'bounded' ? { maxParsedValues: 1000 } : {}),
  });
  const headers = { authorization: `token ${TOKEN}`, accept: 'application/vnd.github+json' };
  const viaExchange = (i: number) => cache.exchange({ method: 'GET', url: `${url}/repos/${OWNER}/r${i}`, headers });
  const viaRequest = (i: number) => cache.request('GET /repos/{owner}/{repo}', { owner: OWNER, repo: `r${i}` }, { token: TOKEN, ttl: 3600 });
  // Warm the code paths on keys outside the measured range, so compiled code is not counted as entry memory.
  for (let i = entries; i < entries + 200; i++) {
    await viaExchange(i);
    void (await viaRequest(i)).data;
  }
  await settle();
  const before = process.memoryUsage();
  const batch = 50;
  for (let start = 0; start < entries; start += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, entries - start) }, async (_, k) => {
      const i = start + k;
      // A miss, then a hit: the hit is what leaves the parsed value (if any) with the memory item.
      if (mode === 'bytes') {
        await viaExchange(i);
        await viaExchange(i);
      } else {
        void (await viaRequest(i)).data;
        void (await viaRequest(i)).data;
      }
    }));
  }
  await settle();
  const after = process.memoryUsage();
  const report: ChildReport = {
    rssPerEntry: (after.rss - before.rss) / entries,
    heapPerEntry: (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / entries,
    hitParsedUs: [],
    hitUnparsedUs: [],
  };
  if (mode === 'bytes') {
    // Hits that parse (first cache.request of a key filled through exchange) against hits that reuse the parsed
    // value, in alternating blocks of 100 keys.
    const hitKeys = Math.min(entries, 4000);
    for (let i = 0; i < hitKeys; i += 200) {
      for (let k = i; k < i + 100 && k < hitKeys; k++) void (await viaRequest(k)).data; // parse once: these now hold it
      for (let k = i; k < i + 100 && k < hitKeys; k++) {
        const t = process.hrtime.bigint();
        const answer = await viaRequest(k);
        report.hitParsedUs.push(Number(process.hrtime.bigint() - t) / 1000);
        if (answer.source !== 'memory') throw new Error(`expected a memory hit, got ${answer.source}`);
      }
      for (let k = i + 100; k < i + 200 && k < hitKeys; k++) {
        const t = process.hrtime.bigint();
        const answer = await viaRequest(k);
        report.hitUnparsedUs.push(Number(process.hrtime.bigint() - t) / 1000);
        if (answer.source !== 'memory') throw new Error(`expected a memory hit, got ${answer.source}`);
      }
    }
  }
  await cache.close();
  process.send!(report);
}

function runChild(url: string, entries: number, mode: Mode): Promise<ChildReport> {
  return childReport(SELF, { BENCH_GITHUB_URL: url, BENCH_ENTRIES: String(entries), BENCH_MODE: mode }, ['--expose-gc']);
}

export async function benchMemory(): Promise<string> {
  // As many as bench/store.ts holds: at 20,000 entries RSS per entry came out 2 KB higher (10.2 against 8.1 KB),
  // the process's fixed costs spread over fewer entries.
  const entries = arg('entries', 100_000);
  const rounds = arg('rounds', 3);
  const load = loadLine();
  const fake = await FakeGitHub.start({ tokens: { [TOKEN]: { rateLimit: 10_000_000 } } });
  try {
    for (let i = 0; i < entries + 200; i++) fake.setResource(`/repos/${OWNER}/r${i}`, repoBody(OWNER, `r${i}`, i));
    const bodyBytes = Buffer.byteLength(JSON.stringify(repoBody(OWNER, 'r0', 0)));
    const bytes: ChildReport[] = [];
    const parsed: ChildReport[] = [];
    const bounded: ChildReport[] = [];
    for (let round = 0; round < rounds; round++) {
      bytes.push(await runChild(fake.url, entries, 'bytes'));
      parsed.push(await runChild(fake.url, entries, 'parsed'));
      bounded.push(await runChild(fake.url, entries, 'bounded'));
    }
    const med = (reports: ChildReport[], pick: (r: ChildReport) => number) => median(reports.map(pick));
    const hitsParsed = bytes.flatMap((r) => r.hitParsedUs);
    const hitsUnparsed = bytes.flatMap((r) => r.hitUnparsedUs);
    const rssBytes = med(bytes, (r) => r.rssPerEntry);
    const rssParsed = med(parsed, (r) => r.rssPerEntry);
    const heapBytes = med(bytes, (r) => r.heapPerEntry);
    const heapParsed = med(parsed, (r) => r.heapPerEntry);
    const p50Parsed = percentile(hitsParsed, 50);
    const p50Unparsed = percentile(hitsUnparsed, 50);
    const md = [
      '## Memory per entry, and the parsed value',
      '',
      `\`npm run bench -- memory\` · ${machineLine()} · ${entries.toLocaleString('en-US')} entries of ${fmt(bodyBytes / 1024, 1)} KiB`,
      `(repository-shaped JSON), memory tier only, each contender in a fresh process, ${rounds} interleaved rounds, medians; growth`,
      'measured after a full GC. Hits: one `cache.request` at a time on keys of the same cache, alternating blocks of 100.',
      load,
      '',
      table(['what the cache holds per entry', 'RSS per entry (bytes)', 'V8 heap + buffers per entry (bytes)'], [
        ['the body bytes, headers and key (filled through `exchange`, the proxy\'s path)', fmt(rssBytes, 0), fmt(heapBytes, 0)],
        ['the same and the parsed, frozen value (filled through `cache.request`, `data` read)', fmt(rssParsed, 0), fmt(heapParsed, 0)],
        ['the parsed value\'s share', fmt(rssParsed - rssBytes, 0), fmt(heapParsed - heapBytes, 0)],
        ['filled through `cache.request` with `maxParsedValues: 1000` (the 1,000 read most recently keep it)',
          fmt(med(bounded, (r) => r.rssPerEntry), 0), fmt(med(bounded, (r) => r.heapPerEntry), 0)],
      ]),
      '',
      table(['`cache.request` memory hit', 'samples', 'p50 µs', 'p99 µs'], [
        ['the parsed value held (reused)', hitsParsed.length, fmt(p50Parsed), fmt(percentile(hitsParsed, 99))],
        ['not held: the hit parses and freezes the body', hitsUnparsed.length, fmt(p50Unparsed), fmt(percentile(hitsUnparsed, 99))],
      ]),
      '',
      `Holding the parsed value costs ${fmt((rssParsed - rssBytes) / 1024, 1)} KiB of RSS per entry and saves ${fmt(p50Unparsed - p50Parsed)} µs on`,
      'every later hit that reads it: it pays for an entry read more than once. It is kept for the `maxParsedValues`',
      `entries read most recently (default ${DEFAULTS.maxParsedValues.toLocaleString('en-US')}, as \`maxEntries\`: every entry of a default cache); a cache whose`,
      'reads repeat on a small hot set can lower it and keep bytes only for the rest. It is built only when a JS caller reads an entry through `cache.request` or `get`',
      '(never for the proxy, the Octokit plugin or peers, which read bytes), so a cache filled by proxied traffic holds bytes only.',
    ].join('\n');
    writeSection('memory', md);
    return md;
  } finally {
    await fake.close();
  }
}

if (process.argv.includes('--child')) {
  await child();
} else if (process.argv[1] === SELF) {
  console.log(await benchMemory());
}
