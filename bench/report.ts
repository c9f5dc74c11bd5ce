/**
 * Benchmark reporting: timing helpers that compare candidates side by side in one run (interleaved rounds,
 * median of rounds, so machine noise hits every candidate alike), per-item timing with a check of where each
 * answer came from, a markdown table printer, and a writer that replaces one marked section of
 * docs/benchmarks.md so each benchmark owns its section.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResponseSource } from '../src/cache/counters.js';

export const DOCS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs');

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export interface Candidate {
  name: string;
  /** Runs the operation `iterations` times; returns when done. */
  run: (iterations: number) => void | Promise<void>;
}

/** ns per operation for each candidate: `rounds` interleaved rounds of `iterations`, median per candidate. */
export async function compare(candidates: Candidate[], { iterations, rounds }: { iterations: number; rounds: number }): Promise<Map<string, number>> {
  const samples = new Map<string, number[]>(candidates.map((c) => [c.name, []]));
  for (const c of candidates) await c.run(Math.min(iterations, 10_000)); // warm up
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? candidates : [...candidates].reverse();
    for (const c of order) {
      const start = process.hrtime.bigint();
      await c.run(iterations);
      const ns = Number(process.hrtime.bigint() - start) / iterations;
      samples.get(c.name)!.push(ns);
    }
  }
  return new Map([...samples].map(([name, values]) => [name, median(values)]));
}

/** Times `fn` once per item, in ns, appending to `into`. */
export async function timeEach<T>(items: readonly T[], into: number[], fn: (item: T) => unknown): Promise<void> {
  for (const item of items) {
    const start = process.hrtime.bigint();
    await fn(item);
    into.push(Number(process.hrtime.bigint() - start));
  }
}

/** A timed answer must come from where the row says, or the row measured something else. */
export function expectSource(response: { source: ResponseSource }, want: ResponseSource): void {
  if (response.source !== want) throw new Error(`expected a ${want} answer, got ${response.source}`);
}

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

export function machineLine(): string {
  return `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${new Date().toISOString().slice(0, 10)}`;
}

/** Replaces the section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in docs/benchmarks.md. */
export function writeSection(name: string, markdown: string): void {
  const file = path.join(DOCS_DIR, 'benchmarks.md');
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  let doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n\nEvery table here is written by `npm run bench` (bench/); numbers are from one run on the machine named under each table.\n';
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const from = doc.indexOf(start);
  const to = doc.indexOf(end);
  doc = from >= 0 && to > from ? doc.slice(0, from) + block + doc.slice(to + end.length) : `${doc.trimEnd()}\n\n${block}\n`;
  fs.mkdirSync(DOCS_DIR, { recursive: true });
  fs.writeFileSync(file, doc.endsWith('\n') ? doc : `${doc}\n`);
}

export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

/**
 * Runs `script --child` in a fresh process (its own heap and JIT, so rows do not share either) with `env` added,
 * and resolves with the last message it sent over IPC; rejects when it exits without one.
 */
export function childReport<T>(script: string, env: Record<string, string>, execArgv: string[] = []): Promise<T> {
  const proc = fork(script, ['--child'], { execArgv, env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let report: { value: T } | undefined;
    proc.on('message', (m) => { report = { value: m as T }; });
    proc.on('exit', (code) => (report !== undefined ? resolve(report.value) : reject(new Error(`${script} --child exited with ${code} and no report`))));
  });
}

/** The value after `--<name>` on this process's command line (`--baseline <dist>`), or undefined. */
export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
