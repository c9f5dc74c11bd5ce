/**
 * The singleton provider's PromiseLock (providers/promise-lock.ts) side by side with the libraries it could
 * be replaced by: `p-limit(1)` (already a dependency) and async-mutex's `Mutex`.
 *
 * - uncontended: one caller takes and releases the lock in a loop. This is the path that matters: the
 *   provider takes its lock once per creation, configure() or shutdown, and concurrent cold callers share
 *   one trip through it, so the lock is almost never contended.
 * - contended: 1,000 callers ask at once and queue; cost per acquisition, FIFO hand-over included.
 *
 * Every candidate runs the same trivial section (a counter increment) and the counter is checked, so a
 * candidate that skipped the section could not look fast.
 */
import { Mutex } from 'async-mutex';
import pLimit from 'p-limit';
import { PromiseLock } from '../providers/promise-lock.js';
import { compare, fmt, machineLine, table, writeSection, type Candidate } from './report.js';

/** Callers queued at once in the contended case. */
const WAITERS = 1_000;
const ROUNDS = 9;
const UNCONTENDED_ITERATIONS = 200_000;
const CONTENDED_ITERATIONS = 100 * WAITERS;

interface LockUnderTest {
  name: string;
  /** Runs `section` holding the lock. */
  run: (section: () => void) => Promise<void>;
}

function locks(): LockUnderTest[] {
  const promiseLock = new PromiseLock();
  const limit = pLimit(1);
  const mutex = new Mutex();
  return [
    { name: 'PromiseLock: run(section)', run: (section) => promiseLock.run(section) },
    {
      name: 'PromiseLock: acquire() + release()',
      run: async (section) => {
        const release = await promiseLock.acquire();
        try {
          section();
        } finally {
          release();
        }
      },
    },
    { name: 'p-limit(1): limit(section)', run: (section) => limit(section) },
    { name: 'async-mutex: runExclusive(section)', run: (section) => mutex.runExclusive(section) },
    {
      name: 'async-mutex: acquire() + release()',
      run: async (section) => {
        const release = await mutex.acquire();
        try {
          section();
        } finally {
          release();
        }
      },
    },
  ];
}

/** Sections each candidate ran, to check none skipped its work. */
const ran = new Map<string, number>();

function uncontended(lock: LockUnderTest): Candidate {
  const section = () => {
    ran.set(lock.name, (ran.get(lock.name) ?? 0) + 1);
  };
  return {
    name: lock.name,
    run: async (n) => {
      for (let i = 0; i < n; i++) await lock.run(section);
    },
  };
}

function contended(lock: LockUnderTest): Candidate {
  let inside = false;
  const section = () => {
    if (inside) throw new Error(`${lock.name} let two sections overlap`);
    inside = true;
    ran.set(lock.name, (ran.get(lock.name) ?? 0) + 1);
    inside = false;
  };
  return {
    name: lock.name,
    run: async (n) => {
      for (let done = 0; done < n; done += WAITERS) {
        const batch = Math.min(WAITERS, n - done);
        const waiting = new Array<Promise<void>>(batch);
        for (let i = 0; i < batch; i++) waiting[i] = lock.run(section);
        await Promise.all(waiting);
      }
    },
  };
}

async function measure(make: (lock: LockUnderTest) => Candidate, iterations: number): Promise<Map<string, number>> {
  ran.clear();
  const candidates = locks().map(make);
  const results = await compare(candidates, { iterations, rounds: ROUNDS });
  const expected = Math.min(iterations, 10_000) + iterations * ROUNDS; // warm-up + rounds
  for (const { name } of candidates) {
    if (ran.get(name) !== expected) throw new Error(`${name} ran ${ran.get(name) ?? 0} sections, expected ${expected}`);
  }
  return results;
}

export async function benchLock(): Promise<string> {
  const free = await measure(uncontended, UNCONTENDED_ITERATIONS);
  const queued = await measure(contended, CONTENDED_ITERATIONS);

  const ours = 'PromiseLock: run(section)';
  const rows = (results: Map<string, number>) => {
    const base = results.get(ours)!;
    return [...results].map(([name, ns]) => [name, fmt(ns, 1), `${fmt(ns / base, 2)}x`]);
  };
  const fastestLibrary = (results: Map<string, number>) =>
    Math.min(...[...results].filter(([name]) => !name.startsWith('PromiseLock')).map(([, ns]) => ns));
  const lead = (results: Map<string, number>) => fastestLibrary(results) / results.get(ours)!;

  const md = [
    '## PromiseLock vs p-limit(1) and async-mutex',
    '',
    `\`npm run bench -- lock\` · ${machineLine()} · median of ${ROUNDS} interleaved rounds; ratio = candidate ÷ PromiseLock run() (above 1 is slower than ours).`,
    '',
    `### Uncontended: one caller, acquire and release in a loop (${UNCONTENDED_ITERATIONS.toLocaleString('en-US')} per round)`,
    '',
    table(['candidate', 'ns/acquisition', 'vs PromiseLock run()'], rows(free)),
    '',
    `### Contended: ${WAITERS.toLocaleString('en-US')} callers queued at once (${CONTENDED_ITERATIONS.toLocaleString('en-US')} acquisitions per round)`,
    '',
    table(['candidate', 'ns/acquisition', 'vs PromiseLock run()'], rows(queued)),
    '',
    `The fastest library takes ${fmt(lead(free), 2)}x PromiseLock's time uncontended (the path the provider uses)`,
    `and ${fmt(lead(queued), 2)}x contended. Keeping a hand-written lock is worth it only at 1.3x or more on the uncontended path.`,
  ].join('\n');
  writeSection('lock', md);
  return md;
}
