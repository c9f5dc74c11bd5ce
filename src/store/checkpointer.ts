/**
 * WAL checkpoints off the event loop. A checkpoint copies the WAL back into the database and syncs both files:
 * run by SQLite's automatic checkpoint inside whichever commit crosses 1,000 WAL pages, it cost that commit
 * 15-25 ms of CPU (plus the sync's wait), a stall for every caller. Here a helper thread with its own connection
 * runs `PRAGMA wal_checkpoint(PASSIVE)` (which never blocks writers or readers) a moment after commits, and the
 * store's connection does not checkpoint by itself (`handOver`, before its first commit).
 *
 * The WAL starts over only when a checkpoint has copied every frame in it and a writer then begins: under a
 * steady stream of commits (a cache filling, one group commit per turn) a checkpoint on another thread never
 * catches up with the frames committed while it runs, and the WAL grew without bound (1.1 GB of WAL beside
 * 0.45 GB of database after 100,000 misses of 4 KB; bench/miss.ts: each checkpoint copied every frame it saw,
 * but by then more had been committed). So when a checkpoint found at least `resetFrames` frames in the WAL, a
 * quiet one follows at once: the store holds its group commits (the writes stay acknowledged and readable, as
 * pending writes always are) until it is done, at most QUIET_MAX_MS; it has only the frames committed during
 * the first one to copy, so it copies every frame, and the next commit starts the WAL over (its file cut back to
 * the connection's journal_size_limit).
 *
 * Durability is unchanged: a commit is in the WAL whoever checkpoints it, and an unfinished checkpoint is
 * redone by the next one (or by the next open). A quiet checkpoint only delays the commit of the writes made
 * while it runs (at most QUIET_MAX_MS). If the thread cannot start or fails, the connection's automatic
 * checkpoint stays (or is turned back) on.
 *
 * The thread starts with the first commit; the connection stopped checkpointing by itself before that commit, not
 * when the thread is up: starting it takes some 50-150 ms (a new isolate, the driver, its own connection), and a
 * commit that crossed 1,000 WAL pages in that window checkpointed on the event loop (after a restart, the first
 * background slices of recency: 20 ms of wall time, 8 ms of the loop's CPU; docs/benchmarks.md, "GitHub response
 * hit latency"), as did a first commit finding a WAL left large by a process that did not close. What is committed
 * meanwhile waits in the WAL, and the thread's first checkpoint copies it. A thread not up within START_TIMEOUT_MS
 * counts as failed.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { describeError } from './store-errors.js';

/** How long after a commit the checkpoint runs: commits in between share it. */
const CHECKPOINT_DELAY_MS = 250;

/** Frames a checkpoint finds in the WAL from which a quiet one follows (4,096 pages: 16 MiB of 4 KiB pages). */
export const WAL_RESET_FRAMES = 4096;

/** Longest a quiet checkpoint holds the store's commits; past it they go on (the WAL starts over another time). */
const QUIET_MAX_MS = 100;

/** Longest the thread may take to come up; past it, it is stopped and the connection checkpoints by itself again. */
const START_TIMEOUT_MS = 10_000;

