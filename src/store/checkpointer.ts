/**
 * WAL checkpoints off the event loop. A checkpoint copies the WAL back into the database and syncs both files:
 * run by SQLite's automatic checkpoint inside whichever commit crosses 1,000 WAL pages, it cost that commit
 * 15-25 ms of CPU (plus the sync's wait), a stall for every caller. Here a helper thread with its own connection
 * runs `PRAGMA wal_checkpoint(PASSIVE)` (which never blocks writers or readers) a moment after commits, and the
 * store's connection stops checkpointing by itself once that thread is up.
 *
 * Durability is unchanged: a commit is in the WAL whoever checkpoints it, and an unfinished checkpoint is
 * redone by the next one (or by the next open). If the thread cannot start or fails, the connection's
 * automatic checkpoint stays (or is turned back) on.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { describeError } from './store-errors.js';

/** How long after a commit the checkpoint runs: commits in between share it. */
const CHECKPOINT_DELAY_MS = 250;

const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
parentPort.on('message', (message) => {
  if (message === 'checkpoint') {
    try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage({ failed: String(err && err.message || err) }); }
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
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The connection whose automatic checkpoint was turned off, to turn it back on if the thread fails. */
  #db: Database.Database | undefined;

  constructor(file: string, logger: Logger) {
    this.#file = file;
    this.#logger = logger;
  }

  /** A commit happened on `db`: checkpoint a moment later (starting the thread on first use). */
  committed(db: Database.Database): void {
    if (this.#stopped) return;
    if (this.#worker === undefined) this.#start(db);
    if (this.#timer !== undefined || !this.#ready) return;
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
      this.#logger.debug(`checkpoints stay on the event loop for ${this.#file}: ${describeError(err)}`);
      return;
    }
    worker.unref();
    this.#worker = worker;
    worker.on('message', (message: unknown) => {
      if (message === 'ready') {
        if (this.#stopped || this.#worker !== worker) return;
        this.#ready = true;
        try {
          db.pragma('wal_autocheckpoint = 0');
          this.#db = db;
        } catch {
          // The connection is gone (closed or replaced): nothing to hand over.
        }
      } else if (typeof message === 'object' && message !== null && 'failed' in message) {
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