const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
parentPort.on('message', (message) => {
  if (message === 'checkpoint') {
    try {
      const [result] = db.pragma('wal_checkpoint(PASSIVE)');
      parentPort.postMessage({ done: true, frames: result ? result.log : 0 });
    } catch (err) { parentPort.postMessage({ failed: String(err && err.message || err) }); }
  } else if (message === 'close') {
    try { db.close(); } catch {}
    parentPort.close();
  }
});
parentPort.postMessage('ready');
`;

export class Checkpointer {
  readonly #file: string;
  readonly #logger: Logger;
  #worker: Worker | undefined;
  #ready = false;
  #startTimer: NodeJS.Timeout | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The connection whose automatic checkpoint was turned off, to turn it back on if the thread fails. */
  #db: Database.Database | undefined;
  readonly #resetFrames: number;
  /** A quiet checkpoint is running (its time bound): the store holds its commits until `#quietEnded`. */
  #quiet: NodeJS.Timeout | undefined;
  #onQuietEnd: (() => void) | undefined;

  constructor(file: string, logger: Logger, options: { resetFrames?: number; onQuietEnd?: () => void } = {}) {
    this.#file = file;
    this.#logger = logger;
    this.#resetFrames = options.resetFrames ?? WAL_RESET_FRAMES;
    this.#onQuietEnd = options.onQuietEnd;
  }

  /** Whether a quiet checkpoint runs now: group commits wait for it (the store is told when it ends). */
  get holdingCommits(): boolean {
    return this.#quiet !== undefined;
  }

  #quietEnded(): void {
    if (this.#quiet === undefined) return;
    clearTimeout(this.#quiet);
    this.#quiet = undefined;
    this.#onQuietEnd?.();
  }

  /**
   * `db`, the store's connection, checkpoints no more by itself: the thread does, from the first commit. Called
   * before that commit; turned back if the thread cannot start or fails.
   */
  handOver(db: Database.Database): void {
    if (this.#stopped || this.#db === db) return;
    try {
      db.pragma('wal_autocheckpoint = 0');
      this.#db = db;
    } catch {
      // The connection is gone (closed or replaced): nothing to hand over.
    }
  }

  /** A commit happened on `db`: checkpoint a moment later (starting the thread on first use). */
  committed(db: Database.Database): void {
    if (this.#stopped) return;
    if (this.#worker === undefined) this.#start(db);
    if (this.#ready) this.#schedule();
  }

  /** A checkpoint CHECKPOINT_DELAY_MS from now, unless one is scheduled already. */
  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#worker?.postMessage('checkpoint');
    }, CHECKPOINT_DELAY_MS);
    this.#timer.unref();
  }

  /** Stops the thread (its connection closes, checkpointing what is left if it is the last one). Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#startTimer !== undefined) clearTimeout(this.#startTimer);
    this.#startTimer = undefined;
    this.#onQuietEnd = undefined;
    this.#quietEnded();
    this.#restoreAutomatic();
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) {
      if (this.#ready) worker.postMessage('close');
      else void worker.terminate();
    }
  }

  #start(db: Database.Database): void {
    let worker: Worker;
    try {
      const driver = createRequire(import.meta.url).resolve('better-sqlite3');
      worker = new Worker(WORKER_CODE, { eval: true, workerData: { file: this.#file, driver } });
    } catch (err) {
      this.#stopped = true;
      this.#restoreAutomatic();
      this.#logger.debug(`checkpoints stay on the event loop for ${this.#file}: ${describeError(err)}`);
      return;
    }
    worker.unref();
    this.#worker = worker;
    // From now on the thread checkpoints (turned back on if it fails: #failed), if the store did not hand over yet.
    this.handOver(db);
    this.#startTimer = setTimeout(() => {
      this.#startTimer = undefined;
      if (this.#ready || this.#worker !== worker) return;
      void worker.terminate();
      this.#failed(worker, new Error(`the checkpoint thread was not up within ${START_TIMEOUT_MS / 1000} s`));
    }, START_TIMEOUT_MS);
    this.#startTimer.unref();
    worker.on('message', (message: unknown) => {
      if (message === 'ready') {
        if (this.#stopped || this.#worker !== worker) return;
        this.#ready = true;
        clearTimeout(this.#startTimer);
        this.#startTimer = undefined;
        // The thread starts at a commit: what was committed while it started is checkpointed now.
        this.#schedule();
      } else if (typeof message === 'object' && message !== null && 'done' in message) {
        if (this.#worker !== worker) return;
        const wasQuiet = this.#quiet !== undefined;
        this.#quietEnded();
        // A large WAL: a quiet checkpoint at once, which has only the frames committed while this one ran to copy.
        // (Not after a quiet one: its WAL starts over at the next commit, which the next checkpoint will show.)
        if (!wasQuiet && !this.#stopped && (message as unknown as { frames: number }).frames >= this.#resetFrames) {
          this.#quiet = setTimeout(() => this.#quietEnded(), QUIET_MAX_MS);
          worker.postMessage('checkpoint');
        }
      } else if (typeof message === 'object' && message !== null && 'failed' in message) {
        this.#quietEnded();
        this.#logger.debug(`a checkpoint of ${this.#file} failed (the next one retries): ${String((message as { failed: unknown }).failed)}`);
      }
    });
    worker.on('error', (err) => this.#failed(worker, err));
    worker.on('exit', () => {
      if (this.#worker === worker) this.#failed(worker, new Error('the checkpoint thread exited'));
    });
  }

  #failed(worker: Worker, err: unknown): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    clearTimeout(this.#startTimer);
    this.#startTimer = undefined;
    this.#quietEnded();
    this.#stopped = true;
    this.#restoreAutomatic();
    this.#logger.debug(`checkpoints are back on the event loop for ${this.#file}: ${describeError(err)}`);
  }

  #restoreAutomatic(): void {
    const db = this.#db;
    this.#db = undefined;
    if (db === undefined || !db.open) return;
    try {
      db.pragma('wal_autocheckpoint = 1000');
    } catch {
      // Closing anyway.
    }
  }
}
